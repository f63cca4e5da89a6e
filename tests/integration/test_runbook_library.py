"""Every Runbook in runbooks/ is applied as shipped and run by the operator against a real cluster.

The automatic ones (restart, delete stuck pods, scale, clear a cache) act on their own; the
medium-risk ones (cordon, rollback) wait for `kubectl incident approve` and act after it. Only
clear-cache's URL is pointed at a local stand-in for the service's admin endpoint.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s

from localenv.controlplane import KubeCluster, kubectl_binary
from localenv.demo_workload import create_demo_deployment, set_deployment_image
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_alert, am_webhook
from localenv.procs import wait_until

GROUP, VERSION = "incidentops.dev", "v1alpha1"
TOKEN = "library-token"
LIBRARY = Path(__file__).resolve().parents[2] / "runbooks"


class _CacheAdmin(BaseHTTPRequestHandler):
    cleared: list[str] = []

    def do_POST(self) -> None:
        _CacheAdmin.cleared.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def cache_admin() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CacheAdmin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _CacheAdmin.cleared.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/admin/cache/clear"
    server.shutdown()


def fire(operator: OperatorProcess, namespace: str, alertname: str, **labels: str) -> None:
    body = am_webhook([am_alert({"alertname": alertname, "namespace": namespace, "severity": "warning", **labels})])
    response = httpx.post(
        f"{operator.url}/api/v1/alertmanager", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    assert response.status_code == 200, response.text


def remediation(cluster: KubeCluster, namespace: str, runbook: str) -> tuple[str, dict[str, Any]]:
    items = k8s.CustomObjectsApi(cluster.api).list_namespaced_custom_object(GROUP, VERSION, namespace, "incidents")
    for item in items["items"]:
        found = (item.get("status") or {}).get("remediation") or {}
        if found.get("runbook") == runbook:
            return item["metadata"]["name"], found
    return "", {}


def wait_phase(cluster: KubeCluster, namespace: str, runbook: str, *phases: str) -> tuple[str, dict[str, Any]]:
    def reached() -> tuple[str, dict[str, Any]] | None:
        name, found = remediation(cluster, namespace, runbook)
        return (name, found) if found.get("phase") in phases else None

    result: tuple[str, dict[str, Any]] = wait_until(
        reached, timeout=60, interval=0.3, what=f"runbook {runbook} {' or '.join(phases)}"
    )
    return result


def approve(cluster: KubeCluster, namespace: str, incident: str) -> None:
    from click.testing import CliRunner  # noqa: PLC0415

    from incidentops.cli.main import cli  # noqa: PLC0415

    result = CliRunner().invoke(
        cli, ["approve", incident, "-n", namespace, "--by", "alice", "--kubeconfig", str(cluster.kubeconfig)]
    )
    assert result.exit_code == 0, result.output


def test_every_library_runbook_runs_as_shipped(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    cache_admin: str,
) -> None:
    applied = subprocess.run(
        [
            str(kubectl_binary()),
            "--kubeconfig",
            str(kube_cluster.kubeconfig),
            "apply",
            "-n",
            namespace,
            "-f",
            str(LIBRARY),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert applied.returncode == 0, applied.stderr
    custom = k8s.CustomObjectsApi(kube_cluster.api)
    clear_cache = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "runbooks", "clear-cache")
    clear_cache["spec"]["steps"][0]["params"]["url"] = cache_admin
    custom.replace_namespaced_custom_object(GROUP, VERSION, namespace, "runbooks", "clear-cache", clear_cache)
    for name in ("web", "api", "shop", "checkout"):
        create_demo_deployment(kube_cluster.api, namespace, name, replicas=2)
    apps = k8s.AppsV1Api(kube_cluster.api)
    good = apps.read_namespaced_deployment("checkout", namespace).spec.template.spec.containers[0].image
    set_deployment_image(kube_cluster.api, namespace, "checkout", "demo/checkout:v2")  # the suspect release
    allow = cache_admin.split("/")[2]  # the stand-in's host:port: loopback is reached only when named
    env = {"INCIDENTOPS_WEBHOOK_TOKEN": TOKEN, "INCIDENTOPS_REMEDIATION_POLL": "1s", "INCIDENTOPS_HTTP_ALLOW": allow}
    operator = operator_factory([namespace], env)
    try:
        fire(operator, namespace, "MemoryLeak", service="web", deployment="web")
        fire(operator, namespace, "KubePodCrashLooping", service="api", deployment="api")
        fire(operator, namespace, "SaturationHigh", service="shop", deployment="shop", category="capacity")
        fire(operator, namespace, "StaleCache", service="cache")
        fire(operator, namespace, "NodeNotReady", service="nodes", node="node-000001")
        fire(operator, namespace, "HighErrorRate", service="checkout", deployment="checkout", category="availability")

        for runbook in ("restart-on-leak", "delete-stuck-pods", "scale-on-saturation", "clear-cache"):
            _, done = wait_phase(kube_cluster, namespace, runbook, "Done")
            assert all(s["state"] == "Succeeded" for s in done["steps"]), (runbook, done)
            assert done["steps"][0]["automatic"] is True
        assert apps.read_namespaced_deployment("shop", namespace).spec.replicas == 6
        assert _CacheAdmin.cleared == ["/admin/cache/clear"]

        cordon, waiting = wait_phase(kube_cluster, namespace, "cordon-bad-node", "AwaitingApproval")
        assert waiting["steps"][0]["dryRunDiff"] == "spec.unschedulable: false -> true"
        approve(kube_cluster, namespace, cordon)
        wait_phase(kube_cluster, namespace, "cordon-bad-node", "Done")
        assert k8s.CoreV1Api(kube_cluster.api).read_node("node-000001").spec.unschedulable is True

        rollback, waiting = wait_phase(kube_cluster, namespace, "rollback-bad-release", "AwaitingApproval")
        assert f'"demo/checkout:v2" -> "{good}"' in waiting["steps"][0]["dryRunDiff"]
        approve(kube_cluster, namespace, rollback)
        # No Prometheus here: the run reaches its verification and stays there (it would fail at its timeout).
        _, verifying = wait_phase(kube_cluster, namespace, "rollback-bad-release", "Verifying")
        assert [s["state"] for s in verifying["steps"]] == ["Succeeded", "Succeeded"]
        live = apps.read_namespaced_deployment("checkout", namespace)
        assert live.spec.template.spec.containers[0].image == good
    finally:
        k8s.CoreV1Api(kube_cluster.api).patch_node("node-000001", {"spec": {"unschedulable": False}})
