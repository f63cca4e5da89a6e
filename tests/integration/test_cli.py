"""`kubectl incident` against the real control plane, with and without the operator running.

The CLI runs in-process through click's CliRunner with --kubeconfig, as kubectl would run it;
incidents are created with the plain CustomObjectsApi, the way any client would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from kubernetes import client as k8s

from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.cli.actions import Incident, Refused, acknowledgement_patch, check_acknowledge, write_intent
from incidentops.cli.main import cli
from incidentops.kube import KubeClient, load_api_client
from localenv.controlplane import KubeCluster
from localenv.operator_process import OperatorProcess
from localenv.procs import free_port

GROUP, VERSION, PLURAL = "incidentops.dev", "v1alpha1", "incidents"
OPERATOR_ENV = {"INCIDENTOPS_WEBHOOK_TOKEN": "cli-test-token"}
Run = Callable[..., Result]


@pytest.fixture
def run(kube_cluster: KubeCluster, crds: list[str]) -> Run:
    """`run("list", "-n", ns)`: the plugin with this cluster's kubeconfig; asserts the exit code."""

    def invoke(*args: str, code: int = 0, env: dict[str, str] | None = None) -> Result:
        result = CliRunner().invoke(cli, [*args, "--kubeconfig", str(kube_cluster.kubeconfig)], env=env)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
        assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
        return result

    return invoke


