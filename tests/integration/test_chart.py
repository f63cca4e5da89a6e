"""The Helm chart on the real apiserver: lint, every value set rendered and dry-run applied, installed.

helm is the one built next to the control plane; the prometheus-operator's CRDs come from its
module on the Go module proxy, so the monitoring objects are validated by their real schemas.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from incidentops.config import load
from localenv.controlplane import KubeCluster, kubectl_binary, prometheus_operator_crds
from localenv.helm import HelmError, chart_dir, helm, install, render, uninstall
from localenv.names import namespace_for_test
from localenv.procs import wait_until

pytestmark = pytest.mark.integration
MONITORING = ("monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule")
VALUE_SETS: dict[str, dict[str, str]] = {
    "default": {},
    "namespaced": {"watchNamespaces[0]": "team-a", "watchNamespaces[1]": "team-b", "rbac.secretNames[0]": "paging"},
    "two-replicas": {"replicaCount": "2"},
    "monitoring": {"settings.CONTACTS_SECRET": "ops/contacts/contacts.yaml", "rbac.nodes": "true"},
}


def kubectl(cluster: KubeCluster, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(cluster.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def kinds(objects: list[dict[str, Any]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for obj in objects:
        found.setdefault(obj["kind"], []).append(obj["metadata"]["name"])
    return found


@pytest.fixture(scope="module")
def monitoring_crds(kube_cluster: KubeCluster) -> None:
    """ServiceMonitor and PrometheusRule, the real CRDs, so the chart's objects meet their schemas."""
    folder = prometheus_operator_crds()
    for name in ("monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml"):
        applied = kubectl(kube_cluster, "apply", "--server-side", "--force-conflicts", "-f", str(folder / name))
        assert applied.returncode == 0, applied.stderr
    crd_names = ("crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
    done = kubectl(kube_cluster, "wait", "--for=condition=Established", "--timeout=60s", *crd_names)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def dry_run_namespaces(kube_cluster: KubeCluster) -> Iterator[None]:
    """The namespaces the value sets name (a dry run still needs them to exist), removed afterwards."""
    core = k8s.CoreV1Api(kube_cluster.api)
    names = ("incidentops-system", "team-a", "team-b", "ops")
    for name in names:
        with contextlib.suppress(k8s.ApiException):  # left by an interrupted run
            core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    yield
    for name in names:
        with contextlib.suppress(k8s.ApiException):
            core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def release_namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    name = namespace_for_test("chart")
    yield name
    with contextlib.suppress(k8s.ApiException):
        k8s.CoreV1Api(kube_cluster.api).delete_namespace(name, propagation_policy="Background")


def test_lint_passes_for_every_value_set() -> None:
    for values in VALUE_SETS.values():
        args = [f"{k}={v}" for k, v in values.items()]
        out = helm("lint", str(chart_dir()), *[x for a in args for x in ("--set", a)], "--strict")
        assert "0 chart(s) failed" in out


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_value_set_renders_and_the_apiserver_accepts_it(
    kube_cluster: KubeCluster, crds: list[str], monitoring_crds: None, dry_run_namespaces: None, value_set: str
) -> None:
    objects = render("io", "incidentops-system", VALUE_SETS[value_set], api_versions=MONITORING)
    found = kinds(objects)
    assert len(found["CustomResourceDefinition"]) == 5 and found["Deployment"] == ["io-incidentops"]
    assert ("ServiceMonitor" in found) and ("PrometheusRule" in found)  # the CRDs exist: rendered
    manifest = yaml.safe_dump_all(objects)
    applied = kubectl(
        kube_cluster, "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-", stdin=manifest
    )
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("(server dry run)") == len(objects)


def test_monitoring_objects_render_only_when_their_crds_exist() -> None:
    found = kinds(render("io", "incidentops-system"))
    assert "ServiceMonitor" not in found and "PrometheusRule" not in found
    assert found["ConfigMap"] == ["io-incidentops-dashboard"]  # Grafana's sidecar needs no CRD


def test_the_chart_crds_are_the_generated_ones_with_keep() -> None:
    objects = render("io", "ns", api_versions=MONITORING)
    rendered = {o["metadata"]["name"]: o for o in objects if o["kind"] == "CustomResourceDefinition"}
    root = chart_dir().parent.parent
    for path in sorted((root / "crds").glob("*.yaml")):
        committed = yaml.safe_load(path.read_text())
        chart = rendered[committed["metadata"]["name"]]
        assert chart["spec"] == committed["spec"]  # one source: the same schema, columns and names
        assert chart["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    without = kinds(render("io", "ns", {"crds.enabled": "false"}))
    assert "CustomResourceDefinition" not in without
    unkept = [o for o in render("io", "ns", {"crds.keep": "false"}) if o["kind"] == "CustomResourceDefinition"]
    assert all("annotations" not in o["metadata"] for o in unkept)


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicaCount": "-1"}, "replicaCount"),
        ({"settings.RISK_CEILING": "extreme"}, "RISK_CEILING"),
        ({"settings.NAMESPACES": "prod"}, "settings/NAMESPACES"),  # the chart sets it from watchNamespaces
        ({"watchNamespaces[0]": "Not_A_Namespace"}, "watchNamespaces"),
        ({"settings.CONTACTS_SECRET": "contacts"}, "CONTACTS_SECRET"),  # namespace/name/key
        ({"image.pullPolicy": "Sometimes"}, "pullPolicy"),
        ({"unknownValue": "1"}, "unknownValue"),
    ],
)
def test_bad_values_fail_at_install_with_the_field_named(values: dict[str, str], complaint: str) -> None:
    with pytest.raises(HelmError) as failure:
        render("io", "ns", values)
    assert "values don't meet the specifications of the schema" in str(failure.value)
    assert complaint in str(failure.value)


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"watchNamespaces[0]": "a", "incidentNamespace": "b"}, 'incidentNamespace "b" must be one of watchNamespaces'),
        ({"watchNamespaces[0]": "a", "settings.DEFAULT_ESCALATION_POLICY": "ops/page"}, "outside watchNamespaces"),
        ({"serviceAccount.create": "false"}, "serviceAccount.name is required"),
        ({"settings.PEERING": "ha"}, "settings/PEERING"),
    ],
)
def test_settings_the_rbac_could_not_serve_fail_at_install(values: dict[str, str], complaint: str) -> None:
    with pytest.raises(HelmError) as failure:
        render("io", "ns", values)
    assert complaint in str(failure.value)


