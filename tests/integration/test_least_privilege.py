"""The operator with exactly the rights the chart grants, and who may act on an Incident.

The chart is installed on the real apiserver (namespaced mode, no pods of its own: replicaCount 0),
and the operator runs as its ServiceAccount, with a TokenRequest token in a kubeconfig, as the pod
would. People are impersonated (`kubectl --as`), so RBAC and the admission policy judge them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from kubernetes import client as k8s

from incidentops.cli.main import cli
from localenv.controlplane import KubeCluster, api_client, kubectl_binary
from localenv.demo_workload import create_demo_deployment
from localenv.helm import install, service_account_kubeconfig, uninstall
from localenv.monitoring import Prometheus
from localenv.names import namespace_for_test
from localenv.objects import create, get, listed, secret, status
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_alert, am_webhook
from localenv.procs import wait_until
from localenv.standins import StandIns

pytestmark = pytest.mark.integration
GROUP, VERSION = "incidentops.dev", "v1alpha1"
FIRES = 'label_replace(vector(5), "service", "payments", "", "")'


@dataclass
class Release:
    """The chart installed for one watched namespace, and a kubeconfig acting as its ServiceAccount.

    Each test has its own release name: a release left behind by a failed test (its ClusterRoles are
    cluster-wide) never blocks the next install."""

    name: str
    namespace: str
    other: str
    kubeconfig: Path

    @property
    def fullname(self) -> str:
        return f"{self.name}-incidentops"

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.fullname}"


def kubectl(cluster: KubeCluster, *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    impersonate = ["--as", user] if user else []
    return subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(cluster.kubeconfig), *impersonate, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def patch_spec(cluster: KubeCluster, namespace: str, name: str, spec: dict[str, Any], user: str) -> str:
    """A person's write to an Incident's spec; returns "" when admitted, else the apiserver's refusal."""
    done = kubectl(
        cluster,
        "-n",
        namespace,
        "patch",
        "incident",
        name,
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": spec}),
        user=user,
    )
    return "" if done.returncode == 0 else done.stderr


def send(operator: OperatorProcess, token: str, labels: dict[str, str]) -> None:
    """One alert through the webhook, with the token the chart generated."""
    answer = httpx.post(
        f"{operator.url}/api/v1/alertmanager",
        json=am_webhook([am_alert(labels)]),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def bind(api: k8s.ApiClient, namespace: str, name: str, cluster_role: str, user: str) -> None:
    body = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    k8s.RbacAuthorizationV1Api(api).create_namespaced_role_binding(namespace, body)


def policy_in_force(cluster: KubeCluster, namespace: str, probe: str) -> None:
    """A new policy takes a moment to be enforced: wait until it refuses a probe write (a server dry run)."""

    def refuses() -> bool:
        patch = json.dumps({"spec": {"acknowledgement": {"by": "someone-else"}}})
        done = kubectl(
            cluster, "-n", namespace, "patch", "incident", probe, "--type", "merge", "-p", patch, "--dry-run=server"
        )
        return done.returncode != 0 and "who-acted" in done.stderr

    wait_until(refuses, timeout=30, interval=0.2, what="the admission policy in force")


@pytest.fixture
def release(kube_cluster: KubeCluster, crds: list[str], namespace: str, tmp_path: Path) -> Iterator[Release]:
    other = namespace_for_test("lp-other")
    core = k8s.CoreV1Api(kube_cluster.api)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=other)))
    values = {
        "watchNamespaces[0]": namespace,
        "replicaCount": "0",
        "crds.enabled": "false",
        "rbac.secretNames[0]": "paging",
    }
    name = "lp-" + other.rsplit("-", 1)[-1]  # the random suffix namespace_for_test gave
    install(name, namespace, kube_cluster.kubeconfig, values)
    try:
        config = service_account_kubeconfig(
            kube_cluster.api, namespace, f"{name}-incidentops", tmp_path / "operator.kubeconfig"
        )
        yield Release(name, namespace, other, config)
    finally:
        with contextlib.suppress(Exception):
            uninstall(name, namespace, kube_cluster.kubeconfig)
        with contextlib.suppress(k8s.ApiException):
            core.delete_namespace(other, propagation_policy="Background")


