"""What the benchmarks share: percentiles and fresh, labelled namespaces."""

from __future__ import annotations

import time

from kubernetes import client as k8s


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def fresh_namespace(api: k8s.ApiClient, prefix: str) -> str:
    name = f"{prefix}-{int(time.time())}"
    meta = k8s.V1ObjectMeta(name=name, labels={"incidentops.dev/bench": "1"})
    k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=meta))
    return name