def test_settings_from_a_values_file_reach_the_operator_as_it_parses_them(tmp_path: Path) -> None:
    """YAML numbers arrive in templates as floats: 20971520 must not become 2.097152e+07 (a crash loop)."""
    values = tmp_path / "values.yaml"
    values.write_text(
        "settings:\n  MAX_BODY_BYTES: 20971520\n  ESCALATION: false\n  HTTP_ALLOW: [a.example.com, 10.0.0.0/8]\n"
    )
    [deployment] = [o for o in render("io", "ops", values_file=values) if o["kind"] == "Deployment"]
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["INCIDENTOPS_MAX_BODY_BYTES"] == "20971520"
    assert env["INCIDENTOPS_ESCALATION"] == "false"
    assert env["INCIDENTOPS_HTTP_ALLOW"] == "a.example.com,10.0.0.0/8"
    config = load({k: v for k, v in env.items() if k.startswith("INCIDENTOPS_")})
    assert config.max_body_bytes == 20971520 and config.escalation is False and len(config.http_allow) == 2


def test_the_schema_describes_every_default_value() -> None:
    schema = json.loads((chart_dir() / "values.schema.json").read_text())
    defaults = yaml.safe_load((chart_dir() / "values.yaml").read_text())
    assert set(defaults) == set(schema["properties"])  # a new value without its schema fails here