def forbidden(call: Callable[[], object]) -> bool:
    try:
        call()
    except k8s.ApiException as error:
        return error.status == 403
    return False


def test_the_service_account_reads_only_named_secrets_and_acts_only_where_it_is_told(
    kube_cluster: KubeCluster, release: Release
) -> None:
    admin = kube_cluster.api
    ns, other = release.namespace, release.other
    secret(admin, ns, "paging", {"slack-webhook": "https://hooks.example.com/x"})
    secret(admin, ns, "database", {"password": "hunter2hunter2"})
    create_demo_deployment(admin, ns, "api", replicas=1)
    create_demo_deployment(admin, other, "api", replicas=1)
    operator = api_client(release.kubeconfig)
    core, apps = k8s.CoreV1Api(operator), k8s.AppsV1Api(operator)
    crs = k8s.CustomObjectsApi(operator)
    try:
        # what it needs works
        assert core.read_namespaced_secret("paging", ns).data["slack-webhook"]
        assert core.read_namespaced_secret(f"{release.fullname}-webhook", ns).data["token"]
        assert apps.patch_namespaced_deployment("api", ns, {"spec": {"replicas": 2}}).spec.replicas == 2
        assert crs.list_namespaced_custom_object(GROUP, VERSION, ns, "incidents")["items"] == []
        # a Secret it was not named, or any listing of Secrets: refused
        assert forbidden(lambda: core.read_namespaced_secret("database", ns))
        assert forbidden(lambda: core.list_namespaced_secret(ns))
        assert forbidden(core.list_secret_for_all_namespaces)
        # kinds outside its list, or verbs it was not given
        assert forbidden(
            lambda: core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="x")))
        )
        assert forbidden(lambda: apps.delete_namespaced_deployment("api", ns))
        assert forbidden(lambda: core.read_namespaced_pod_log("anything", ns))
        assert forbidden(core.list_node)  # cordon is off unless rbac.nodes
        assert forbidden(lambda: k8s.RbacAuthorizationV1Api(operator).list_namespaced_role(ns))
        # namespaced mode: nothing outside its namespaces
        assert forbidden(lambda: apps.patch_namespaced_deployment("api", other, {"spec": {"replicas": 2}}))
        assert forbidden(lambda: crs.list_namespaced_custom_object(GROUP, VERSION, other, "incidents"))
        assert forbidden(lambda: crs.list_cluster_custom_object(GROUP, VERSION, "incidents"))
        assert forbidden(lambda: core.read_namespace(other))
    finally:
        operator.close()  # type: ignore[no-untyped-call]
    # the same answers as RBAC gives a reviewer
    can = kubectl(kube_cluster, "auth", "can-i", "get", "secrets/database", "-n", ns, user=release.username)
    assert can.stdout.strip() == "no"


