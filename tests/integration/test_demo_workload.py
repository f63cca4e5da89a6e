"""The demo workload's health follows its Deployment, so remediation is visible in its metrics."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

from localenv.controlplane import KubeCluster
from localenv.demo_workload import RESTARTED_AT, DemoWorkloadProcess
from localenv.procs import wait_until

DemoWorkloadFactory = Callable[..., DemoWorkloadProcess]


def _gauge(demo: DemoWorkloadProcess, name: str) -> float:
    for family in text_string_to_metric_families(httpx.get(demo.metrics_url, timeout=5).text):
        if family.name == name:
            return float(family.samples[0].value)
    raise AssertionError(f"{name} not exported")


def test_too_few_ready_replicas_saturate_and_scaling_up_recovers(
    kube_cluster: KubeCluster, namespace: str, demo_workload: DemoWorkloadFactory
) -> None:
    apps = k8s.AppsV1Api(kube_cluster.api)
    demo = demo_workload(namespace, "api", replicas=2, min_replicas=2)
    wait_until(lambda: _gauge(demo, "demo_ready_replicas") == 2, timeout=30, what="2 ready replicas")
    assert _gauge(demo, "demo_cpu_utilization") < 0.9

    apps.patch_namespaced_deployment_scale("api", namespace, {"spec": {"replicas": 1}})
    wait_until(lambda: _gauge(demo, "demo_cpu_utilization") > 0.9, timeout=30, what="saturation")

    apps.patch_namespaced_deployment_scale("api", namespace, {"spec": {"replicas": 2}})
    wait_until(lambda: _gauge(demo, "demo_cpu_utilization") < 0.9, timeout=30, what="recovery")


def test_rollout_restart_resets_the_leak(
    kube_cluster: KubeCluster, namespace: str, demo_workload: DemoWorkloadFactory
) -> None:
    apps = k8s.AppsV1Api(kube_cluster.api)
    demo = demo_workload(namespace, "api")
    first = _gauge(demo, "demo_memory_leak_bytes")
    grown = wait_until(
        lambda: (v := _gauge(demo, "demo_memory_leak_bytes")) > first + 512 * 1024 and v,
        timeout=30,
        what="the leak to grow",
    )

    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2026-01-01T00:00:00Z"}}}}}
    apps.patch_namespaced_deployment("api", namespace, patch)

    wait_until(lambda: _gauge(demo, "demo_memory_leak_bytes") < grown, timeout=30, what="the leak to reset")
