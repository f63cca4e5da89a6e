"""Every writer of one Incident at once, from two operator processes, through the one turn they share.

An alert storm on its key, a human's acknowledgement, an automatic runbook step, an escalation
level and a DetectionRule's note all write the same Incident while a field no model knows sits in
its status. Afterwards: that field is still there, each concern's last word is in status, and
nothing was done twice (one restart of the Deployment, one page).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from kubernetes import client as k8s

from localenv.controlplane import KubeCluster
from localenv.demo_workload import create_demo_deployment
from localenv.monitoring import Prometheus as PrometheusServer
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_alert, am_webhook
from localenv.procs import wait_until
from localenv.standins import StandIns

GROUP, VERSION = "incidentops.dev", "v1alpha1"
TOKEN = "one-turn-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
FUTURE = {"keep": "me", "version": "v1alpha2"}


def _custom(cluster: KubeCluster) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(cluster.api)


def _create(cluster: KubeCluster, namespace: str, plural: str, kind: str, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
    _custom(cluster).create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)


def _incidents(cluster: KubeCluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = _custom(cluster).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "incidents"
    )["items"]
    return items


def _alert(namespace: str, instance: int) -> dict[str, Any]:
    labels = {
        "alertname": "WebLeak",
        "namespace": namespace,
        "service": "web",
        "severity": "warning",
        "instance": f"pod-{instance}",
    }
    return am_alert(labels)


def test_every_writer_at_once_loses_nothing_and_does_nothing_twice(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    prometheus_factory: Callable[..., PrometheusServer],
    standins: StandIns,
) -> None:
    create_demo_deployment(kube_cluster.api, namespace, "web", replicas=2)
    _create(kube_cluster, namespace, "runbooks", "Runbook", "restart-web", {
        "match": {"services": ["web"]},
        "automatic": True,
        "minConfidence": 0.1,
        "steps": [{"name": "restart", "action": "restart", "target": {"name": "web"}}],
    })  # fmt: skip
    _create(kube_cluster, namespace, "escalationpolicies", "EscalationPolicy", "oncall", {
        "levels": [{
            "name": "primary",
            "after": "0s",
            "targets": [{"type": "user", "name": "alice"}],
            "channels": [{"type": "webhook", "url": standins.base("webhook") + "/page"}],
        }],
    })  # fmt: skip
    prometheus = prometheus_factory(scrape_targets=[])
    env = {
        "INCIDENTOPS_WEBHOOK_TOKEN": TOKEN,
        "INCIDENTOPS_REMEDIATION_POLL": "1s",
        "INCIDENTOPS_NOTIFY_ALLOW": standins.allow,
        "INCIDENTOPS_PROMETHEUS_URL": prometheus.url,
    }
    first, second = operator_factory([namespace], env=env), operator_factory([namespace], env=env)

    answer = httpx.post(f"{first.url}/api/v1/alertmanager", json=am_webhook([_alert(namespace, 0)]), headers=AUTH)
    assert answer.status_code == 200, answer.text
    [ref] = answer.json()["incidents"]
    name = ref["name"]
    # A field no model of this version knows (a newer operator's), written before the others start.
    _custom(kube_cluster).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "incidents", name, {"status": {"futureField": FUTURE}}
    )

    async def storm() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            sends = [
                client.post(f"{op.url}/api/v1/alertmanager", json=am_webhook([_alert(namespace, i)]), headers=AUTH)
                for i in range(1, 121)
                for op in ((first, second)[i % 2],)
            ]
            return [r.status_code for r in await asyncio.gather(*sends)]

    codes = asyncio.run(storm())
    assert set(codes) == {200}
    # The DetectionRule fires into the same incident (same namespace and service), then is disabled: its note.
    fires = 'label_replace(vector(5), "service", "web", "", "")'
    _create(kube_cluster, namespace, "detectionrules", "DetectionRule", "web-rule", {
        "expr": fires, "interval": "5s", "service": "web", "resolveAfter": "1s",
    })  # fmt: skip
    wait_until(lambda: standins.received("webhook"), timeout=30, what="level 1 paged")
    _custom(kube_cluster).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "incidents", name, {"spec": {"acknowledgement": {"by": "alice"}}}
    )

    def rule_firing() -> bool:
        rule = _custom(kube_cluster).get_namespaced_custom_object(
            GROUP, VERSION, namespace, "detectionrules", "web-rule"
        )
        return (rule.get("status") or {}).get("state") == "Firing"

    wait_until(rule_firing, timeout=40, what="the rule firing")
    _custom(kube_cluster).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "detectionrules", "web-rule", {"spec": {"enabled": False}}
    )

    def settled() -> dict[str, Any] | None:
        found = [i for i in _incidents(kube_cluster, namespace) if i["metadata"]["name"] == name]
        if not found:
            return None
        status = found[0].get("status") or {}
        remediation = status.get("remediation") or {}
        escalation = status.get("escalation") or {}
        noted = any(t["type"] == "DetectionRuleGone" for t in status.get("timeline") or [])
        acked = escalation.get("stopped") == "Acknowledged" and "acknowledged" in (escalation.get("announced") or [])
        told = all(d["state"] == "Delivered" for d in escalation.get("deliveries") or [])
        return found[0] if remediation.get("phase") == "Done" and acked and noted and told else None

    incident = wait_until(settled, timeout=90, interval=0.5, what="every concern's last word")
    status = incident["status"]
    assert status["futureField"] == FUTURE  # survived every concern's writes, from both processes
    assert len(_incidents(kube_cluster, namespace)) == 1  # one incident for one key, storm or not
    assert status["alerts"]["count"] >= 121 and status["acknowledgedBy"] == "alice"
    assert status["triage"]["runbook"] == "restart-web"
    [step] = status["remediation"]["steps"]
    assert step["state"] == "Succeeded"
    deployment = k8s.AppsV1Api(kube_cluster.api).read_namespaced_deployment("web", namespace)
    assert RESTARTED_AT in (deployment.spec.template.metadata.annotations or {})
    assert deployment.metadata.generation == 2  # created at 1, restarted once
    pages = [r for r in standins.received("webhook") if r.json and r.json["event"] == "page"]
    assert len(pages) == 1  # one level, paged once, by one of the two processes
    events = [d["event"] for d in status["escalation"]["deliveries"]]
    # Each milestone told once: the page, the acknowledgement, and the remediation's result (an "update").
    assert events[0] == "page" and sorted(events) == sorted(set(events)) == ["acknowledged", "page", "update"]
    types = [t["type"] for t in status["timeline"]]
    assert "Acknowledged" in types and "RunbookChosen" in types and "Notified" in types
    for operator in (first, second):
        assert operator.process.returncode is None
        assert "changed" not in operator.logs() or "which it does not own" not in operator.logs()