def test_alerts_detection_remediation_and_escalation_work_with_only_the_charts_rights(
    kube_cluster: KubeCluster,
    release: Release,
    operator_factory: Callable[..., OperatorProcess],
    prometheus_factory: Callable[..., Prometheus],
    standins: StandIns,
) -> None:
    admin = kube_cluster.api
    ns = release.namespace
    secret(admin, ns, "paging", {"slack-webhook": standins.base("slack") + "/services/T000/B000/XXXX"})
    create_demo_deployment(admin, ns, "api", replicas=2)
    create(
        admin,
        ns,
        "Runbook",
        "scale-api",
        {
            "match": {"alertnames": ["PodsCrashing"]},
            "steps": [
                {"name": "scale-out", "action": "scale", "params": {"replicas": 4}, "target": {"kind": "Deployment"}}
            ],
            "automatic": False,
            "risk": "high",
            "approvers": ["bob"],
        },
    )
    level = {
        "name": "primary",
        "after": "0s",
        "targets": [{"type": "user", "name": "alice"}],
        "channels": [{"type": "slack", "secretRef": {"name": "paging", "key": "slack-webhook"}}],
    }
    create(admin, ns, "EscalationPolicy", "page", {"levels": [level]})
    prometheus = prometheus_factory(scrape_targets=[])
    env = {
        "KUBECONFIG": str(release.kubeconfig),
        "INCIDENTOPS_WEBHOOK_TOKEN_SECRET": f"{ns}/{release.fullname}-webhook/token",
        "INCIDENTOPS_PROMETHEUS_URL": prometheus.url,
        "INCIDENTOPS_NOTIFY_ALLOW": standins.allow,
        "INCIDENTOPS_REMEDIATION_POLL": "1s",
        "INCIDENTOPS_LLM": "off",
    }
    operator = operator_factory([ns], env)
    token = base64.b64decode(
        k8s.CoreV1Api(admin).read_namespaced_secret(f"{release.fullname}-webhook", ns).data["token"]
    ).decode()

    # alerts -> Incident, through the webhook with the chart's token
    labels = {
        "alertname": "PodsCrashing",
        "namespace": ns,
        "service": "api",
        "deployment": "api",
        "severity": "critical",
    }
    send(operator, token, labels)
    incident = wait_until(
        lambda: next((i for i in listed(admin, ns) if status(i, "remediation", "phase") == "AwaitingApproval"), None),
        timeout=60,
        what="the incident waiting for an approval",
    )
    name = incident["metadata"]["name"]
    # escalation: the page went out through the named Secret's webhook URL
    standins.wait_for("slack", 1, timeout=30)

    # detection: a rule firing in Prometheus opens its own incident
    create(
        admin,
        ns,
        "DetectionRule",
        "payments-errors",
        {"expr": FIRES, "interval": "5s", "severity": "SEV3"},
    )
    wait_until(
        lambda: [i for i in listed(admin, ns) if (i.get("spec") or {}).get("source") == "detectionrule"],
        timeout=60,
        what="the detection rule's incident",
    )

    # people: bob responds but may not approve until RBAC says so; nobody writes another's name
    bind(admin, ns, "bob-responds", f"{release.fullname}-responder", "bob")
    bind(admin, ns, "alice-responds", f"{release.fullname}-responder", "alice")
    policy_in_force(kube_cluster, ns, name)
    refused = patch_spec(
        kube_cluster, ns, name, {"approvals": [{"step": "scale-out", "by": "bob", "runbook": "scale-api"}]}, "bob"
    )
    assert "bob may not approve steps of runbook scale-api" in refused
    can = kubectl(kube_cluster, "auth", "can-i", "approve", "runbooks/scale-api", "-n", ns, user="bob")
    assert can.stdout.strip() == "no"
    assert "must be the user making the request (alice)" in patch_spec(
        kube_cluster, ns, name, {"acknowledgement": {"by": "bob"}}, "alice"
    )
    assert patch_spec(kube_cluster, ns, name, {"acknowledgement": {"by": "alice"}}, "alice") == ""
    wait_until(
        lambda: status(get(admin, ns, "Incident", name), "state") == "Acknowledged", timeout=30, what="acknowledged"
    )
    assert deployment_replicas(admin, ns) == 2  # nothing ran without the approval

    bind(admin, ns, "bob-approves", f"{release.fullname}-approver", "bob")
    wait_until(
        lambda: (
            kubectl(kube_cluster, "auth", "can-i", "approve", "runbooks/scale-api", "-n", ns, user="bob").stdout.strip()
            == "yes"
        ),
        timeout=30,
        what="bob's new right",
    )
    assert "must be the user making the request (bob)" in patch_spec(
        kube_cluster, ns, name, {"approvals": [{"step": "scale-out", "by": "alice", "runbook": "scale-api"}]}, "bob"
    )
    elsewhere = {"approvals": [{"step": "scale-out", "by": "bob", "runbook": "other-runbook"}]}
    assert "must name the runbook running for this incident" in patch_spec(kube_cluster, ns, name, elsewhere, "bob")
    assert "must be the user making the request (bob)" in patch_spec(
        kube_cluster, ns, name, {"notes": [{"by": "alice", "text": "it was alice"}]}, "bob"
    )
    assert (
        patch_spec(
            kube_cluster, ns, name, {"approvals": [{"step": "scale-out", "by": "bob", "runbook": "scale-api"}]}, "bob"
        )
        == ""
    )
    done = wait_until(
        lambda: i if status(i := get(admin, ns, "Incident", name), "remediation", "phase") == "Done" else None,
        timeout=60,
        what="the approved runbook done, by the operator's identity",
    )
    [step] = done["status"]["remediation"]["steps"]
    assert (step["state"], step["approvedBy"]) == ("Succeeded", "bob")
    assert deployment_replicas(admin, ns) == 4
    # the operator never hit a right it lacked (RBAC's refusals name the user)
    refusals = [line for line in operator.logs().splitlines() if f'User "{release.username}" cannot' in line]
    assert not refusals, refusals[:3]


