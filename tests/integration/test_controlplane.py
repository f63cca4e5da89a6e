"""The local control plane behaves like a real cluster where the operator needs it to.

Remediation (scale, rollout restart, rollback) relies on kube-controller-manager and
kube-scheduler doing their jobs and on kwok making pods Running; these tests pin that down.
"""

from __future__ import annotations

import subprocess
from typing import Any

from kubernetes import client as k8s

from localenv.controlplane import KubeCluster, bin_dir, kubeconfig_path, kubectl_binary, to_plain, versions
from localenv.demo_workload import create_demo_deployment
from localenv.procs import wait_until

REVISION = "deployment.kubernetes.io/revision"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


def _ready_node_names(core: k8s.CoreV1Api) -> set[str]:
    names = set()
    for node in core.list_node().items:
        conditions = (node.status.conditions if node.status else None) or []
        if node.metadata and node.metadata.name and any(c.type == "Ready" and c.status == "True" for c in conditions):
            names.add(node.metadata.name)
    return names


def _owned_replicasets(apps: k8s.AppsV1Api, namespace: str, name: str) -> list[k8s.V1ReplicaSet]:
    deployment = apps.read_namespaced_deployment(name, namespace)
    uid = deployment.metadata.uid if deployment.metadata else None
    return [
        rs
        for rs in apps.list_namespaced_replica_set(namespace).items
        if rs.metadata and any(ref.uid == uid for ref in rs.metadata.owner_references or [])
    ]


def _revision(obj: k8s.V1Deployment | k8s.V1ReplicaSet) -> str | None:
    annotations = (obj.metadata.annotations if obj.metadata else None) or {}
    return annotations.get(REVISION)


def _rollout_complete(apps: k8s.AppsV1Api, namespace: str, name: str) -> k8s.V1Deployment | None:
    """The Deployment once its rollout finished (what `kubectl rollout status` waits for)."""
    deployment = apps.read_namespaced_deployment(name, namespace)
    status, meta = deployment.status, deployment.metadata
    wanted = deployment.spec.replicas
    if status is None or meta is None or wanted is None:
        return None
    done = (
        (status.observed_generation or 0) >= (meta.generation or 0)
        and (status.updated_replicas or 0) == wanted
        and (status.replicas or 0) == wanted
        and (status.available_replicas or 0) == wanted
        and (status.ready_replicas or 0) == wanted
    )
    return deployment if done else None


def _wait_rollout(apps: k8s.AppsV1Api, namespace: str, name: str, timeout: float = 60) -> k8s.V1Deployment:
    return wait_until(
        lambda: _rollout_complete(apps, namespace, name),
        timeout=timeout,
        interval=0.2,
        what=f"rollout of deployment {namespace}/{name}",
    )


def _image(obj: k8s.V1Deployment | k8s.V1ReplicaSet) -> str | None:
    template = obj.spec.template if obj.spec else None
    pod_spec = template.spec if template else None
    return pod_spec.containers[0].image if pod_spec else None


def _set_image(apps: k8s.AppsV1Api, namespace: str, name: str, image: str) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
    apps.patch_namespaced_deployment(name, namespace, patch)


def rollback_to_revision(api: k8s.ApiClient, namespace: str, name: str, revision: str) -> None:
    """Roll back as a Python operator would: copy revision N's pod template into the Deployment.

    This is what `kubectl rollout undo --to-revision=N` does client-side. The template is replaced
    as a whole (a JSON patch), so annotations added since (restartedAt) go away too.
    """
    apps = k8s.AppsV1Api(api)
    matches = [rs for rs in _owned_replicasets(apps, namespace, name) if _revision(rs) == revision]
    assert len(matches) == 1, f"expected one ReplicaSet with revision {revision}, got {len(matches)}"
    template: dict[str, Any] = to_plain(api, matches[0].spec.template if matches[0].spec else None)
    template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    apps.patch_namespaced_deployment(name, namespace, [{"op": "replace", "path": "/spec/template", "value": template}])


def test_version_is_the_built_kubernetes(kube_cluster: KubeCluster) -> None:
    info = k8s.VersionApi(kube_cluster.api).get_code()
    if kube_cluster.kubeconfig == kubeconfig_path():
        assert info.git_version == versions(bin_dir())["k8s"] == "v1.34.4"
    else:  # a user-provided cluster (kind etc.)
        assert (info.git_version or "").startswith("v1.")


def test_at_least_two_nodes_ready(kube_cluster: KubeCluster) -> None:
    core = k8s.CoreV1Api(kube_cluster.api)
    assert len(wait_until(lambda: _ready_node_names(core), timeout=30, what="Ready nodes")) >= 2