def create_incident(
    cluster: KubeCluster, namespace: str, name: str, severity: str, service: str, **spec: Any
) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {"title": f"{service} is failing", "severity": severity, "service": service, **spec},
    }
    obj = k8s.CustomObjectsApi(cluster.api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    assert isinstance(obj, dict)
    return obj


def get_incident(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    obj = k8s.CustomObjectsApi(cluster.api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    assert isinstance(obj, dict)
    return obj


def names(result: Result) -> list[str]:
    """The NAME column of a table printed without -A."""
    return [line.split()[0] for line in result.stdout.splitlines()[1:]]


def test_list_sorts_filters_and_prints_json(kube_cluster: KubeCluster, namespace: str, run: Run) -> None:
    create_incident(kube_cluster, namespace, "search-slow", "SEV3", "search")
    create_incident(kube_cluster, namespace, "checkout-down", "SEV1", "checkout")
    create_incident(kube_cluster, namespace, "db-lag", "SEV2", "db")
    k8s.CustomObjectsApi(kube_cluster.api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "db-lag", {"status": {"state": "Resolved"}}
    )

    table = run("list", "-n", namespace)
    assert table.stdout.splitlines()[0].split() == ["NAME", "SEVERITY", "STATE", "SERVICE", "ALERTS", "AGE"]
    assert names(table) == ["checkout-down", "db-lag", "search-slow"]
    assert table.stdout.splitlines()[1].split()[:5] == ["checkout-down", "SEV1", "Detected", "checkout", "0"]

    aliased = run("list", "-n", namespace, "--severity", "critical", "--severity", "p3")
    assert names(aliased) == ["checkout-down", "search-slow"]
    assert "(critical means SEV1)" in aliased.stderr and "(p3 means SEV3)" in aliased.stderr
    assert names(run("list", "-n", namespace, "--state", "RESOLVED")) == ["db-lag"]
    assert names(run("list", "-n", namespace, "--state", "open", "--severity", "SEV3")) == ["search-slow"]

    data = json.loads(run("list", "-n", namespace, "-o", "json", "--severity", "high").stdout)
    assert [(d["name"], d["namespace"], d["severity"], d["state"], d["service"]) for d in data] == [
        ("db-lag", namespace, "SEV2", "Resolved", "db")
    ]

    csv_lines = run("list", "-n", namespace, "-o", "csv").stdout.splitlines()
    assert csv_lines[0].startswith("namespace,name,severity") and len(csv_lines) == 4

    everywhere = run("list", "-A").stdout.splitlines()
    assert everywhere[0].split()[0] == "NAMESPACE"
    assert any(line.split()[:2] == [namespace, "checkout-down"] for line in everywhere)

    bad = run("list", "-n", namespace, "--severity", "sev9", code=2)
    assert "unknown severity 'sev9'" in bad.stderr


def test_empty_list_and_namespace_from_the_kubeconfig_context(
    kube_cluster: KubeCluster, namespace: str, run: Run, tmp_path: Path
) -> None:
    empty = run("list", "-n", namespace)
    assert empty.stdout == ""
    assert empty.stderr.strip() == f'No incidents found in namespace "{namespace}".'
    assert json.loads(run("list", "-n", namespace, "-o", "json").stdout) == []

    config = yaml.safe_load(kube_cluster.kubeconfig.read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = namespace
    pinned = tmp_path / "kubeconfig"
    pinned.write_text(yaml.safe_dump(config))
    create_incident(kube_cluster, namespace, "api-5xx", "SEV2", "api")
    # the global flag given before the verb works too, as with kubectl
    result = CliRunner().invoke(cli, ["--kubeconfig", str(pinned), "list"])
    assert result.exit_code == 0, result.stderr
    assert names(result) == ["api-5xx"]


def test_describe_and_timeline_of_a_fresh_incident(kube_cluster: KubeCluster, namespace: str, run: Run) -> None:
    create_incident(kube_cluster, namespace, "api-5xx", "SEV2", "api", category="availability", source="alertmanager")
    text = run("describe", "api-5xx", "-n", namespace).stdout
    for expected in (
        "Name:           api-5xx",
        f"Namespace:      {namespace}",
        "Title:          api is failing",
        "Severity:       SEV2",
        "Service:        api",
        "Category:       availability",
        "Source:         alertmanager",
        "Detected (not yet seen by the operator)",
        "Time to acknowledge:  <none>",
        "Count: 0   Firing: 0   Deliveries: 0",
    ):
        assert expected in text, text
    empty = run("timeline", "api-5xx", "-n", namespace)
    assert "No timeline entries" in empty.stderr


def test_ack_writes_only_spec_and_refuses_a_second_ack(kube_cluster: KubeCluster, namespace: str, run: Run) -> None:
    created = create_incident(kube_cluster, namespace, "api-5xx", "SEV2", "api")

    # without --by: who the apiserver says the caller is (SelfSubjectReview), never $USER
    review = k8s.AuthenticationV1Api(kube_cluster.api).create_self_subject_review({})
    me = review.status.user_info.username
    done = run("ack", "api-5xx", "-n", namespace, env={"USER": "dana"})
    assert f'incident "api-5xx" acknowledged by {me}' in done.stdout and me != "dana"

    obj = get_incident(kube_cluster, namespace, "api-5xx")
    assert obj["spec"]["acknowledgement"]["by"] == me
    assert obj["spec"]["acknowledgement"]["at"].endswith("Z")
    assert {k: v for k, v in obj["spec"].items() if k != "acknowledgement"} == created["spec"]
    assert "status" not in obj  # nobody but the operator writes status

    again = run("ack", "api-5xx", "-n", namespace, "--by", "erin", code=1)
    assert again.stderr.startswith(f'error: incident "api-5xx" is already acknowledged by {me}')
    assert get_incident(kube_cluster, namespace, "api-5xx")["spec"]["acknowledgement"]["by"] == me


def test_a_concurrent_change_makes_ack_read_and_check_again(kube_cluster: KubeCluster, namespace: str) -> None:
    """Between our read and our write someone else writes; the guarded patch conflicts and we re-check."""
    create_incident(kube_cluster, namespace, "api-5xx", "SEV2", "api")
    custom = k8s.CustomObjectsApi(kube_cluster.api)
    kube = KubeClient(load_api_client(str(kube_cluster.kubeconfig)))
    now = datetime.now(UTC)
    seen: list[str] = []

    def meanwhile(name: str, patch: dict[str, Any]) -> Callable[[Incident], None]:
        def precheck(incident: Incident) -> None:
            seen.append(incident.resource_version)
            if len(seen) == 1:  # another responder writes right after our first read
                custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)
            check_acknowledge(incident, now)

        return precheck

    ack_patch = acknowledgement_patch("alice", now)
    written = write_intent(kube, namespace, "api-5xx", meanwhile("api-5xx", {"spec": {"assignee": "frank"}}), ack_patch)
    assert len(seen) == 2 and seen[0] != seen[1]
    assert written.spec.assignee == "frank" and written.spec.acknowledgement is not None
    assert written.spec.acknowledgement.by == "alice"

    create_incident(kube_cluster, namespace, "db-lag", "SEV3", "db")
    seen.clear()
    with pytest.raises(Refused, match="already acknowledged by grace"):
        write_intent(
            kube, namespace, "db-lag", meanwhile("db-lag", {"spec": {"acknowledgement": {"by": "grace"}}}), ack_patch
        )
    assert kube.get(INCIDENT, namespace, "db-lag")["spec"]["acknowledgement"]["by"] == "grace"
    kube.api_client.close()


def test_ack_and_resolve_are_recorded_by_the_operator(
    kube_cluster: KubeCluster,
    namespace: str,
    run: Run,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    create_incident(kube_cluster, namespace, "checkout-down", "SEV1", "checkout")
    operator_factory([namespace], env=OPERATOR_ENV)

    acked = run("ack", "checkout-down", "-n", namespace, "--by", "alice", "--wait", "--timeout", "30s")
    assert "recorded by the operator: state Acknowledged" in acked.stdout
    status = get_incident(kube_cluster, namespace, "checkout-down")["status"]
    assert status["state"] == "Acknowledged" and status["acknowledgedBy"] == "alice"
    assert status["acknowledgedAt"] and status["metrics"]["timeToAcknowledgeSeconds"] >= 0

    refused = run("ack", "checkout-down", "-n", namespace, "--by", "bob", code=1)
    assert "already acknowledged by alice" in refused.stderr

    resolved = run(
        "resolve",
        "checkout-down",
        "-n",
        namespace,
        "--by",
        "alice",
        "--summary",
        "rolled back the bad deploy",
        "--root-cause",
        "connection pool set to 1",
        "--wait",
    )
    assert "recorded by the operator: state Resolved" in resolved.stdout
    obj = get_incident(kube_cluster, namespace, "checkout-down")
    assert obj["spec"]["resolution"]["rootCause"] == "connection pool set to 1"
    assert obj["status"]["state"] == "Resolved" and obj["status"]["resolvedBy"] == "alice"
    assert obj["status"]["metrics"]["timeToResolveSeconds"] >= 0

    timeline = run("timeline", "checkout-down", "-n", namespace).stdout.splitlines()
    assert timeline[0].split() == ["TIME", "TYPE", "ACTOR", "MESSAGE"]
    # The lifecycle's entries, in its order; escalation's (NoEscalationPolicy: this namespace has no
    # policy) and the postmortem's (a SEV1 was resolved) are other concerns', written whenever their turn
    # comes, and are checked where they belong.
    lifecycle = [line for line in timeline[1:] if line.split()[1] in ("Detected", "Acknowledged", "Resolved")]
    assert [line.split()[1] for line in lifecycle] == ["Detected", "Acknowledged", "Resolved"]
    others = {"NoEscalationPolicy", "PostmortemWritten"}
    assert {line.split()[1] for line in timeline[1:]} <= {"Detected", "Acknowledged", "Resolved", *others}
    assert "rolled back the bad deploy" in lifecycle[-1] and "connection pool set to 1" in lifecycle[-1]

    described = run("describe", "checkout-down", "-n", namespace).stdout
    assert "by alice" in described and "Root cause:     connection pool set to 1" in described
    conditions = described.split("Conditions:\n", 1)[1].split("Timeline:", 1)[0].splitlines()
    assert ["Resolved", "True", "ResolvedByResponder"] in [line.split()[:3] for line in conditions]

    assert (
        "already resolved by alice"
        in run("resolve", "checkout-down", "-n", namespace, "--summary", "again", "--by", "bob", code=1).stderr
    )


def test_ack_on_a_resolved_incident_is_refused(
    kube_cluster: KubeCluster, namespace: str, run: Run, operator_factory: Callable[..., OperatorProcess]
) -> None:
    create_incident(kube_cluster, namespace, "db-lag", "SEV3", "db")
    operator_factory([namespace], env=OPERATOR_ENV)
    run("resolve", "db-lag", "-n", namespace, "--summary", "replica caught up", "--by", "carol", "--wait")

    refused = run("ack", "db-lag", "-n", namespace, "--by", "dave", code=1)
    assert refused.stderr.strip() == 'error: incident "db-lag" is already Resolved; there is nothing to acknowledge'
    assert "acknowledgement" not in get_incident(kube_cluster, namespace, "db-lag")["spec"]


@pytest.mark.parametrize(
    "args",
    [
        ("describe", "ghost"),
        ("timeline", "ghost"),
        ("ack", "ghost", "--by", "x"),
        ("resolve", "ghost", "--summary", "s"),
    ],
)
def test_missing_incident_is_one_clear_line(namespace: str, run: Run, args: Sequence[str]) -> None:
    result = run(*args, "-n", namespace, code=1, env={"USER": "x"})
    assert result.stderr == f'error: incident "ghost" not found in namespace "{namespace}"\n'
    assert result.stdout == ""


def test_unreachable_apiserver_is_a_clear_error(kube_cluster: KubeCluster, tmp_path: Path) -> None:
    config = yaml.safe_load(kube_cluster.kubeconfig.read_text())
    port = free_port()
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{port}"
    dead = tmp_path / "kubeconfig"
    dead.write_text(yaml.safe_dump(config))

    result = CliRunner().invoke(cli, ["list", "-n", "default", "--kubeconfig", str(dead)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot reach the Kubernetes API server at https://127.0.0.1:{port}")
    assert "Traceback" not in result.output and "object at 0x" not in result.stderr

    missing = CliRunner().invoke(cli, ["list", "--kubeconfig", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and missing.stderr.startswith("error: cannot read kubeconfig")
