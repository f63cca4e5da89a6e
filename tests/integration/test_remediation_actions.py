"""Scale, restart and rollback on real Deployments: a dry run changes nothing, apply happens once, undo works.

The rollback scenario is the issue's: v1 good, v2 bad, the alert, v3 (a fix that did not help):
the rollback lands on v1, reusing its ReplicaSet.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client as k8s

from incidentops.api.v1alpha1.runbook import Action
from incidentops.kube import KubeClient, load_api_client
from incidentops.remediation.actions import REGISTRY
from incidentops.remediation.actions.base import Context, Plan, Target
from incidentops.remediation.actions.wait_rollout import rollout_complete
from localenv.controlplane import KubeCluster
from localenv.demo_workload import create_demo_deployment, set_deployment_image
from localenv.procs import wait_until

CONTEXT = Context(incident="checkout-abc-1")


def apply(kube: KubeClient, action: Action, plan: Plan) -> None:
    REGISTRY[action].apply(kube, plan)


def happened(kube: KubeClient, action: Action, plan: Plan, key: str) -> bool:
    return REGISTRY[action].happened(kube, plan, key)


def kube_client(cluster: KubeCluster) -> KubeClient:
    return KubeClient(load_api_client(str(cluster.kubeconfig)))


def rolled_out(kube: KubeClient, target: Target) -> dict[str, Any] | None:
    live = kube.deployment(target.namespace, target.name)
    return live if rollout_complete(live) else None


def wait_rolled_out(kube: KubeClient, target: Target) -> dict[str, Any]:
    return wait_until(lambda: rolled_out(kube, target), timeout=60, what=f"rollout of {target}")  # type: ignore[no-any-return]


def image(obj: dict[str, Any]) -> str:
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def test_scale_plans_by_dry_run_applies_once_and_undoes(kube_cluster: KubeCluster, namespace: str) -> None:
    kube = kube_client(kube_cluster)
    create_demo_deployment(kube_cluster.api, namespace, "api", replicas=2)
    target = Target(namespace, "api")
    plan = REGISTRY[Action.SCALE].plan(kube, target, {"replicas": 3}, "uid-scale-0", CONTEXT)
    assert plan.refusal is None and plan.diff == ["spec.replicas: 2 -> 3"] and plan.before["replicas"] == 2
    assert kube.deployment(namespace, "api")["spec"]["replicas"] == 2  # the dry run changed nothing
    assert not happened(kube, Action.SCALE, plan, "uid-scale-0")
    apply(kube, Action.SCALE, plan)
    assert happened(kube, Action.SCALE, plan, "uid-scale-0")
    assert kube.deployment(namespace, "api")["spec"]["replicas"] == 3
    undo = REGISTRY[Action.SCALE].undo(kube, target, plan.before, "uid-scale-0-undo", CONTEXT)
    assert undo.diff == ["spec.replicas: 3 -> 2"]
    apply(kube, Action.SCALE, undo)
    assert kube.deployment(namespace, "api")["spec"]["replicas"] == 2
    again = REGISTRY[Action.SCALE].undo(kube, target, plan.before, "uid-scale-0-undo", CONTEXT)
    assert again.nothing_to_do and "already back" in again.reason  # an undo repeated after a crash: a no-op
    apply(kube, Action.SCALE, plan)
    kube.patch_deployment(namespace, "api", {"spec": {"replicas": 7}})  # a responder scaled it meanwhile
    kept = REGISTRY[Action.SCALE].undo(kube, target, plan.before, "uid-scale-0-undo", CONTEXT)
    assert kept.refusal == "ChangedSince"  # their choice stands
    assert plan.before == {"replicas": 2, "set": 3}


def test_scale_refuses_what_an_autoscaler_owns_or_a_target_opted_out(kube_cluster: KubeCluster, namespace: str) -> None:
    kube = kube_client(kube_cluster)
    create_demo_deployment(kube_cluster.api, namespace, "api", replicas=2)
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "api"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}, "maxReplicas": 5},
    }
    k8s.AutoscalingV2Api(kube_cluster.api).create_namespaced_horizontal_pod_autoscaler(namespace, hpa)
    plan = REGISTRY[Action.SCALE].plan(kube, Target(namespace, "api"), {"replicas": 4}, "k", CONTEXT)
    assert plan.refusal == "HPAOwnsReplicas" and plan.patch is None
    create_demo_deployment(kube_cluster.api, namespace, "db", replicas=1)
    kube.patch_deployment(namespace, "db", {"metadata": {"annotations": {"incidentops.dev/remediation": "disabled"}}})
    for action in (Action.SCALE, Action.RESTART, Action.ROLLBACK):
        assert REGISTRY[action].plan(kube, Target(namespace, "db"), {"replicas": 2}, "k", CONTEXT).refusal == (
            "TargetOptedOut"
        )


def test_restart_rolls_out_a_new_replica_set(kube_cluster: KubeCluster, namespace: str) -> None:
    kube = kube_client(kube_cluster)
    create_demo_deployment(kube_cluster.api, namespace, "api", replicas=2)
    target = Target(namespace, "api")
    wait_rolled_out(kube, target)
    plan = REGISTRY[Action.RESTART].plan(kube, target, {}, "uid-restart-0", CONTEXT)
    [line] = plan.diff
    assert line.startswith("spec.template.metadata.annotations.kubectl.kubernetes.io/restartedAt: <none> -> ")
    apply(kube, Action.RESTART, plan)
    live = wait_rolled_out(kube, target)
    assert live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert happened(kube, Action.RESTART, plan, "uid-restart-0")


def test_rollback_skips_the_fix_made_after_the_alert_and_reuses_v1(kube_cluster: KubeCluster, namespace: str) -> None:
    kube = kube_client(kube_cluster)
    target = Target(namespace, "checkout")
    create_demo_deployment(kube_cluster.api, namespace, "checkout", image="demo/checkout:v1", replicas=2)
    wait_rolled_out(kube, target)
    set_deployment_image(kube_cluster.api, namespace, "checkout", "demo/checkout:bad")
    wait_rolled_out(kube, target)
    alert_began = wait_until(lambda: _after_creation_second(kube, target), timeout=10, what="a second to pass")
    # creation times have one-second precision: the fix comes in a later second than the alert
    wait_until(lambda: datetime.now(UTC) >= alert_began + timedelta(seconds=1), timeout=5, what="the next second")
    set_deployment_image(kube_cluster.api, namespace, "checkout", "demo/checkout:v3")  # the hurried fix
    wait_rolled_out(kube, target)

    context = Context(incident="checkout-abc-1", alert_began=alert_began)
    plan = REGISTRY[Action.ROLLBACK].plan(kube, target, {}, "uid-rollback-0", context)
    assert plan.refusal is None, plan.reason
    assert plan.diff == ['spec.template.spec.containers[0].image: "demo/checkout:v3" -> "demo/checkout:v1"']
    assert (plan.before["revision"], plan.before["toRevision"]) == (3, 1)
    assert image(kube.deployment(namespace, "checkout")) == "demo/checkout:v3"  # dry run only so far
    apply(kube, Action.ROLLBACK, plan)
    live = wait_rolled_out(kube, target)
    assert image(live) == "demo/checkout:v1" and happened(kube, Action.ROLLBACK, plan, "uid-rollback-0")
    assert live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"
    assert len(kube.replica_sets(namespace, "app.kubernetes.io/name=checkout")) == 3  # v1's ReplicaSet reused

    again = REGISTRY[Action.ROLLBACK].plan(kube, target, {}, "uid-rollback-1", context)
    assert again.nothing_to_do  # the live template is already the target's


def test_rollback_refuses_a_paused_deployment(kube_cluster: KubeCluster, namespace: str) -> None:
    kube = kube_client(kube_cluster)
    create_demo_deployment(kube_cluster.api, namespace, "api", replicas=1)
    kube.patch_deployment(namespace, "api", {"spec": {"paused": True}})
    context = Context(incident="x", alert_began=datetime.now(UTC))
    assert REGISTRY[Action.ROLLBACK].plan(kube, Target(namespace, "api"), {}, "k", context).refusal == "Paused"


def _after_creation_second(kube: KubeClient, target: Target) -> datetime | None:
    """A time strictly after the newest ReplicaSet's creation (creation times have one-second precision)."""
    newest = max(
        datetime.fromisoformat(rs["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        for rs in kube.replica_sets(target.namespace, "app.kubernetes.io/name=checkout")
    )
    now = datetime.now(UTC).replace(microsecond=0)
    return now if now > newest else None


def test_delete_pod_takes_the_oldest_ready_pod_but_never_the_last(kube_cluster: KubeCluster, namespace: str) -> None:
    kube = kube_client(kube_cluster)
    create_demo_deployment(kube_cluster.api, namespace, "api", replicas=2)
    target = Target(namespace, "api")
    wait_rolled_out(kube, target)
    plan = REGISTRY[Action.DELETE_POD].plan(kube, target, {}, "uid-del-0", CONTEXT)
    assert plan.refusal is None and len(plan.diff) == 1 and plan.diff[0].startswith("delete pod api-")
    assert not happened(kube, Action.DELETE_POD, plan, "uid-del-0")
    apply(kube, Action.DELETE_POD, plan)
    assert happened(kube, Action.DELETE_POD, plan, "uid-del-0")
    apply(kube, Action.DELETE_POD, plan)  # again (an in-doubt retry): the pod is gone, nothing else is hit
    wait_rolled_out(kube, target)
    create_demo_deployment(kube_cluster.api, namespace, "solo", replicas=1)
    wait_rolled_out(kube, Target(namespace, "solo"))
    assert REGISTRY[Action.DELETE_POD].plan(kube, Target(namespace, "solo"), {}, "k", CONTEXT).refusal == "BlastRadius"


def test_wait_rollout_waits_for_the_controller(kube_cluster: KubeCluster, namespace: str) -> None:
    kube = kube_client(kube_cluster)
    create_demo_deployment(kube_cluster.api, namespace, "api", replicas=2)
    target = Target(namespace, "api")
    plan = REGISTRY[Action.WAIT_ROLLOUT].plan(kube, target, {}, "k", CONTEXT)
    assert plan.nothing_to_do
    wait_until(lambda: happened(kube, Action.WAIT_ROLLOUT, plan, "k"), timeout=60, what="the rollout to complete")
    set_deployment_image(kube_cluster.api, namespace, "api", "demo/checkout:v9")
    assert not happened(kube, Action.WAIT_ROLLOUT, plan, "k")  # a new generation: not complete at once
    wait_until(lambda: happened(kube, Action.WAIT_ROLLOUT, plan, "k"), timeout=60, what="the new rollout to complete")


def test_cordon_one_node_but_never_past_half_the_nodes(kube_cluster: KubeCluster) -> None:
    kube = kube_client(kube_cluster)
    names = sorted(n["metadata"]["name"] for n in kube.nodes())
    assert len(names) == 2
    first, second = (Target("", n, kind="Node") for n in names)
    try:
        plan = REGISTRY[Action.CORDON].plan(kube, first, {}, "uid-cordon-0", CONTEXT)
        assert plan.diff == ["spec.unschedulable: false -> true"]
        assert not kube.node(first.name).get("spec", {}).get("unschedulable")  # planning changed nothing
        apply(kube, Action.CORDON, plan)
        assert happened(kube, Action.CORDON, plan, "uid-cordon-0")
        assert kube.node(first.name)["spec"]["unschedulable"] is True
        assert REGISTRY[Action.CORDON].plan(kube, second, {}, "k", CONTEXT).refusal == "TooFewSchedulable"
        undo = REGISTRY[Action.CORDON].undo(kube, first, plan.before, "uid-cordon-0-undo", CONTEXT)
        assert undo.diff == ["spec.unschedulable: true -> false"]
        apply(kube, Action.CORDON, undo)
        assert not kube.node(first.name).get("spec", {}).get("unschedulable")
    finally:
        for node in names:  # the cluster is shared by every test: leave every node schedulable
            kube.patch_node(node, {"spec": {"unschedulable": None}})
