"""The operator responds, with real Prometheus and Alertmanager: it rolls a bad release back and proves it
worked, or, when its fix does not help, undoes it and asks for a human."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from kubernetes import client as k8s

from localenv.controlplane import KubeCluster
from localenv.demo_workload import ERROR_RATIO, DemoWorkloadProcess, error_ratio_rule
from localenv.monitoring import Alertmanager, Prometheus
from localenv.procs import free_port, wait_until_async

TOKEN = "e2e-token"
GROUP, VERSION = "incidentops.dev", "v1alpha1"
ALERT = "DemoHighErrorRatio"


def incidents(cluster: KubeCluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = k8s.CustomObjectsApi(cluster.api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "incidents"
    )["items"]
    return items


def apply_runbook(cluster: KubeCluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Runbook", "metadata": {"name": name}, "spec": spec}
    k8s.CustomObjectsApi(cluster.api).create_namespaced_custom_object(GROUP, VERSION, namespace, "runbooks", body)


def image_of(cluster: KubeCluster, namespace: str, name: str) -> str:
    live = k8s.AppsV1Api(cluster.api).read_namespaced_deployment(name, namespace)
    return str(live.spec.template.spec.containers[0].image)


Loop = Callable[[dict[str, str]], Awaitable[DemoWorkloadProcess]]


@pytest.fixture
def monitored(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., Any],
    demo_workload: Callable[..., DemoWorkloadProcess],
    prometheus_factory: Callable[..., Prometheus],
    alertmanager_factory: Callable[..., Alertmanager],
) -> Loop:
    """`await monitored(env)`: the demo workload, scraped and alerted on, the operator pointed at that Prometheus."""

    async def start(env: dict[str, str]) -> DemoWorkloadProcess:
        demo = await asyncio.to_thread(demo_workload, namespace, "checkout")
        port = free_port()  # Alertmanager must know where the operator listens, the operator where Prometheus does
        alertmanager = await asyncio.to_thread(
            alertmanager_factory, webhook_url=f"http://127.0.0.1:{port}/api/v1/alertmanager", bearer_token=TOKEN
        )
        prometheus = await asyncio.to_thread(
            prometheus_factory,
            scrape_targets=[demo.target],
            rules=error_ratio_rule(ALERT, "checkout", namespace=namespace),
            alertmanager_url=alertmanager.url,
        )
        settings = {
            "INCIDENTOPS_WEBHOOK_TOKEN": TOKEN,
            "INCIDENTOPS_PROMETHEUS_URL": prometheus.url,
            "INCIDENTOPS_REMEDIATION_POLL": "1s",
            **env,
        }
        await asyncio.to_thread(operator_factory, [namespace], settings, 60.0, port)
        up = f'up{{instance="{demo.target}"}}'
        await asyncio.to_thread(prometheus.wait_for_value, up, lambda v: v == 1.0, 30.0)
        return demo

    return start


async def test_a_bad_release_is_rolled_back_verified_and_resolved(
    kube_cluster: KubeCluster, namespace: str, monitored: Loop
) -> None:
    apply_runbook(
        kube_cluster,
        namespace,
        "rollback-bad-release",
        {
            "match": {"alertnames": [ALERT]},
            "steps": [
                {"name": "rollback", "action": "rollback", "target": {"name": "checkout"}, "onFailure": "escalate"},
                {"name": "wait", "action": "wait-rollout", "target": {"name": "checkout"}, "timeout": "1m"},
            ],
            "verify": {"query": f"{ERROR_RATIO} > 0.2", "window": "3s", "timeout": "1m"},
            "automatic": True,
            "minConfidence": 0.7,
        },
    )
    demo = await monitored({"INCIDENTOPS_RISK_CEILING": "medium"})
    good = image_of(kube_cluster, namespace, "checkout")
    await asyncio.to_thread(demo.set_image, "bad")

    def settled() -> dict[str, Any] | None:
        found = incidents(kube_cluster, namespace)
        assert len(found) <= 1, [i["metadata"]["name"] for i in found]
        status = (found[0].get("status") or {}) if found else {}
        remediation = status.get("remediation") or {}
        return found[0] if status.get("state") == "Resolved" and remediation.get("phase") == "Verified" else None

    done = await wait_until_async(settled, timeout=150, what="the bad release rolled back, verified and resolved")
    assert image_of(kube_cluster, namespace, "checkout") == good  # the operator, not a human, rolled it back
    status = done["status"]
    remediation = status["remediation"]
    rollback = remediation["steps"][0]
    assert rollback["state"] == "Succeeded" and rollback["automatic"] is True
    assert rollback["before"]["toRevision"] == "1" and rollback["before"]["revision"] == "2"
    assert remediation["verified"] is True
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Remediated"] == ("True", "Verified")
    kinds = [e["type"] for e in status["timeline"]]
    for expected in ("RunbookChosen", "StepStarted", "Mitigating", "RemediationVerified", "Resolved"):
        assert expected in kinds, kinds
    assert status["metrics"]["timeToMitigateSeconds"] > 0


async def test_a_fix_that_does_not_help_is_undone_and_escalated(
    kube_cluster: KubeCluster, namespace: str, monitored: Loop
) -> None:
    apply_runbook(
        kube_cluster,
        namespace,
        "scale-out",
        {
            "match": {"alertnames": [ALERT]},
            "steps": [{"name": "scale", "action": "scale", "params": {"replicas": 3}, "target": {"name": "checkout"}}],
            "verify": {"query": f"{ERROR_RATIO} > 0.2", "window": "3s", "timeout": "8s"},
            "automatic": True,
            "minConfidence": 0.7,
        },
    )
    demo = await monitored({})
    await asyncio.to_thread(demo.set_image, "bad")

    def failed() -> dict[str, Any] | None:
        found = incidents(kube_cluster, namespace)
        remediation = ((found[0].get("status") or {}).get("remediation") or {}) if found else {}
        return found[0] if remediation.get("phase") == "Failed" else None

    done = await wait_until_async(failed, timeout=120, what="the run failed verification and was undone")
    status = done["status"]
    remediation = status["remediation"]
    assert remediation["verified"] is False and remediation["failure"] == "VerificationFailed"
    assert remediation["steps"][0]["state"] == "RolledBack"
    live = k8s.AppsV1Api(kube_cluster.api).read_namespaced_deployment("checkout", namespace)
    assert live.spec.replicas == 2  # scaled back to what it was
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Remediated"] == ("False", "VerificationFailed")
    assert conditions["Escalated"] == ("True", "RemediationFailed")
    assert status["state"] not in ("Monitoring", "Resolved")  # still firing: nobody pretends it is fixed
    kinds = [e["type"] for e in status["timeline"]]
    assert {"VerificationFailed", "StepUndone", "EscalationRequested"} <= set(kinds), kinds
