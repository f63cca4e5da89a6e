"""Which services a service depends on: declared on its workloads, or in the triage ConfigMap.

A Deployment or StatefulSet declares its upstream services with the annotation
`incidentops.dev/depends-on: "payments,postgres"`. The workload stands for a service under its
name and its `app.kubernetes.io/name` and `app` labels (what alerts usually call the service).
The ConfigMap's `dependencies` add to that: `checkout: [payments, postgres]`, or
`shop/checkout: [...]` for one namespace only. Dependencies stay within a namespace.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from incidentops.kube import AsyncKube, KubeError, Obj

log = logging.getLogger(__name__)
DEPENDS_ON_ANNOTATION = "incidentops.dev/depends-on"
REFRESH = timedelta(minutes=1)
MAX_UPSTREAM = 20
Graph = Mapping[str, frozenset[str]]


def _names(workload: Obj) -> set[str]:
    meta = workload.get("metadata") or {}
    labels = meta.get("labels") or {}
    found = {str(meta.get("name", ""))} | {str(labels[k]) for k in ("app.kubernetes.io/name", "app") if labels.get(k)}
    return {n for n in found if n}


def declared(workloads: Iterable[Obj]) -> dict[str, frozenset[str]]:
    """service -> the services its workloads' annotation names (bounded; itself left out)."""
    graph: dict[str, set[str]] = {}
    for workload in workloads:
        text = ((workload.get("metadata") or {}).get("annotations") or {}).get(DEPENDS_ON_ANNOTATION)
        if not text:
            continue
        upstream = [part.strip() for part in str(text)[:2048].split(",") if part.strip()][:MAX_UPSTREAM]
        names = _names(workload)
        for name in names:
            graph.setdefault(name, set()).update(u[:253] for u in upstream if u not in names)  # never itself
    return {k: frozenset(v) for k, v in graph.items()}


def merged(namespace: str, annotated: Graph, configured: Mapping[str, tuple[str, ...]]) -> dict[str, frozenset[str]]:
    out = {k: set(v) for k, v in annotated.items()}
    for key, upstream in configured.items():
        where, _, service = key.rpartition("/")
        if where and where != namespace:
            continue
        out.setdefault(service, set()).update(u for u in upstream if u != service)
    return {k: frozenset(v) for k, v in out.items()}


@dataclass(frozen=True)
class Upstream:
    """A service reached by following dependencies, with the way there."""

    service: str
    path: tuple[str, ...]  # from the starting service to this one, both included


def upstream_of(service: str, graph: Graph) -> list[Upstream]:
    """Every service upstream of `service`, nearest first (each once; cycles are cut)."""
    seen = {service}
    queue: deque[tuple[str, ...]] = deque([(service,)])
    found: list[Upstream] = []
    while queue:
        path = queue.popleft()
        for nxt in sorted(graph.get(path[-1], frozenset())):
            if nxt in seen:
                continue
            seen.add(nxt)
            found.append(Upstream(nxt, (*path, nxt)))
            queue.append((*path, nxt))
    return found


class Dependencies:
    """The namespace's dependency graph, rebuilt at most once a minute per namespace."""

    def __init__(self, kube: AsyncKube, clock: Callable[[], datetime]) -> None:
        self.kube = kube
        self.clock = clock
        self._annotated: dict[str, tuple[datetime, dict[str, frozenset[str]]]] = {}

    async def graph(self, namespace: str, configured: Mapping[str, tuple[str, ...]]) -> dict[str, frozenset[str]]:
        now = self.clock()
        cached = self._annotated.get(namespace)
        if cached is None or now - cached[0] >= REFRESH:
            try:
                found = declared(await self.kube.workloads(namespace))
            except KubeError as error:
                log.warning("cannot read the workloads of %s for their dependencies: %s", namespace, error)
                found = cached[1] if cached else {}
            self._annotated[namespace] = (now, found)
            cached = self._annotated[namespace]
        return merged(namespace, cached[1], configured)
