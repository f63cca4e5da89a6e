"""Cascades as a concern of the Incident turn: is this incident a symptom of an upstream one?

It owns status.cascade. Its index of open incidents by namespace and service is fed by the watch
(`seen`), so finding the root costs no API call; the namespace's dependency graph is read at most
once a minute. The root is the furthest upstream service with an open incident detected within
the correlation window of this one; escalation defers to it. When an incident opens or ends, the
open incidents of its namespace that declare dependencies are woken to look again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.common import Severity, parse_time
from incidentops.api.v1alpha1.incident import ENDED_STATES, CascadeStatus, IncidentSpec, IncidentStatus
from incidentops.concern import Decision, Notice, Ownership, WatchedConcern, append_timeline
from incidentops.kube import Obj
from incidentops.triage.concern import raise_severity
from incidentops.triage.dependencies import Dependencies, Graph, upstream_of
from incidentops.triage.settings import SettingsSource

Key = tuple[str, str]


@dataclass(frozen=True)
class OpenIncident:
    name: str
    service: str
    detected_at: datetime
    severity: str | None = None
    unpaged: bool = False  # its escalation found no policy: it cannot page for its symptoms
    root: str | None = None  # the incident it is itself a symptom of


@dataclass(frozen=True)
class Root:
    incident: str
    service: str
    path: tuple[str, ...]


def find_root(
    me: str, service: str, detected_at: datetime, graph: Graph, open_by_service: Mapping[str, Sequence[OpenIncident]],
    window: timedelta,
) -> Root | None:  # fmt: skip
    """The furthest upstream open incident detected within `window` of this one (ties: earliest, then name).

    An incident that cannot page (no policy) is never a root: its symptoms would page nobody. Where
    dependencies loop (a depends on b, b on a), the earlier incident is the root, so one of them pages.
    """
    best: tuple[int, datetime, str, Root] | None = None
    for upstream in upstream_of(service, graph):
        loops = any(u.service == service for u in upstream_of(upstream.service, graph))
        for other in open_by_service.get(upstream.service, ()):
            if other.name == me or other.unpaged or abs(other.detected_at - detected_at) > window:
                continue
            if loops and (other.detected_at, other.name) > (detected_at, me):
                continue  # a cycle: the later of the two is the symptom
            rank = (-len(upstream.path), other.detected_at, other.name)
            if best is None or rank < best[:3]:
                best = (*rank, Root(other.name, upstream.service, upstream.path))
    return best[3] if best else None


def worst_symptom(me: str, open_incidents: Iterable[OpenIncident]) -> tuple[str | None, list[str]]:
    """The worst severity among the incidents that are this one's symptoms, and their names."""
    symptoms = [i for i in open_incidents if i.root == me and i.name != me]
    severities = [Severity(i.severity) for i in symptoms if i.severity]
    return (str(min(severities)) if severities else None), sorted(i.name for i in symptoms)


@dataclass(frozen=True)
class Seen:
    depends_on: tuple[str, ...]
    root: Root | None
    worst_symptom: str | None = None
    symptoms: tuple[str, ...] = ()


class Cascade(WatchedConcern):
    name = "cascade"
    owns = Ownership(frozenset({"cascade", "severity", "severity_source"}))  # a root is as bad as its symptoms

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
        spec, status = body.get("spec") or {}, body.get("status") or {}
        service = spec.get("service")
        detected = status.get("detectedAt")
        opened = self._open.setdefault(namespace, {})
        was = opened.get(name)
        # a simulation is never a root nor a symptom: a rehearsal on postgres must not silence a real page
        is_open = bool(service and detected and status.get("state") not in ENDED_STATES and not spec.get("simulation"))
        cascade = status.get("cascade") or {}
        if is_open:
            opened[name] = OpenIncident(
                name, str(service), parse_time(str(detected)), status.get("severity"),
                (status.get("escalation") or {}).get("stopped") == "NoPolicy", cascade.get("root"),
            )  # fmt: skip
        else:
            opened.pop(name, None)
        waiting = self._with_deps.setdefault(namespace, set())
        if is_open and cascade.get("dependsOn"):
            waiting.add(name)
        else:
            waiting.discard(name)
        now = opened.get(name)
        if (was is None) != (now is None) or (was and now and was.unpaged != now.unpaged):
            self._wake_dependents(namespace, name)
        for root in {r for r in (was.root if was else None, now.root if now else None) if r}:
            if not was or not now or (was.root, was.severity) != (now.root, now.severity):
                self._wake_one((namespace, root))  # its symptoms changed: it may need to be worse

    def gone(self, namespace: str, name: str, uid: str) -> None:
        if self._open.get(namespace, {}).pop(name, None) is not None:
            self._wake_dependents(namespace, name)
        self._with_deps.get(namespace, set()).discard(name)

    def _wake_one(self, key: Key) -> None:
        if self._wake is not None:
            self._wake(key, self.name)

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
        me = obj["metadata"]["name"]
        root = find_root(me, service, status.detected_at, graph, by_service, self.window)
        worst, symptoms = worst_symptom(me, self._open.get(namespace, {}).values())
        depends_on = tuple(sorted(graph.get(service, frozenset())))
        if depends_on:  # woken when an incident opens or ends in the namespace, from now on
            self._with_deps.setdefault(namespace, set()).add(obj["metadata"]["name"])
        return Seen(depends_on, root, worst, tuple(symptoms[:20]))

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
        updated = status.model_copy(update={"cascade": after})
        notices: list[Notice] = []
        if observed.worst_symptom is not None and root is None:
            shown = ", ".join(observed.symptoms[:5]) + (" and others" if len(observed.symptoms) > 5 else "")
            why = f"a cascade: its symptoms {shown} are {observed.worst_symptom}, and it pages for them"
            updated, raised = raise_severity(updated, observed.worst_symptom, now, why)
            if raised:
                notices.append(Notice("SeverityRaised", raised, warning=True))
        if status.cascade is not None and updated == status:
            return None
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
