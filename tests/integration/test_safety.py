"""What the operator does cannot be turned against the cluster: runbooks reach only what they may.

Each test replays what a trial user did on main with the shipped operator and hand-written
objects, against the real apiserver, and checks what must not happen did not.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s

from localenv.controlplane import KubeCluster, kubectl_binary
from localenv.demo_workload import create_demo_deployment
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_alert, am_webhook
from localenv.procs import wait_until

GROUP, VERSION = "incidentops.dev", "v1alpha1"
TOKEN = "safety-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "smtp-password-hunter2"


class _Alertmanager(BaseHTTPRequestHandler):
    """Stands for Alertmanager's API on loopback: its /api/v2/status holds the whole configuration."""

    seen: list[str] = []

    def do_GET(self) -> None:
        _Alertmanager.seen.append(self.path)
        body = f'{{"config": {{"original": "global:\\n  smtp_auth_password: {SECRET}\\n"}}}}'.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def alertmanager_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Alertmanager)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Alertmanager.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v2/status"
    server.shutdown()


def _custom(cluster: KubeCluster) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(cluster.api)


def _runbook(cluster: KubeCluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Runbook", "metadata": {"name": name}, "spec": spec}
    _custom(cluster).create_namespaced_custom_object(GROUP, VERSION, namespace, "runbooks", body)


def _ready(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    def condition() -> dict[str, Any] | None:
        obj = _custom(cluster).get_namespaced_custom_object(GROUP, VERSION, namespace, "runbooks", name)
        found = [c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"]
        return found[0] if found else None

    found: dict[str, Any] = wait_until(condition, timeout=30, interval=0.2, what=f"Ready of runbook {name}")
    return found


def _fire(operator: OperatorProcess, namespace: str, alertname: str, service: str) -> None:
    labels = {"alertname": alertname, "namespace": namespace, "service": service, "severity": "warning"}
    answer = httpx.post(
        f"{operator.url}/api/v1/alertmanager", json=am_webhook([am_alert(labels)]), headers=AUTH, timeout=30
    )
    assert answer.status_code == 200, answer.text


def _incident(cluster: KubeCluster, namespace: str, service: str) -> dict[str, Any] | None:
    items = _custom(cluster).list_namespaced_custom_object(GROUP, VERSION, namespace, "incidents")["items"]
    return next((i for i in items if i["spec"].get("service") == service), None)


def test_an_http_step_cannot_fetch_what_the_operator_can_reach(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    alertmanager_api: str,
) -> None:
    """The trial's reproduction: an automatic runbook GETs Alertmanager's configuration through the operator."""
    _runbook(
        kube_cluster,
        namespace,
        "leak",
        {
            "match": {"alertnames": ["ConfigLeak"]},
            "automatic": True,
            "minConfidence": 0.1,
            "steps": [{"name": "fetch", "action": "http", "params": {"url": alertmanager_api, "method": "GET"}}],
        },
    )
    operator = operator_factory([namespace], {"INCIDENTOPS_WEBHOOK_TOKEN": TOKEN, "INCIDENTOPS_REMEDIATION_POLL": "1s"})
    ready = _ready(kube_cluster, namespace, "leak")
    assert (ready["status"], ready["reason"]) == ("False", "ProtectedDestination"), ready
    assert "loopback" in ready["message"] and "INCIDENTOPS_HTTP_ALLOW" in ready["message"]

    _fire(operator, namespace, "ConfigLeak", "alertmanager")

    def refused() -> dict[str, Any] | None:
        found = _incident(kube_cluster, namespace, "alertmanager")
        remediation = ((found or {}).get("status") or {}).get("remediation") or {}
        return found if remediation.get("phase") in ("Failed", "Stopped", "AwaitingApproval") else None

    incident = wait_until(refused, timeout=60, interval=0.3, what="the http step refused")
    [step] = incident["status"]["remediation"]["steps"]
    assert step["state"] != "Succeeded", step
    assert "ProtectedDestination" in str(step), step
    assert _Alertmanager.seen == [], "the operator called Alertmanager"
    assert SECRET not in str(incident) and SECRET not in operator.logs()
    conditions = {c["type"]: c for c in incident["status"].get("conditions") or []}
    assert conditions.get("Remediated", {}).get("status") != "True"


def test_readiness_says_now_what_a_run_would_refuse(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    """A runbook that can never run is Ready=False with the run's own reason; the schema offers only what runs."""
    create_demo_deployment(kube_cluster.api, namespace, "web", replicas=1)
    restart = {"name": "restart", "action": "restart"}
    _runbook(kube_cluster, namespace, "elsewhere", {"steps": [{**restart, "target": {"namespace": "kube-system"}}]})
    _runbook(kube_cluster, namespace, "fenced", {"steps": [restart], "safety": {"allowedNamespaces": ["prod"]}})
    _runbook(kube_cluster, namespace, "metadata", {
        "steps": [{"name": "m", "action": "http", "params": {"url": "http://169.254.169.254/latest/"}}],
    })  # fmt: skip
    _runbook(kube_cluster, namespace, "sibling", {
        "steps": [{"name": "m", "action": "http", "params": {"url": "http://db.payments.svc:5432/"}}],
    })  # fmt: skip
    _runbook(kube_cluster, namespace, "fine", {
        "steps": [restart, {"name": "c", "action": "http", "params": {"url": f"http://cache.{namespace}.svc/clear"}}],
    })  # fmt: skip
    operator_factory([namespace], {"INCIDENTOPS_WEBHOOK_TOKEN": TOKEN})
    expected = {
        "elsewhere": ("False", "OtherNamespace"),
        "fenced": ("False", "NamespaceNotAllowed"),
        "metadata": ("False", "ProtectedDestination"),
        "sibling": ("False", "OtherNamespace"),
        "fine": ("True", "Valid"),
    }
    for name, (status, reason) in expected.items():
        ready = _ready(kube_cluster, namespace, name)
        assert (ready["status"], ready["reason"]) == (status, reason), (name, ready)

    statefulset = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Runbook",
        "metadata": {"name": "sts", "namespace": namespace},
        "spec": {"steps": [{"name": "r", "action": "restart", "target": {"kind": "StatefulSet", "name": "db"}}]},
    }
    applied = subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(kube_cluster.kubeconfig), "apply", "-f", "-"],
        input=yaml.safe_dump(statefulset),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert applied.returncode != 0
    assert 'spec.steps[0].target.kind: Unsupported value: "StatefulSet"' in applied.stderr, applied.stderr
    explained = subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(kube_cluster.kubeconfig), "explain", "runbook.spec.steps.target"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert "StatefulSet" not in explained.stdout and "Deployment" in explained.stdout, explained.stdout
