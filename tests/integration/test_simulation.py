"""kubectl incident simulate never acts: a rehearsal shows what would happen; a live drill never blocks real work.

The trial's reproduction: a simulation scaled a Deployment, paged on-call, and put the Deployment
into cooldown, so a real alert 9 s later could not restart it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from click.testing import CliRunner, Result
from kubernetes import client as k8s

from incidentops.cli.main import cli
from localenv.controlplane import KubeCluster
from localenv.demo_workload import create_demo_deployment
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_alert, am_webhook
from localenv.procs import wait_until
from localenv.standins import StandIns

GROUP, VERSION = "incidentops.dev", "v1alpha1"
TOKEN = "simulation-token"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def _custom(cluster: KubeCluster) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(cluster.api)


def _create(cluster: KubeCluster, namespace: str, plural: str, kind: str, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
    _custom(cluster).create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)


def _plugin(cluster: KubeCluster, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, [*args, "--kubeconfig", str(cluster.kubeconfig)])
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def _incident(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = _custom(cluster).get_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", name)
    return found


def _restarted(cluster: KubeCluster, namespace: str) -> str | None:
    deployment = k8s.AppsV1Api(cluster.api).read_namespaced_deployment("web", namespace)
    return (deployment.spec.template.metadata.annotations or {}).get(RESTARTED_AT)


def _phase(cluster: KubeCluster, namespace: str, name: str, *phases: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = _incident(cluster, namespace, name)
        remediation = (found.get("status") or {}).get("remediation") or {}
        return found if remediation.get("phase") in phases else None

    result: dict[str, Any] = wait_until(reached, timeout=60, interval=0.3, what=f"{name} in {phases}")
    return result


def test_a_rehearsal_changes_nothing_and_a_drill_never_blocks_a_real_incident(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    standins: StandIns,
) -> None:
    create_demo_deployment(kube_cluster.api, namespace, "web", replicas=2)
    _create(kube_cluster, namespace, "runbooks", "Runbook", "restart-web", {
        "match": {"services": ["web"]},
        "automatic": True,
        "minConfidence": 0.1,
        "steps": [{"name": "restart", "action": "restart", "target": {"name": "web"}}],
        "safety": {"cooldown": "30m", "maxExecutionsPerHour": 2},
    })  # fmt: skip
    _create(kube_cluster, namespace, "escalationpolicies", "EscalationPolicy", "oncall", {
        "levels": [{
            "name": "primary",
            "after": "0s",
            "targets": [{"type": "user", "name": "alice"}],
            "channels": [{"type": "webhook", "url": standins.base("webhook") + "/page"}],
        }],
    })  # fmt: skip
    env = {
        "INCIDENTOPS_WEBHOOK_TOKEN": TOKEN,
        "INCIDENTOPS_REMEDIATION_POLL": "1s",
        "INCIDENTOPS_NOTIFY_ALLOW": standins.allow,
        "INCIDENTOPS_STORM_BUDGET": "1",  # one automatic run per window: a drill must not spend it
    }
    operator = operator_factory([namespace], env=env)
    generation = k8s.AppsV1Api(kube_cluster.api).read_namespaced_deployment("web", namespace).metadata.generation

    # A rehearsal: the runbook is chosen, checked and dry-run; the page is decided; nothing happens.
    opened = _plugin(kube_cluster, "simulate", "-n", namespace, "--service", "web", "--deployment", "web")
    assert "rehearsal: nothing is changed or sent" in opened.stdout
    name = opened.stdout.split('"')[1]
    rehearsed = _phase(kube_cluster, namespace, name, "Simulated")
    [step] = rehearsed["status"]["remediation"]["steps"]
    assert step["state"] == "Skipped" and step["output"].startswith("rehearsal: would rollout restart of")
    assert "automatically" in step["output"] and RESTARTED_AT in (step.get("dryRunDiff") or "")
    wait_until(
        lambda: (_incident(kube_cluster, namespace, name)["status"].get("escalation") or {}).get("deliveries"),
        timeout=20,
        what="the rehearsed page",
    )
    status = _incident(kube_cluster, namespace, name)["status"]
    assert [d["state"] for d in status["escalation"]["deliveries"]] == ["Simulated"]
    assert status["escalation"]["summary"] == "1 (rehearsal)"
    assert any(t["message"].startswith("rehearsal: would page level 1") for t in status["timeline"])
    assert _restarted(kube_cluster, namespace) is None
    assert k8s.AppsV1Api(kube_cluster.api).read_namespaced_deployment("web", namespace).metadata.generation == (
        generation
    )
    assert standins.received("webhook") == []
    metrics = httpx.get(f"{operator.url}/metrics", timeout=10).text
    restarts = [
        line
        for line in metrics.splitlines()
        if line.startswith('incidentops_remediation_actions_total{action="restart"')
    ]
    assert restarts and all(line.endswith(" 0.0") for line in restarts), restarts  # the series exist, at zero
    assert "incidentops_escalation_levels_total{" not in metrics

    # A live drill needs --yes, says what it would do, then acts and pages like a real incident.
    warned = _plugin(
        kube_cluster, "simulate", "-n", namespace, "--service", "web", "--deployment", "web", "--live", code=1
    )
    assert "runbook restart-web matches and would run at once (automatic)" in warned.stderr
    assert "--live --yes" in warned.stderr
    drill = _plugin(kube_cluster, "simulate", "-n", namespace, "--service", "web", "--live", "--yes")
    drill_name = drill.stdout.split('"')[1]
    _phase(kube_cluster, namespace, drill_name, "Done")
    drilled_at = _restarted(kube_cluster, namespace)
    assert drilled_at is not None
    standins.wait_for("webhook", 1, timeout=20)

    # A real alert right after: neither the drill's cooldown nor its storm budget holds it back.
    labels = {"alertname": "WebLeak", "namespace": namespace, "service": "web", "severity": "warning"}
    answer = httpx.post(
        f"{operator.url}/api/v1/alertmanager",
        json=am_webhook([am_alert(labels)]),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    [real] = [ref["name"] for ref in answer.json()["incidents"]]
    done = _phase(kube_cluster, namespace, real, "Done", "AwaitingApproval", "Failed")
    assert done["status"]["remediation"]["phase"] == "Done", done["status"]["remediation"]
    assert _restarted(kube_cluster, namespace) not in (None, drilled_at)
    metrics = httpx.get(f"{operator.url}/metrics", timeout=10).text
    assert 'incidentops_remediation_actions_total{action="restart",result="ok"} 1.0' in metrics  # the real one


def test_spec_simulation_cannot_be_added_or_changed(kube_cluster: KubeCluster, crds: list[str], namespace: str) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Incident",
        "metadata": {"name": "real"},
        "spec": {"title": "real", "severity": "SEV2"},
    }
    _custom(kube_cluster).create_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", body)
    for patch in ({"spec": {"simulation": {"mode": "rehearsal", "by": "mallory"}}},):
        try:
            _custom(kube_cluster).patch_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", "real", patch)
        except k8s.ApiException as refused:
            assert refused.status == 422 and "cannot be added or removed" in str(refused.body)
        else:
            raise AssertionError("a real incident was turned into a simulation")
    _plugin(kube_cluster, "simulate", "-n", namespace, "--service", "api")
    [simulated] = [
        i
        for i in _custom(kube_cluster).list_namespaced_custom_object(GROUP, VERSION, namespace, "incidents")["items"]
        if i["metadata"]["name"] != "real"
    ]
    live = {"spec": {"simulation": {"mode": "live", "by": "mallory"}}}
    try:
        _custom(kube_cluster).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "incidents", simulated["metadata"]["name"], live
        )
    except k8s.ApiException as refused:
        assert refused.status == 422 and "cannot change" in str(refused.body)
    else:
        raise AssertionError("a rehearsal was turned into a live drill")
