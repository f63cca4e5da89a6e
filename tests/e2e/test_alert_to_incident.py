"""The whole loop with real servers: bad image → Prometheus rule → Alertmanager → one Incident → Resolved."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s

from localenv.controlplane import KubeCluster
from localenv.demo_workload import DemoWorkloadProcess, error_ratio_rule
from localenv.monitoring import Alertmanager, Prometheus
from localenv.procs import wait_until_async

TOKEN = "e2e-token"


def incidents(cluster: KubeCluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = k8s.CustomObjectsApi(cluster.api).list_namespaced_custom_object(
        "incidentops.dev", "v1alpha1", namespace, "incidents"
    )["items"]
    return items


async def test_bad_image_opens_one_incident_and_recovery_resolves_it(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., Any],
    demo_workload: Callable[..., DemoWorkloadProcess],
    prometheus_factory: Callable[..., Prometheus],
    alertmanager_factory: Callable[..., Alertmanager],
) -> None:
    operator = await asyncio.to_thread(operator_factory, [namespace], {"INCIDENTOPS_WEBHOOK_TOKEN": TOKEN})
    demo = await asyncio.to_thread(demo_workload, namespace, "checkout")
    alertmanager = await asyncio.to_thread(
        alertmanager_factory, webhook_url=f"{operator.url}/api/v1/alertmanager", bearer_token=TOKEN
    )
    prometheus = await asyncio.to_thread(
        prometheus_factory,
        scrape_targets=[demo.target],
        rules=error_ratio_rule("DemoHighErrorRatio", "checkout", namespace=namespace),
        alertmanager_url=alertmanager.url,
    )
    await asyncio.to_thread(prometheus.wait_for_value, f'up{{instance="{demo.target}"}}', lambda v: v == 1.0, 30.0)
    assert incidents(kube_cluster, namespace) == []

    await asyncio.to_thread(demo.set_image, "bad")
    # wait for the status too: the Incident exists a moment before the ingester's first status write
    [incident] = await wait_until_async(
        lambda: [i for i in incidents(kube_cluster, namespace) if i.get("status")],
        timeout=90,
        what="an Incident from the Alertmanager webhook, with its status",
    )
    spec = incident["spec"]
    assert (spec["severity"], spec["service"], spec["source"]) == ("SEV1", "checkout", "alertmanager")
    assert spec["title"].startswith("checkout error ratio is")
    assert incident["status"]["alerts"]["firing"] == 1

    await asyncio.to_thread(demo.set_image, "v1")

    def resolved() -> dict[str, Any] | None:
        found = incidents(kube_cluster, namespace)
        assert len(found) == 1, [i["metadata"]["name"] for i in found]
        return found[0] if (found[0].get("status") or {}).get("state") == "Resolved" else None

    done = await wait_until_async(resolved, timeout=90, what="the Incident resolved")
    status = done["status"]
    assert status["alerts"]["count"] == 1 and status["alerts"]["firing"] == 0
    assert [e["type"] for e in status["timeline"]][:2] == ["Detected", "AlertFiring"]
    assert {"AlertResolved", "Resolved"} <= {e["type"] for e in status["timeline"]}
    assert status["metrics"]["timeToResolveSeconds"] > 0
    assert status["metrics"]["timeToDetectSeconds"] is not None