def test_deployment_pods_run_on_kwok_nodes(kube_cluster: KubeCluster, namespace: str) -> None:
    apps, core = k8s.AppsV1Api(kube_cluster.api), k8s.CoreV1Api(kube_cluster.api)
    create_demo_deployment(kube_cluster.api, namespace, "web", replicas=2)

    replicasets = wait_until(
        lambda: _owned_replicasets(apps, namespace, "web"), timeout=30, what="a ReplicaSet for deployment web"
    )
    assert len(replicasets) == 1
    _wait_rollout(apps, namespace, "web")

    pods = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=web").items
    assert len(pods) == 2
    kwok_nodes = {
        n.metadata.name
        for n in core.list_node().items
        if n.metadata and (n.metadata.annotations or {}).get(KWOK_NODE_ANNOTATION) == "fake"
    }
    for pod in pods:
        assert pod.status is not None and pod.status.phase == "Running"
        assert pod.spec is not None and pod.spec.node_name in kwok_nodes


def test_scaling_changes_the_replicaset(kube_cluster: KubeCluster, namespace: str) -> None:
    apps = k8s.AppsV1Api(kube_cluster.api)
    create_demo_deployment(kube_cluster.api, namespace, "web", replicas=2)
    _wait_rollout(apps, namespace, "web")

    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 3}})

    deployment = _wait_rollout(apps, namespace, "web")
    assert deployment.status is not None and deployment.status.ready_replicas == 3
    (replicaset,) = _owned_replicasets(apps, namespace, "web")
    assert replicaset.spec is not None and replicaset.spec.replicas == 3


def test_rollout_restart_creates_a_new_replicaset(kube_cluster: KubeCluster, namespace: str) -> None:
    apps = k8s.AppsV1Api(kube_cluster.api)
    create_demo_deployment(kube_cluster.api, namespace, "web", replicas=2)
    _wait_rollout(apps, namespace, "web")
    (first,) = _owned_replicasets(apps, namespace, "web")

    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2026-01-01T00:00:00Z"}}}}}
    apps.patch_namespaced_deployment("web", namespace, patch)

    deployment = _wait_rollout(apps, namespace, "web")
    assert _revision(deployment) == "2"
    replicasets = {rs.metadata.name: rs for rs in _owned_replicasets(apps, namespace, "web") if rs.metadata}
    assert len(replicasets) == 2
    old = replicasets[first.metadata.name if first.metadata else ""]
    assert old.spec is not None and old.spec.replicas == 0
    (new,) = [rs for name, rs in replicasets.items() if first.metadata and name != first.metadata.name]
    assert new.spec is not None and new.spec.replicas == 2
    assert _revision(new) == "2"


def _three_revisions(apps: k8s.AppsV1Api, api: k8s.ApiClient, namespace: str) -> None:
    create_demo_deployment(api, namespace, "web", image="demo/app:v1", replicas=2)
    _wait_rollout(apps, namespace, "web")
    _set_image(apps, namespace, "web", "demo/app:v2")
    _wait_rollout(apps, namespace, "web")
    _set_image(apps, namespace, "web", "demo/app:bad")
    deployment = _wait_rollout(apps, namespace, "web")
    assert _revision(deployment) == "3"


def _assert_rolled_back_to_v1(apps: k8s.AppsV1Api, namespace: str) -> None:
    deployment = _wait_rollout(apps, namespace, "web")
    assert _image(deployment) == "demo/app:v1"
    # the revision-1 ReplicaSet is reused (same template hash) and becomes revision 4
    replicasets = _owned_replicasets(apps, namespace, "web")
    assert len(replicasets) == 3
    live = [rs for rs in replicasets if rs.spec and rs.spec.replicas]
    assert len(live) == 1
    assert _image(live[0]) == "demo/app:v1"
    assert _revision(live[0]) == _revision(deployment) == "4"


def test_rollback_by_copying_the_replicaset_template(kube_cluster: KubeCluster, namespace: str) -> None:
    apps = k8s.AppsV1Api(kube_cluster.api)
    _three_revisions(apps, kube_cluster.api, namespace)

    rollback_to_revision(kube_cluster.api, namespace, "web", "1")

    _assert_rolled_back_to_v1(apps, namespace)


def test_rollback_with_kubectl_rollout_undo(kube_cluster: KubeCluster, namespace: str) -> None:
    apps = k8s.AppsV1Api(kube_cluster.api)
    _three_revisions(apps, kube_cluster.api, namespace)

    subprocess.run(
        [
            str(kubectl_binary()),
            "--kubeconfig",
            str(kube_cluster.kubeconfig),
            "-n",
            namespace,
            "rollout",
            "undo",
            "deployment/web",
            "--to-revision=1",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )

    _assert_rolled_back_to_v1(apps, namespace)