def deployment_replicas(api: k8s.ApiClient, namespace: str) -> int:
    return int(k8s.AppsV1Api(api).read_namespaced_deployment("api", namespace).spec.replicas)


def test_the_plugin_records_who_the_apiserver_says_you_are(
    kube_cluster: KubeCluster, release: Release, tmp_path: Path
) -> None:
    """`kubectl incident ack` without --by: the ServiceAccount's own name, which the policy then admits."""
    admin = kube_cluster.api
    ns = release.namespace
    k8s.CoreV1Api(admin).create_namespaced_service_account(
        ns, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="carol"))
    )
    carol = f"system:serviceaccount:{ns}:carol"
    k8s.RbacAuthorizationV1Api(admin).create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "carol-responds"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"{release.fullname}-responder",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "carol", "namespace": ns}],
        },
    )
    create(admin, ns, "Incident", "db-down", {"title": "db is down", "severity": "SEV2", "service": "db"})
    policy_in_force(kube_cluster, ns, "db-down")
    config = service_account_kubeconfig(admin, ns, "carol", tmp_path / "carol.kubeconfig")
    runner = CliRunner()
    lied = runner.invoke(cli, ["ack", "db-down", "-n", ns, "--by", "dave", "--kubeconfig", str(config)])
    assert lied.exit_code == 1 and f"must be the user making the request ({carol})" in lied.stderr
    acked = runner.invoke(cli, ["ack", "db-down", "-n", ns, "--kubeconfig", str(config)])
    assert acked.exit_code == 0, acked.stderr
    assert get(admin, ns, "Incident", "db-down")["spec"]["acknowledgement"]["by"] == carol


def test_cluster_wide_mode_works_with_its_cluster_role(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> None:
    """No watchNamespaces: a ClusterRole. An alert naming a namespace opens its incident there (the
    operator checks the namespace exists: the one cluster-scoped read it adds)."""
    name = "lpc-" + namespace.rsplit("-", 1)[-1]
    values = {"replicaCount": "0", "crds.enabled": "false", "admission.enabled": "false"}
    install(name, namespace, kube_cluster.kubeconfig, values)
    try:
        config = service_account_kubeconfig(kube_cluster.api, namespace, f"{name}-incidentops", tmp_path / "sa")
        env = {
            "KUBECONFIG": str(config),
            "INCIDENTOPS_WEBHOOK_TOKEN_SECRET": f"{namespace}/{name}-incidentops-webhook/token",
            "INCIDENTOPS_INCIDENT_NAMESPACE": namespace,
            "INCIDENTOPS_ESCALATION": "false",
            "INCIDENTOPS_LLM": "off",
        }
        operator = operator_factory([], env)
        secret_data = k8s.CoreV1Api(kube_cluster.api).read_namespaced_secret(f"{name}-incidentops-webhook", namespace)
        token = base64.b64decode(secret_data.data["token"]).decode()
        labels = {"alertname": "Down", "namespace": namespace, "service": "web", "severity": "critical"}
        send(operator, token, labels)
        wait_until(
            lambda: [i for i in listed(kube_cluster.api, namespace) if status(i, "triage")],
            timeout=60,
            what="the incident, looked at, in the namespace the alert named",
        )
        # RBAC's refusals name the user; other tests' namespaces being deleted refuse Events to anyone
        username = f"system:serviceaccount:{namespace}:{name}-incidentops"
        refusals = [line for line in operator.logs().splitlines() if f'User "{username}" cannot' in line]
        assert not refusals, refusals[:3]
    finally:
        with contextlib.suppress(Exception):
            uninstall(name, namespace, kube_cluster.kubeconfig)
