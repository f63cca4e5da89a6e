"""Cascades as a concern of the Incident turn: is this incident a symptom of an upstream one?

It owns status.cascade. Its index of open incidents by namespace and service is fed by the watch
(`seen`), so finding the root costs no API call; the namespace's dependency graph is read at most
once a minute. The root is the furthest upstream service with an open incident detected within
the correlation window of this one; escalation defers to it. When an incident opens or ends, the
open incidents of its namespace that declare dependencies are woken to look again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.common import parse_time
from incidentops.api.v1alpha1.incident import ENDED_STATES, CascadeStatus, IncidentSpec, IncidentStatus
from incidentops.concern import Decision, Notice, Ownership, WatchedConcern, append_timeline
from incidentops.kube import Obj
from incidentops.triage.dependencies import Dependencies, Graph, upstream_of
from incidentops.triage.settings import SettingsSource

Key = tuple[str, str]


@dataclass(frozen=True)
class OpenIncident:
    name: str
    service: str
    detected_at: datetime


@dataclass(frozen=True)
class Root:
    incident: str
    service: str
    path: tuple[str, ...]


def find_root(
    me: str, service: str, detected_at: datetime, graph: Graph, open_by_service: Mapping[str, Sequence[OpenIncident]],
    window: timedelta,
) -> Root | None:  # fmt: skip
    """The furthest upstream open incident detected within `window` of this one (ties: earliest, then name)."""
    best: tuple[int, datetime, str, Root] | None = None
    for upstream in upstream_of(service, graph):
        for other in open_by_service.get(upstream.service, ()):
            if other.name == me or abs(other.detected_at - detected_at) > window:
                continue
            rank = (-len(upstream.path), other.detected_at, other.name)
            if best is None or rank < best[:3]:
                best = (*rank, Root(other.name, upstream.service, upstream.path))
    return best[3] if best else None


@dataclass(frozen=True)
class Seen:
    depends_on: tuple[str, ...]
    root: Root | None


class Cascade(WatchedConcern):
    name = "cascade"
    owns = Ownership(frozenset({"cascade"}))

    def __init__(
        self,
        settings: SettingsSource,
        dependencies: Dependencies,
        window: timedelta,
        wait: timedelta,
    ) -> None:
        self.settings = settings
        self.dependencies = dependencies
        self.window = window
        self.wait = wait
        self._open: dict[str, dict[str, OpenIncident]] = {}  # namespace -> name -> open incident with a service
        self._with_deps: dict[str, set[str]] = {}  # namespace -> open incidents that declare dependencies
        self._wake: Callable[[Key, str], None] | None = None

    def bind(self, wake: Callable[[Key, str], None], deliver: Callable[[Key, str, Any], None]) -> None:
        self._wake = wake

    # -- the index, from the watch ----------------------------------------------------------------

    def seen(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        status = body.get("status") or {}
        service = (body.get("spec") or {}).get("service")
        detected = status.get("detectedAt")
        opened = self._open.setdefault(namespace, {})
        was_open = name in opened
        is_open = bool(service and detected and status.get("state") not in ENDED_STATES)
        if is_open:
            opened[name] = OpenIncident(name, str(service), parse_time(str(detected)))
        else:
            opened.pop(name, None)
        waiting = self._with_deps.setdefault(namespace, set())
        if is_open and (status.get("cascade") or {}).get("dependsOn"):
            waiting.add(name)
        else:
            waiting.discard(name)
        if was_open != is_open:
            self._wake_dependents(namespace, name)

    def gone(self, namespace: str, name: str, uid: str) -> None:
        if self._open.get(namespace, {}).pop(name, None) is not None:
            self._wake_dependents(namespace, name)
        self._with_deps.get(namespace, set()).discard(name)

    def _wake_dependents(self, namespace: str, changed: str) -> None:
        if self._wake is None:
            return
        for other in sorted(self._with_deps.get(namespace, set()) - {changed}):
            self._wake((namespace, other), self.name)

    # -- the turn ---------------------------------------------------------------------------------

    def wake(self, body: Mapping[str, Any], now: datetime) -> datetime | None:
        status = body.get("status") or {}
        if not status.get("detectedAt") or status.get("state") in ENDED_STATES:
            return None
        if not (body.get("spec") or {}).get("service"):
            return None
        cascade = status.get("cascade")
        if cascade is None:
            return now
        hold = cascade.get("holdUntil")
        if hold and not cascade.get("root") and parse_time(str(hold)) > now:
            return parse_time(str(hold))  # one more look as the hold ends: an upstream incident may have opened
        return None

    async def observe(self, obj: Obj, status: IncidentStatus, now: datetime, carried: Any) -> Any:
        spec = obj.get("spec") or {}
        service = spec.get("service")
        if not service or status.detected_at is None or status.state in ENDED_STATES:
            return None
        namespace = obj["metadata"]["namespace"]
        settings = await self.settings.current()
        graph = await self.dependencies.graph(namespace, settings.dependencies)
        by_service: dict[str, list[OpenIncident]] = {}
        for item in self._open.get(namespace, {}).values():
            by_service.setdefault(item.service, []).append(item)
        root = find_root(obj["metadata"]["name"], service, status.detected_at, graph, by_service, self.window)
        depends_on = tuple(sorted(graph.get(service, frozenset())))
        if depends_on:  # woken when an incident opens or ends in the namespace, from now on
            self._with_deps.setdefault(namespace, set()).add(obj["metadata"]["name"])
        return Seen(depends_on, root)

    def decide(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Any, now: datetime
    ) -> Decision | None:
        if not isinstance(observed, Seen) or status.detected_at is None:
            return None
        before = status.cascade or CascadeStatus()
        root = observed.root
        hold = status.detected_at + self.wait if observed.depends_on and self.wait > timedelta(0) else None
        after = CascadeStatus(
            depends_on=list(observed.depends_on)[:20],
            root=root.incident if root else None,
            root_service=root.service if root else None,
            path=list(root.path)[:20] if root else [],
            since=(before.since if before.root == (root.incident if root else None) else now) if root else None,
            hold_until=before.hold_until or hold,
        )
        if status.cascade is not None and after == before:
            return None
        updated = status.model_copy(update={"cascade": after})
        notices: list[Notice] = []
        if root is not None and before.root != root.incident:
            text = (
                f"symptom of incident {root.incident} (service {root.service}; {' → '.join(root.path)} "
                "depend on each other): escalation defers to it, so only the root pages"
            )
            updated = append_timeline(updated, now, "SymptomOf", text)
            notices.append(Notice("SymptomOf", text))
        elif root is None and before.root is not None:
            text = f"no longer a symptom of {before.root} (it ended, or is no longer upstream): escalation resumes"
            updated = append_timeline(updated, now, "NoLongerSymptom", text)
            notices.append(Notice("NoLongerSymptom", text))
        return Decision(updated, notices)
