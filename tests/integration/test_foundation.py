"""CRDs, samples and the operator's validation, health and metrics on the real control plane."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s

from localenv.controlplane import KubeCluster, kubectl_binary, repo_root
from localenv.procs import wait_until

SAMPLES = repo_root() / "manifests" / "samples"
GROUP, VERSION = "incidentops.dev", "v1alpha1"
PLURALS = {
    "Incident": "incidents",
    "DetectionRule": "detectionrules",
    "Runbook": "runbooks",
    "EscalationPolicy": "escalationpolicies",
    "Postmortem": "postmortems",
}
TOKEN = {"INCIDENTOPS_WEBHOOK_TOKEN": "integration-token"}


def kubectl(cluster: KubeCluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(cluster.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def apply_samples(cluster: KubeCluster, namespace: str) -> None:
    result = kubectl(cluster, "apply", "-n", namespace, "-f", str(SAMPLES))
    assert result.returncode == 0, result.stderr


def get(cluster: KubeCluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = k8s.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[kind], name
    )
    return obj


def ready_condition(cluster: KubeCluster, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    conditions = get(cluster, namespace, kind, name).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "Ready"), None)


def test_crds_are_established_with_short_names_and_categories(kube_cluster: KubeCluster, crds: list[str]) -> None:
    assert sorted(crds) == sorted(f"{p}.{GROUP}" for p in PLURALS.values())
    result = kubectl(kube_cluster, "api-resources", "--api-group", GROUP, "-o", "wide")
    assert result.returncode == 0, result.stderr
    for short in ("inc", "dr", "rb", "escpol", "pm"):
        assert f" {short} " in result.stdout
    assert "incidentops" in result.stdout  # category


def test_samples_apply_and_show_in_kubectl_get(kube_cluster: KubeCluster, crds: list[str], namespace: str) -> None:
    apply_samples(kube_cluster, namespace)
    listing = kubectl(kube_cluster, "get", "incidentops", "-n", namespace)
    assert listing.returncode == 0, listing.stderr
    for name in ("checkout-error-rate", "checkout-rollback", "checkout-oncall", "checkout-manual-declared"):
        assert name in listing.stdout
    assert "SEVERITY" in listing.stdout and "AUTOMATIC" in listing.stdout


INVALID = [
    (
        """
kind: Runbook
metadata: {name: dup-steps}
spec:
  steps:
    - {name: a, action: restart}
    - {name: a, action: scale, params: {replicas: 3}}
""",
        "step names must be unique",
    ),
    (
        """
kind: EscalationPolicy
metadata: {name: bad-delays}
spec:
  levels:
    - {after: 10m, targets: [{type: user, name: a}], channels: [{type: email, to: [a@example.com]}]}
    - {after: 5m, targets: [{type: user, name: b}], channels: [{type: email, to: [b@example.com]}]}
""",
        "strictly increasing 'after' delays",
    ),
    (
        """
kind: DetectionRule
metadata: {name: both}
spec: {expr: up == 0, conditions: [{query: up, op: "==", threshold: 0}]}
""",
        "exactly one of expr or conditions must be set",
    ),
    (
        """
kind: Incident
metadata: {name: badsev}
spec: {title: x, severity: SEV9}
""",
        'spec.severity: Unsupported value: "SEV9"',
    ),
    (
        """
kind: Runbook
metadata: {name: bad-action}
spec: {steps: [{name: a, action: format-disk}]}
""",
        'spec.steps[0].action: Unsupported value: "format-disk"',
    ),
    (
        """
kind: EscalationPolicy
metadata: {name: slack-without-secret}
spec: {levels: [{after: 0m, targets: [{type: user, name: a}], channels: [{type: slack}]}]}
""",
        "channels need secretRef",
    ),
    (
        """
