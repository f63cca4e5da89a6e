"""The operator runs Runbooks on the real cluster: approvals, guards, dry runs, crashes and two replicas.

Alerts come in through the webhook as in production; what the operator did is read back from the
Incident's status, the Runbook's status, Events and the Deployments themselves (generations,
ReplicaSets, annotations), which is where a double action would show.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from click.testing import CliRunner, Result
from kubernetes import client as k8s

from incidentops.cli.main import cli
from localenv.controlplane import KubeCluster
from localenv.demo_workload import create_demo_deployment
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_alert, am_webhook
from localenv.procs import wait_until

GROUP, VERSION = "incidentops.dev", "v1alpha1"
TOKEN = "remediation-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FAST = {
    "INCIDENTOPS_WEBHOOK_TOKEN": TOKEN,
    "INCIDENTOPS_REMEDIATION_POLL": "1s",
    "INCIDENTOPS_IN_DOUBT_AFTER": "2s",
}
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def custom(cluster: KubeCluster) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(cluster.api)


def apply_runbook(cluster: KubeCluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Runbook", "metadata": {"name": name}, "spec": spec}
    custom(cluster).create_namespaced_custom_object(GROUP, VERSION, namespace, "runbooks", body)


def fire(operator: OperatorProcess, namespace: str, deployment: str, alertname: str = "PodsCrashing") -> None:
    labels = {
        "alertname": alertname,
        "namespace": namespace,
        "service": deployment,
        "deployment": deployment,
        "severity": "warning",
        "category": "availability",
    }
    response = httpx.post(
        f"{operator.url}/api/v1/alertmanager", json=am_webhook([am_alert(labels)]), headers=AUTH, timeout=30
    )
    assert response.status_code == 200, response.text


def incidents(cluster: KubeCluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = custom(cluster).list_namespaced_custom_object(GROUP, VERSION, namespace, "incidents")[
        "items"
    ]
    return items


def incident_for(cluster: KubeCluster, namespace: str, deployment: str) -> dict[str, Any] | None:
    for item in incidents(cluster, namespace):
        if item["spec"].get("service") == deployment:
            return item
    return None


def remediation_of(cluster: KubeCluster, namespace: str, deployment: str) -> dict[str, Any]:
    found = incident_for(cluster, namespace, deployment)
    return ((found or {}).get("status") or {}).get("remediation") or {}


def wait_phase(
    cluster: KubeCluster, namespace: str, deployment: str, *phases: str, timeout: float = 60
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = incident_for(cluster, namespace, deployment)
        remediation = ((found or {}).get("status") or {}).get("remediation") or {}
        return found if remediation.get("phase") in phases else None

    result: dict[str, Any] = wait_until(
        reached, timeout=timeout, interval=0.2, what=f"remediation of {deployment} in {' or '.join(phases)}"
    )
    return result


def runbook_of(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = custom(cluster).get_namespaced_custom_object(GROUP, VERSION, namespace, "runbooks", name)
    return found


def deployment(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = k8s.AppsV1Api(cluster.api).read_namespaced_deployment(name, namespace).to_dict()
    return result


def replica_sets(cluster: KubeCluster, namespace: str) -> int:
    return len(k8s.AppsV1Api(cluster.api).list_namespaced_replica_set(namespace).items)


def events_for(cluster: KubeCluster, namespace: str, kind: str, name: str) -> list[str]:
    items = k8s.CoreV1Api(cluster.api).list_namespaced_event(namespace).items
    return [
        f"{e.reason}: {e.message}" for e in items if e.involved_object.kind == kind and e.involved_object.name == name
    ]


def plugin(cluster: KubeCluster, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, [*args, "--kubeconfig", str(cluster.kubeconfig)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


SCALE_STEP = {"name": "scale-out", "action": "scale", "params": {"replicas": 4}, "target": {"kind": "Deployment"}}


def test_nothing_runs_before_an_approval_and_it_runs_once_after(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    create_demo_deployment(kube_cluster.api, namespace, "api", replicas=2)
    apply_runbook(
        kube_cluster,
        namespace,
        "scale-api",
        {"match": {"alertnames": ["PodsCrashing"]}, "steps": [SCALE_STEP], "automatic": False},
    )
    operator = operator_factory([namespace], FAST)
    fire(operator, namespace, "api")
    waiting = wait_phase(kube_cluster, namespace, "api", "AwaitingApproval")
    [step] = waiting["status"]["remediation"]["steps"]
    assert step["state"] == "AwaitingApproval" and step["reason"] == "NotAutomatic"
    assert step["dryRunDiff"] == "spec.replicas: 2 -> 4"  # what the approver reads
    assert deployment(kube_cluster, namespace, "api")["spec"]["replicas"] == 2  # the dry run changed nothing
    name = waiting["metadata"]["name"]
    conditions = {c["type"]: c for c in waiting["status"]["conditions"]}
    assert (conditions["Remediated"]["status"], conditions["Remediated"]["reason"]) == ("False", "AwaitingApproval")
    described = plugin(kube_cluster, "describe", name, "-n", namespace).stdout
    assert "scale-out (scale) AwaitingApproval" in described and "| spec.replicas: 2 -> 4" in described

    listed = plugin(kube_cluster, "mitigate", name, "-n", namespace, "--list").stdout
    assert "* scale-api  (matches; low risk, approval)" in listed
    assert "scale-out: spec.replicas: 2 -> 4" in listed  # the apiserver's dry run, as the plugin's user
    generation = deployment(kube_cluster, namespace, "api")["metadata"]["generation"]
    approved = plugin(kube_cluster, "approve", name, "-n", namespace, "--by", "alice").stdout
    assert "scale-out approved by alice" in approved
    done = wait_phase(kube_cluster, namespace, "api", "Done")
    live = deployment(kube_cluster, namespace, "api")
    assert live["spec"]["replicas"] == 4 and live["metadata"]["generation"] == generation + 1  # exactly one change
    [step] = done["status"]["remediation"]["steps"]
    assert (step["state"], step["approvedBy"], step["before"]) == ("Succeeded", "alice", {"replicas": "2", "set": "4"})
    status = done["status"]
    assert status["state"] == "Monitoring" and status["mitigatedAt"]
    assert {"RunbookChosen", "AwaitingApproval", "StepStarted", "StepSucceeded", "Mitigating"} <= {
        e["type"] for e in status["timeline"]
    }
    assert any("scale" in e and name in e for e in events_for(kube_cluster, namespace, "Deployment", "api"))
    runbook = wait_until(
        lambda: (
            found
            if "successRate" in (found := runbook_of(kube_cluster, namespace, "scale-api")).get("status", {})
            else None
        ),
        timeout=10,
        what="the run counted in the Runbook's status",
    )
    assert runbook["status"]["executions"] == 1 and runbook["status"]["successRate"] == "100%"
    assert runbook["status"]["lastExecution"]["result"] == "Succeeded"
    plugin(kube_cluster, "approve", name, "-n", namespace, "--by", "alice", code=1)  # nothing waits any more


def test_guards_hold_back_and_say_why(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    for name in ("a", "b", "quiet"):
        create_demo_deployment(kube_cluster.api, namespace, name, replicas=2)
    apps = k8s.AppsV1Api(kube_cluster.api)
    apps.patch_namespaced_deployment(
        "quiet", namespace, {"metadata": {"annotations": {"incidentops.dev/remediation": "disabled"}}}
    )
    apply_runbook(
        kube_cluster,
        namespace,
        "scale-auto",
        {
            "match": {"alertnames": ["PodsCrashing"], "categories": ["availability"]},
            "steps": [SCALE_STEP],
            "automatic": True,
            "safety": {"maxExecutionsPerHour": 10},
        },
    )
    operator = operator_factory([namespace], {**FAST, "INCIDENTOPS_STORM_BUDGET": "1"})
    fire(operator, namespace, "a")
    ran = wait_phase(kube_cluster, namespace, "a", "Done")
    assert ran["status"]["remediation"]["steps"][0]["automatic"] is True
    assert ran["status"]["triage"]["source"] == "rules" and ran["status"]["triage"]["confidence"] == 0.8
    fire(operator, namespace, "b")
    held = wait_phase(kube_cluster, namespace, "b", "AwaitingApproval")
    [step] = held["status"]["remediation"]["steps"]
    assert step["reason"] == "StormBudgetSpent", step  # the budget of one automatic run is spent on "a"
    assert deployment(kube_cluster, namespace, "b")["spec"]["replicas"] == 2
    fire(operator, namespace, "quiet")
    refused = wait_phase(kube_cluster, namespace, "quiet", "Failed")
    [step] = refused["status"]["remediation"]["steps"]
    assert step["reason"] == "TargetOptedOut" and "disabled" in step["output"]
    assert deployment(kube_cluster, namespace, "quiet")["spec"]["replicas"] == 2
    metrics = httpx.get(f"{operator.url}/metrics", timeout=10).text
    assert 'incidentops_remediation_guard_blocks_total{reason="StormBudgetSpent"} 1.0' in metrics
    assert 'incidentops_remediation_guard_blocks_total{reason="TargetOptedOut"} 1.0' in metrics
    assert 'incidentops_remediation_actions_total{action="scale",result="ok"} 1.0' in metrics


def test_a_dry_run_only_runbook_records_the_diff_and_changes_nothing(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    create_demo_deployment(kube_cluster.api, namespace, "api", replicas=2)
    apply_runbook(
        kube_cluster,
        namespace,
        "rehearse",
        {
            "match": {"alertnames": ["PodsCrashing"]},
            "steps": [SCALE_STEP, {"name": "restart", "action": "restart"}],
            "automatic": True,
            "minConfidence": 0.5,
            "safety": {"dryRunOnly": True},
        },
    )
    operator = operator_factory([namespace], FAST)
    generation = deployment(kube_cluster, namespace, "api")["metadata"]["generation"]
    fire(operator, namespace, "api")
    stopped = wait_phase(kube_cluster, namespace, "api", "Stopped")
    steps = stopped["status"]["remediation"]["steps"]
    assert [s["state"] for s in steps] == ["Skipped", "Skipped"]
    assert steps[0]["dryRunDiff"] == "spec.replicas: 2 -> 4" and RESTARTED_AT in steps[1]["dryRunDiff"]
    assert deployment(kube_cluster, namespace, "api")["metadata"]["generation"] == generation


def _crashed_mid_step(kube_cluster: KubeCluster, namespace: str, incident: dict[str, Any], key: str) -> None:
    """Write what a killed operator leaves behind: the step Running with its key, its result never recorded."""
    status = incident["status"]
    step = status["remediation"]["steps"][0]
    started = (datetime.now(UTC) - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    step.update(state="Running", idempotencyKey=key, attempt=1, startedAt=started, target=f"{namespace}/Deployment/api")
    step.update(automatic=False, approvedBy="alice")
    status["remediation"]["phase"] = "Running"
    custom(kube_cluster).replace_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "incidents", incident["metadata"]["name"], incident
    )


def test_after_kill_9_a_recorded_step_happens_exactly_once(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    """Two crashes: after the intent was written but before acting, and after acting but before recording."""
    create_demo_deployment(kube_cluster.api, namespace, "api", replicas=2)
    create_demo_deployment(kube_cluster.api, namespace, "web", replicas=2)
    restart = {"name": "restart", "action": "restart", "target": {"kind": "Deployment"}}
    apply_runbook(kube_cluster, namespace, "restart", {"match": {"alertnames": ["PodsCrashing"]}, "steps": [restart]})
    operator = operator_factory([namespace], FAST)
    fire(operator, namespace, "api")
    fire(operator, namespace, "web")
    wait_phase(kube_cluster, namespace, "api", "AwaitingApproval")
    wait_phase(kube_cluster, namespace, "web", "AwaitingApproval")
    operator.kill()
    before_sets = replica_sets(kube_cluster, namespace)

    # api: the intent is recorded, the restart never happened.
    api = incident_for(kube_cluster, namespace, "api")
    assert api is not None
    api_key = f"{api['metadata']['uid']}/restart/1"
    _crashed_mid_step(kube_cluster, namespace, api, api_key)
    # web: the restart happened (its key is on the Deployment), the result was never recorded.
    web = incident_for(kube_cluster, namespace, "web")
    assert web is not None
    web_key = f"{web['metadata']['uid']}/restart/1"
    _crashed_mid_step(kube_cluster, namespace, web, web_key)
    k8s.AppsV1Api(kube_cluster.api).patch_namespaced_deployment(
        "web",
        namespace,
        {
            "metadata": {"annotations": {"incidentops.dev/action-key": web_key}},
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2026-11-23T00:00:00Z"}}}},
        },
    )
    web_generation = deployment(kube_cluster, namespace, "web")["metadata"]["generation"]
    api_generation = deployment(kube_cluster, namespace, "api")["metadata"]["generation"]

    operator_factory([namespace], FAST)
    wait_phase(kube_cluster, namespace, "api", "Done")
    wait_phase(kube_cluster, namespace, "web", "Done")
    api_live, web_live = deployment(kube_cluster, namespace, "api"), deployment(kube_cluster, namespace, "web")
    assert api_live["metadata"]["generation"] == api_generation + 1  # acted once, after the restart
    assert api_live["metadata"]["annotations"]["incidentops.dev/action-key"] == api_key
    assert web_live["metadata"]["generation"] == web_generation  # found done: not acted again
    assert web_live["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == "2026-11-23T00:00:00Z"
    wait_until(
        lambda: replica_sets(kube_cluster, namespace) == before_sets + 2,
        timeout=30,
        what="one new ReplicaSet per restart",
    )


def test_two_operator_processes_act_on_each_step_once(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    names = [f"svc{i}" for i in range(4)]
    for name in names:
        create_demo_deployment(kube_cluster.api, namespace, name, replicas=2)
    apply_runbook(
        kube_cluster,
        namespace,
        "restart-auto",
        {
            "match": {"alertnames": ["PodsCrashing"], "categories": ["availability"]},
            "steps": [{"name": "restart", "action": "restart"}],
            "automatic": True,
            "minConfidence": 0.5,
            "safety": {"maxExecutionsPerHour": 20},
        },
    )
    env = {**FAST, "INCIDENTOPS_STORM_BUDGET": "20"}
    first, second = operator_factory([namespace], env), operator_factory([namespace], env)
    generations = {n: deployment(kube_cluster, namespace, n)["metadata"]["generation"] for n in names}
    for index, name in enumerate(names):
        fire(first if index % 2 else second, namespace, name)
    for name in names:
        wait_phase(kube_cluster, namespace, name, "Done")
    for name in names:
        live = deployment(kube_cluster, namespace, name)
        assert live["metadata"]["generation"] == generations[name] + 1, name  # one restart, not two
    assert "recorded but not applied" not in first.logs() + second.logs()
    acted = [
        line for op in (first, second) for line in op.logs().splitlines() if "step restart (restart) started" in line
    ]
    assert len(acted) == len(names), acted  # each start logged by exactly one of the two


def test_runbooks_carry_no_finalizer_and_go_when_deleted_with_the_operator_down(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    """An uninstalled or crashed operator must never leave Runbooks (and their namespace) stuck deleting."""
    apply_runbook(kube_cluster, namespace, "scale-api", {"steps": [SCALE_STEP]})
    operator = operator_factory([namespace], FAST)
    ready = wait_until(
        lambda: rb if (rb := runbook_of(kube_cluster, namespace, "scale-api")).get("status") else None,
        timeout=30,
        what="the runbook validated",
    )
    assert not ready["metadata"].get("finalizers")
    operator.kill()
    custom(kube_cluster).delete_namespaced_custom_object(GROUP, VERSION, namespace, "runbooks", "scale-api")
    names = [
        rb["metadata"]["name"]
        for rb in custom(kube_cluster).list_namespaced_custom_object(GROUP, VERSION, namespace, "runbooks")["items"]
    ]
    assert names == []


def test_a_responder_names_the_runbook_when_none_matches(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    create_demo_deployment(kube_cluster.api, namespace, "api", replicas=2)
    apply_runbook(kube_cluster, namespace, "scale-api", {"match": {"alertnames": ["Other"]}, "steps": [SCALE_STEP]})
    operator = operator_factory([namespace], FAST)
    fire(operator, namespace, "api")
    unmatched = wait_phase(kube_cluster, namespace, "api", "NoRunbook")
    name = unmatched["metadata"]["name"]
    conditions = {c["type"]: (c["status"], c["reason"]) for c in unmatched["status"]["conditions"]}
    assert conditions["Remediated"] == ("False", "NoRunbook")
    listed = plugin(kube_cluster, "mitigate", name, "-n", namespace, "--list").stdout
    assert "scale-api  (does not match" in listed
    plugin(kube_cluster, "mitigate", name, "-n", namespace, "--runbook", "missing", code=1)
    plugin(kube_cluster, "mitigate", name, "-n", namespace, "--runbook", "scale-api")
    chosen = wait_phase(kube_cluster, namespace, "api", "AwaitingApproval")
    remediation = chosen["status"]["remediation"]
    assert remediation["runbook"] == "scale-api" and remediation["confidence"] == 1.0
    assert "named by spec.runbookRef" in remediation["reason"]
