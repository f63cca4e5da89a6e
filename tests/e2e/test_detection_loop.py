"""DetectionRules with the real Prometheus scraping the demo workload: a bad image makes an error-ratio rule
go pending, then firing, and open one Incident carrying the rule's runbook and policy references, which
resolves after recovery; a groupBy rule opens one Incident per label set; Prometheus stopped mid-incident
keeps it open until Prometheus is back and the condition clear; an absence rule fires when a target goes
away; an operator restarted while a series is pending keeps its `for` clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s

from localenv.controlplane import KubeCluster
from localenv.demo_workload import ERROR_RATIO, DemoWorkloadProcess
from localenv.monitoring import Prometheus
from localenv.operator_process import OperatorProcess
from localenv.procs import wait_until_async

GROUP, VERSION = "incidentops.dev", "v1alpha1"
ENV = {"INCIDENTOPS_WEBHOOK_TOKEN": "e2e-rules", "INCIDENTOPS_REMEDIATION_POLL": "1s"}


def custom(cluster: KubeCluster) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(cluster.api)


def create(cluster: KubeCluster, namespace: str, kind: str, plural: str, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
    custom(cluster).create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)


def rule_state(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    obj = custom(cluster).get_namespaced_custom_object(GROUP, VERSION, namespace, "detectionrules", name)
    status: dict[str, Any] = obj.get("status") or {}
    return status


def incidents(cluster: KubeCluster, namespace: str) -> list[dict[str, Any]]:
    items = custom(cluster).list_namespaced_custom_object(GROUP, VERSION, namespace, "incidents")["items"]
    return [i for i in items if i.get("status")]


def ready_reason(status: dict[str, Any]) -> str:
    return next((c["reason"] for c in status.get("conditions", []) if c["type"] == "Ready"), "")


async def test_an_error_ratio_rule_opens_one_incident_with_its_references_and_resolves(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    demo_workload: Callable[..., DemoWorkloadProcess],
    prometheus_factory: Callable[..., Prometheus],
) -> None:
    demo = await asyncio.to_thread(demo_workload, namespace, "checkout")
    prometheus = await asyncio.to_thread(prometheus_factory, scrape_targets=[demo.target])
    await asyncio.to_thread(prometheus.wait_for_value, ERROR_RATIO, lambda v: True, 30.0)
    create(
        kube_cluster,
        namespace,
        "Runbook",
        "runbooks",
        "tell-checkout",
        {
            "steps": [{"name": "tell", "action": "notify", "params": {"message": "$service is failing"}}],
            "safety": {"dryRunOnly": True},
        },
    )
    create(
        kube_cluster,
        namespace,
        "EscalationPolicy",
        "escalationpolicies",
        "checkout-oncall",
        {
            "levels": [
                {
                    "name": "primary",
                    "after": "0m",
                    "targets": [{"type": "user", "name": "alice"}],
                    "channels": [{"type": "webhook", "secretRef": {"name": "hooks", "key": "url"}}],
                }
            ],
        },
    )
    create(
        kube_cluster,
        namespace,
        "DetectionRule",
        "detectionrules",
        "checkout-errors",
        {
            "expr": f"{ERROR_RATIO} > 0.2",
            "for": "4s",
            "interval": "5s",
            "resolveAfter": "5s",
            "severity": "SEV2",
            "service": "checkout",
            "runbookRef": {"name": "tell-checkout"},
            "escalationPolicyRef": {"name": "checkout-oncall"},
            "annotations": {"summary": "checkout error ratio at {{ $value }}"},
        },
    )
    operator = await asyncio.to_thread(
        operator_factory, [namespace], {**ENV, "INCIDENTOPS_PROMETHEUS_URL": prometheus.url}
    )
    await wait_until_async(
        lambda: rule_state(kube_cluster, namespace, "checkout-errors").get("state") == "Inactive",
        timeout=30,
        what="the rule evaluated, inactive",
    )
    await asyncio.to_thread(demo.set_image, "bad")
    await wait_until_async(
        lambda: rule_state(kube_cluster, namespace, "checkout-errors").get("state") == "Pending",
        timeout=60,
        what="pending",
    )
    [incident] = await wait_until_async(
        lambda: incidents(kube_cluster, namespace), timeout=60, what="one incident from the rule"
    )
    spec = incident["spec"]
    assert spec["runbookRef"] == {"name": "tell-checkout"}
    assert spec["escalationPolicyRef"] == {"name": "checkout-oncall"}
    assert (spec["source"], spec["severity"]) == ("detectionrule", "SEV2")
    assert spec["title"].startswith("checkout error ratio at 0.")

    # Prometheus stops mid-incident: the rule says so, the incident stays open.
    port = prometheus.port
    await asyncio.to_thread(prometheus.stop)
    await asyncio.to_thread(demo.set_image, "v1")  # recovered meanwhile, but nobody can see it yet
    await wait_until_async(
        lambda: ready_reason(rule_state(kube_cluster, namespace, "checkout-errors")) == "PrometheusUnreachable",
        timeout=30,
        what="Ready=False while Prometheus is away",
    )
    await wait_until_async(
        lambda: rule_state(kube_cluster, namespace, "checkout-errors").get("evaluationErrors", 0) >= 3,
        timeout=30,
        what="three failed evaluations, past resolveAfter",
    )
    [still] = incidents(kube_cluster, namespace)
    assert still["status"]["state"] != "Resolved"
    await asyncio.to_thread(prometheus.start, port)
    done = await wait_until_async(
        lambda: [i for i in incidents(kube_cluster, namespace) if i["status"]["state"] == "Resolved"],
        timeout=90,
        what="resolved once Prometheus is back and the condition clear",
    )
    assert len(done) == 1 and len(incidents(kube_cluster, namespace)) == 1
    assert ready_reason(rule_state(kube_cluster, namespace, "checkout-errors")) == "Evaluated"
    assert operator.process.returncode is None


async def test_group_by_absence_and_a_restart_in_pending(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    demo_workload: Callable[..., DemoWorkloadProcess],
    prometheus_factory: Callable[..., Prometheus],
) -> None:
    demo = await asyncio.to_thread(demo_workload, namespace, "checkout")
    prometheus = await asyncio.to_thread(prometheus_factory, scrape_targets=[demo.target])
    await asyncio.to_thread(prometheus.wait_for_value, ERROR_RATIO, lambda v: True, 30.0)
    by_code = "sum by (code) (rate(demo_http_requests_total[10s])) > 0"
    create(
        kube_cluster,
        namespace,
        "DetectionRule",
        "detectionrules",
        "by-code",
        {
            "expr": by_code,
            "interval": "5s",
            "groupBy": ["code"],
            "service": "checkout",
        },
    )
    create(
        kube_cluster,
        namespace,
        "DetectionRule",
        "detectionrules",
        "slow-start",
        {
            "expr": 'label_replace(vector(1), "queue", "payments", "", "")',  # steady: only the clock matters
            "interval": "5s",
            "for": "40s",
            "service": "slow",
        },
    )
    operator = await asyncio.to_thread(
        operator_factory, [namespace], {**ENV, "INCIDENTOPS_PROMETHEUS_URL": prometheus.url}
    )

    def two_codes() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = rule_state(kube_cluster, namespace, "by-code").get("series") or []
        return found if len(found) >= 2 else None

    series = await wait_until_async(two_codes, timeout=30, what="series for two codes")
    codes = {s["labels"]["code"] for s in series}
    assert len(codes) >= 2, codes

    def by_code_incidents() -> list[dict[str, Any]]:
        return [i for i in incidents(kube_cluster, namespace) if i["spec"]["labels"].get("alertname") == "by-code"]

    found = await wait_until_async(
        lambda: by_code_incidents() if len(by_code_incidents()) == len(codes) else None,
        timeout=60,
        what="one incident per code",
    )
    assert {i["spec"]["labels"]["code"] for i in found} == codes

    pending = rule_state(kube_cluster, namespace, "slow-start")
    assert pending.get("state") == "Pending"
    since = {s["activeSince"] for s in pending["series"]}
    await asyncio.to_thread(operator.kill)
    await asyncio.to_thread(operator_factory, [namespace], {**ENV, "INCIDENTOPS_PROMETHEUS_URL": prometheus.url})
    resumed = await wait_until_async(
        lambda: s if (s := rule_state(kube_cluster, namespace, "slow-start")).get("state") == "Firing" else None,
        timeout=90,
        what="firing on the original for clock",
    )
    assert {s["activeSince"] for s in resumed["series"]} == since  # the clock kept its start across the restart

    create(
        kube_cluster,
        namespace,
        "DetectionRule",
        "detectionrules",
        "target-gone",
        {
            "conditions": [{"kind": "absent", "query": "demo_http_requests_total", "window": "10s"}],
            "interval": "5s",
            "service": "scrape",
        },
    )
    await wait_until_async(
        lambda: rule_state(kube_cluster, namespace, "target-gone").get("state") == "Inactive",
        timeout=30,
        what="absence rule inactive while the target answers",
    )
    await asyncio.to_thread(demo.stop)
    await wait_until_async(
        lambda: rule_state(kube_cluster, namespace, "target-gone").get("state") == "Firing",
        timeout=60,
        what="absence rule firing once the target is gone",
    )