kind: DetectionRule
metadata: {name: typo}
spec: {expr: up == 0, forr: 5m}
""",
        'unknown field "spec.forr"',
    ),
]


@pytest.mark.parametrize(("manifest", "message"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_objects_are_refused_with_a_readable_message(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, manifest: str, message: str
) -> None:
    result = kubectl(
        kube_cluster, "apply", "-n", namespace, "-f", "-", stdin=f"apiVersion: {GROUP}/{VERSION}\n" + manifest
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_operator_sets_ready_and_answers_health_and_metrics(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Any
) -> None:
    apply_samples(kube_cluster, namespace)
    broken = yaml.safe_load((SAMPLES / "detectionrule.yaml").read_text())
    broken["metadata"] = {"name": "points-nowhere"}
    broken["spec"]["runbookRef"] = {"name": "no-such-runbook"}
    k8s.CustomObjectsApi(kube_cluster.api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "detectionrules", broken
    )
    operator = operator_factory([namespace], env=TOKEN)

    for kind, name in (
        ("DetectionRule", "checkout-error-rate"),
        ("Runbook", "checkout-rollback"),
        ("EscalationPolicy", "checkout-oncall"),
    ):
        cond = wait_until(
            lambda k=kind, n=name: ready_condition(kube_cluster, namespace, k, n),
            timeout=30,
            what=f"{kind} {name} Ready",
        )
        if kind == "DetectionRule":
            # valid, but this operator has no Prometheus to evaluate it on: a rule that cannot work never looks
            # healthy (before its first evaluation it reads Valid, then the evaluator's word)
            assert (cond["status"], cond["reason"]) in (("True", "Valid"), ("False", "NoPrometheus")), cond
        else:
            assert (cond["status"], cond["reason"]) == ("True", "Valid"), cond
        assert cond["observedGeneration"] == get(kube_cluster, namespace, kind, name)["metadata"]["generation"]

    cond = wait_until(
        lambda: ready_condition(kube_cluster, namespace, "DetectionRule", "points-nowhere"),
        timeout=30,
        what="broken rule's Ready",
    )
    assert (cond["status"], cond["reason"]) == ("False", "RunbookNotFound")
    assert "no-such-runbook" in cond["message"]
    core = k8s.CoreV1Api(kube_cluster.api)

    def warned() -> bool:
        events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=points-nowhere").items
        return any(e.reason == "RunbookNotFound" and e.type == "Warning" for e in events)

    wait_until(warned, timeout=15, what="a Warning event on the broken rule")

    incident = wait_until(
        lambda: get(kube_cluster, namespace, "Incident", "checkout-manual-declared").get("status"),
        timeout=30,
        what="manual incident status",
    )
    assert incident["state"] == "Detected" and incident["detectedAt"]

    assert httpx.get(f"{operator.url}/healthz").status_code == 200
    assert httpx.get(f"{operator.url}/readyz").status_code == 200
    metrics = httpx.get(f"{operator.url}/metrics").text
    assert 'incidentops_incidents_open{severity="SEV2"} 1.0' in metrics
    assert "incidentops_alerts_received_total" in metrics


def test_escalation_policy_not_ready_until_its_secret_exists(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Any
) -> None:
    result = kubectl(kube_cluster, "apply", "-n", namespace, "-f", str(SAMPLES / "escalationpolicy.yaml"))
    assert result.returncode == 0, result.stderr
    operator_factory([namespace], env=TOKEN)
    cond = wait_until(
        lambda: ready_condition(kube_cluster, namespace, "EscalationPolicy", "checkout-oncall"),
        timeout=30,
        what="policy Ready",
    )
    assert (cond["status"], cond["reason"]) == ("False", "SecretNotFound")
    levels = get(kube_cluster, namespace, "EscalationPolicy", "checkout-oncall")["status"]["levelCount"]
    assert levels == 2


def test_the_samples_fit_together_in_a_fresh_namespace(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Any,
    prometheus_factory: Any,
) -> None:
    """Everything in manifests/samples/ is Ready, and the declared incident fails only for a reason it states."""
    prometheus = prometheus_factory(scrape_targets=[])
    apply_samples(kube_cluster, namespace)
    env = {**TOKEN, "INCIDENTOPS_PROMETHEUS_URL": prometheus.url, "INCIDENTOPS_NOTIFY_ATTEMPTS": "2"}
    env["INCIDENTOPS_CONTACTS_SECRET"] = f"{namespace}/incidentops-contacts/contacts.yaml"
    operator_factory([namespace], env=env)
    for kind, name in (("Runbook", "checkout-rollback"), ("EscalationPolicy", "checkout-oncall")):
        cond = wait_until(
            lambda k=kind, n=name: ready_condition(kube_cluster, namespace, k, n), timeout=30, what=f"{kind} Ready"
        )
        assert (cond["status"], cond["reason"]) == ("True", "Valid"), (kind, cond)
    cond = wait_until(
        lambda: ready_condition(kube_cluster, namespace, "DetectionRule", "checkout-error-rate"),
        timeout=30,
        what="the rule evaluated",
    )
    assert (cond["status"], cond["reason"]) == ("True", "Evaluated"), cond  # on the demo's metric names

    def failed_delivery() -> dict[str, Any] | None:
        status = get(kube_cluster, namespace, "Incident", "checkout-manual-declared").get("status") or {}
        found = [d for d in (status.get("escalation") or {}).get("deliveries") or [] if d["state"] == "Failed"]
        return found[0] if found else None

    failed = wait_until(failed_delivery, timeout=30, what="the sample page's outcome")
    assert failed["channel"] == "webhook" and failed["attempts"] == 1  # refused at once: nothing to retry
    assert "destination refused (ServiceNotFound)" in failed["message"] and "incident-receiver" in failed["message"]
    status = get(kube_cluster, namespace, "Incident", "checkout-manual-declared")["status"]
    assert status["escalation"]["summary"] == "1 (failed)"
    assert not any(t["type"] == "Notified" for t in status["timeline"])  # nothing was delivered


def test_operator_refuses_bad_configuration_clearly(kube_cluster: KubeCluster, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KUBECONFIG": str(kube_cluster.kubeconfig),
        "INCIDENTOPS_HTTP_PORT": "not-a-port",
        "INCIDENTOPS_WEBHOOK_TOKEN": "x",
    }
    result = subprocess.run(
        [sys.executable, "-m", "incidentops"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "INCIDENTOPS_HTTP_PORT" in result.stderr and "Traceback" not in result.stderr


def test_the_runbook_library_applies_and_is_ready(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Any
) -> None:
    library = Path(__file__).resolve().parents[2] / "runbooks"
    result = kubectl(kube_cluster, "apply", "-n", namespace, "-f", str(library))
    assert result.returncode == 0, result.stderr
    names = [yaml.safe_load(p.read_text())["metadata"]["name"] for p in sorted(library.glob("*.yaml"))]
    assert len(names) == 6
    operator_factory([namespace], env=TOKEN)
    for name in names:
        cond = wait_until(
            lambda n=name: ready_condition(kube_cluster, namespace, "Runbook", n),
            timeout=30,
            what=f"Runbook {name} Ready",
        )
        assert (cond["status"], cond["reason"]) == ("True", "Valid"), (name, cond)