def test_namespaced_mode_grants_roles_only_in_its_namespaces() -> None:
    objects = render("io", "ops", {"watchNamespaces[0]": "team-a", "settings.TRIAGE_CONFIGMAP": "ops/triage"})
    found = kinds(objects)
    # nothing cluster-wide for the operator: only the roles people bind, and the admission policy
    assert found["ClusterRole"] == ["io-incidentops-responder", "io-incidentops-approver"]
    assert "ClusterRoleBinding" not in found
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects if o["kind"] == "Role"}
    assert set(roles) == {("team-a", "io-incidentops"), ("ops", "io-incidentops-named")}
    named = roles[("ops", "io-incidentops-named")]["rules"]
    assert {(r["resources"][0], tuple(r["resourceNames"])) for r in named} == {
        ("secrets", ("io-incidentops-webhook",)),
        ("configmaps", ("triage",)),
    }
    [binding] = [o for o in objects if o["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"] == ["team-a"]
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["INCIDENTOPS_NAMESPACES"] == "team-a" and env["INCIDENTOPS_TRIAGE_CONFIGMAP"] == "ops/triage"
    assert env["INCIDENTOPS_WEBHOOK_TOKEN_SECRET"] == "ops/io-incidentops-webhook/token"


def test_no_wildcards_no_secret_listing_and_mutations_only_where_runbooks_act() -> None:
    objects = render("io", "ops", {"rbac.secretNames[0]": "paging", "rbac.nodes": "true"})
    rules = [r for o in objects if o["kind"] in ("ClusterRole", "Role") for r in o["rules"]]
    assert rules
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        if "secrets" in rule["resources"]:
            assert rule["verbs"] == ["get"] and rule["resourceNames"]  # by name, never list or watch
    mutating = {"create", "update", "patch", "delete"}
    mutated = {
        (group, resource)
        for rule in rules
        if mutating & set(rule["verbs"])
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert {g for g, _ in mutated} <= {"incidentops.dev", "", "apps"}
    assert {r for g, r in mutated if g != "incidentops.dev"} == {"events", "pods", "deployments", "nodes"}


def test_the_pod_runs_restricted() -> None:
    [deployment] = [o for o in render("io", "ops", {"replicaCount": "2"}) if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["seccompProfile"] == {
        "type": "RuntimeDefault"
    }
    context = container["securityContext"]
    assert context == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MALLOC_ARENA_MAX"] == "2" and env["INCIDENTOPS_LOG_FORMAT"] == "json"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert deployment["spec"]["replicas"] == 2


def test_helm_install_to_a_ready_operator_then_a_second_release_side_by_side(
    kube_cluster: KubeCluster, crds: list[str], release_namespace: str, tmp_path: Path
) -> None:
    config = kube_cluster.kubeconfig
    apps = k8s.AppsV1Api(kube_cluster.api)
    core = k8s.CoreV1Api(kube_cluster.api)
    team_a, team_b = namespace_for_test("chart-a"), namespace_for_test("chart-b")
    for ns in (team_a, team_b):
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns)))
    second_ns = namespace_for_test("chart-second")
    try:
        # the session's CRDs were applied from crds/: the first release takes them over (one source)
        notes = install(
            "first",
            release_namespace,
            config,
            {"watchNamespaces[0]": team_a, "replicaCount": "2"},
            "--take-ownership",
        )
        assert "/etc/alertmanager/secrets/incidentops/token" in notes
        assert f"http://first-incidentops.{release_namespace}.svc:8080/api/v1/alertmanager" in notes
        ready = apps.read_namespaced_deployment("first-incidentops", release_namespace)
        assert ready.status.ready_replicas == 2  # kwok runs the pods; --wait returned once they were Ready
        token = core.read_namespaced_secret("first-incidentops-webhook", release_namespace).data["token"]
        assert len(token) > 40  # generated, base64 of 40 characters

        # an upgrade keeps the token Alertmanager already has
        helm(
            "upgrade", "first", str(chart_dir()), "-n", release_namespace, "--reuse-values", "--wait", kubeconfig=config
        )
        assert core.read_namespaced_secret("first-incidentops-webhook", release_namespace).data["token"] == token

        # a second release on other namespaces: no CRDs (the first owns them), its own Roles and policy
        install("second", second_ns, config, {"watchNamespaces[0]": team_b, "crds.enabled": "false"})
        rbac = k8s.RbacAuthorizationV1Api(kube_cluster.api)
        assert rbac.read_namespaced_role("first-incidentops", team_a).metadata.name
        assert rbac.read_namespaced_role("second-incidentops", team_b).metadata.name
        for ns, absent in ((team_a, "second-incidentops"), (team_b, "first-incidentops")):
            with pytest.raises(k8s.ApiException) as missing:
                rbac.read_namespaced_role(absent, ns)
            assert missing.value.status == 404
        policies = k8s.AdmissionregistrationV1Api(kube_cluster.api).list_validating_admission_policy().items
        assert {"first-incidentops-who-acted", "second-incidentops-who-acted"} <= {p.metadata.name for p in policies}
        uninstall("second", second_ns, config)
    finally:
        with contextlib.suppress(HelmError):
            uninstall("second", second_ns, config)
        with contextlib.suppress(HelmError):
            uninstall("first", release_namespace, config)
        for ns in (team_a, team_b, second_ns):
            with contextlib.suppress(k8s.ApiException):
                core.delete_namespace(ns, propagation_policy="Background")
    # crds.keep: uninstalling leaves the CRDs, and every Incident with them
    ext = k8s.ApiextensionsV1Api(kube_cluster.api)
    wait_until(
        lambda: (
            not k8s.AdmissionregistrationV1Api(kube_cluster.api)
            .list_validating_admission_policy(label_selector="app.kubernetes.io/instance=first")
            .items
        ),
        timeout=30,
        what="the first release's admission policy removed",
    )
    assert ext.read_custom_resource_definition("incidents.incidentops.dev").metadata.name
