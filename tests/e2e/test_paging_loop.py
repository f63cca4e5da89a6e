"""The whole loop, paged: bad image → Prometheus → Alertmanager → Incident → PagerDuty trigger;
`kubectl incident ack` → acknowledge; recovery → resolve (the PagerDuty stand-in records each)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner
from kubernetes import client as k8s

from incidentops.cli.main import cli
from localenv.controlplane import KubeCluster
from localenv.demo_workload import DemoWorkloadProcess, error_ratio_rule
from localenv.monitoring import Alertmanager, Prometheus
from localenv.standins import StandIns

TOKEN = "e2e-paging-token"


def incidents(cluster: KubeCluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = k8s.CustomObjectsApi(cluster.api).list_namespaced_custom_object(
        "incidentops.dev", "v1alpha1", namespace, "incidents"
    )["items"]
    return items


def actions(standins: StandIns) -> list[str]:
    return [r.json["event_action"] for r in standins.received("pagerduty") if r.json and not r.faulted]


async def test_pagerduty_hears_trigger_acknowledge_and_resolve(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., Any],
    demo_workload: Callable[..., DemoWorkloadProcess],
    prometheus_factory: Callable[..., Prometheus],
    alertmanager_factory: Callable[..., Alertmanager],
    standins: StandIns,
) -> None:
    key = base64.b64encode(b"R0UTINGKEYE2E00000000000000000001").decode()
    k8s.CoreV1Api(kube_cluster.api).create_namespaced_secret(
        namespace, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="pd"), data={"key": key})
    )
    policy = {
        "apiVersion": "incidentops.dev/v1alpha1",
        "kind": "EscalationPolicy",
        "metadata": {"name": "sev1"},
        "spec": {
            "match": {"severities": ["SEV1"]},
            "levels": [
                {
                    "after": "0s",
                    "targets": [{"type": "user", "name": "alice"}],
                    "channels": [
                        {
                            "type": "pagerduty",
                            "secretRef": {"name": "pd", "key": "key"},
                            "url": standins.base("pagerduty"),
                        }
                    ],
                }
            ],
        },
    }
    k8s.CustomObjectsApi(kube_cluster.api).create_namespaced_custom_object(
        "incidentops.dev", "v1alpha1", namespace, "escalationpolicies", policy
    )
    operator = await asyncio.to_thread(
        operator_factory, [namespace], {"INCIDENTOPS_WEBHOOK_TOKEN": TOKEN, "INCIDENTOPS_NOTIFY_ALLOW": standins.allow}
    )
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
    await asyncio.to_thread(demo.set_image, "bad")

    [trigger] = await asyncio.to_thread(standins.wait_for, "pagerduty", 1, 120.0)
    assert trigger.json["event_action"] == "trigger" and trigger.json["payload"]["severity"] == "critical"
    [incident] = incidents(kube_cluster, namespace)
    name = incident["metadata"]["name"]
    assert trigger.json["dedup_key"] == f"incidentops/{namespace}/{name}/{incident['metadata']['uid']}"

    result = CliRunner().invoke(
        cli, ["ack", name, "-n", namespace, "--by", "alice", "--kubeconfig", str(kube_cluster.kubeconfig)]
    )
    assert result.exit_code == 0, result.output
    await asyncio.to_thread(standins.wait_for, "pagerduty", 2, 30.0)
    assert actions(standins) == ["trigger", "acknowledge"]

    await asyncio.to_thread(demo.set_image, "v1")
    await asyncio.to_thread(standins.wait_for, "pagerduty", 3, 120.0)
    assert actions(standins) == ["trigger", "acknowledge", "resolve"]
    assert {r.json["dedup_key"] for r in standins.received("pagerduty") if r.json} == {trigger.json["dedup_key"]}
    [done] = incidents(kube_cluster, namespace)
    assert done["status"]["state"] == "Resolved"
    assert done["status"]["escalation"]["stopped"] == "Resolved"
