"""Persisting alerts as Incidents, exactly once per episode, under any concurrency.

Every status write carries the resourceVersion it was computed from, so a write based on stale
knowledge fails with 409 and is recomputed from fresh state; incident names are deterministic, so
a 409 on create means another delivery (or another operator process) got there first and we join.
Deliveries for the same correlation key that arrive while a write is in flight are folded into the
next write (group commit): an alert storm costs one apiserver round trip per key per batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from incidentops.api.v1alpha1.common import (
    API_VERSION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    Category,
    LocalObjectReference,
    Severity,
    WorkloadReference,
    is_dns_label,
    is_object_name,
)
from incidentops.api.v1alpha1.incident import SEVERITY_LABEL, IncidentSpec, IncidentState, IncidentStatus
from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.config import Config
from incidentops.ingest.alerts import TITLE, Alert, bounded_text
from incidentops.ingest.correlation import (
    CORRELATION_KEY_ANNOTATION,
    CORRELATION_LABEL,
    EPISODE_LABEL,
    SERVICE_LABEL,
    GroupKey,
    accepts_alerts,
    episode_of,
    incident_name,
    slug,
)
from incidentops.ingest.merge import MergeOutcome, apply_alerts, without_replays
from incidentops.kube import AsyncKube, Conflict, NotFound, Obj, Unavailable
from incidentops.lifecycle.intents import reconcile_intents
from incidentops.lifecycle.machine import append_timeline, initial_status
from incidentops.metrics import (
    ALERTS_DEDUPLICATED,
    ALERTS_UNKNOWN_SEVERITY,
    INCIDENT_WRITES,
    INCIDENTS_CREATED,
    TIME_TO_RESOLVE,
)

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 25
UNAVAILABLE_BACKOFF = (0.1, 0.3, 1.0)
CACHE_SIZE = 10_000
WORKLOAD_LABELS = {"deployment": "Deployment", "statefulset": "StatefulSet", "daemonset": "DaemonSet"}


@dataclass(frozen=True)
class Persisted:
    """Where a group of alerts ended up; incident is None when there was nothing to record."""

    namespace: str
    incident: str | None
    created: bool = False
    outcome: MergeOutcome = field(default_factory=MergeOutcome)


@dataclass
class _Pending:
    alerts: list[Alert]
    future: asyncio.Future[Persisted]


def status_of(obj: Obj | None) -> IncidentStatus:
    if not obj or not obj.get("status"):
        return IncidentStatus()
    return IncidentStatus.model_validate(obj["status"])


class IncidentWriter:
    """Group-commit writer: one in-flight write per correlation key, later deliveries batched."""

    def __init__(self, kube: AsyncKube, config: Config, clock: Callable[[], datetime]) -> None:
        self._kube = kube
        self._config = config
        self._clock = clock
        self._window = timedelta(seconds=config.correlation_window_seconds)
        self._pending: dict[GroupKey, list[_Pending]] = {}
        self._running: dict[GroupKey, asyncio.Task[None]] = {}
        self._latest: OrderedDict[GroupKey, Obj] = OrderedDict()
        self._indexed: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()

    async def submit(self, key: GroupKey, alerts: list[Alert]) -> Persisted:
        """Persist the alerts; returns once they are in the apiserver (or raises)."""
        future: asyncio.Future[Persisted] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append(_Pending(alerts, future))
        if key not in self._running:
            self._running[key] = asyncio.create_task(self._drain(key))
        return await future

    async def _drain(self, key: GroupKey) -> None:
        try:
            while batch := self._pending.pop(key, None):
                try:
                    result = await self._persist(key, [a for p in batch for a in p.alerts])
                except Exception as error:  # every waiter hears about the failure
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(error)
                else:
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_result(result)
        finally:
            del self._running[key]

    def _remember(self, key: GroupKey, obj: Obj | None) -> None:
        if obj is None:
            self._latest.pop(key, None)
            return
        self._latest[key] = obj
        self._latest.move_to_end(key)
        while len(self._latest) > CACHE_SIZE:
            evicted, _ = self._latest.popitem(last=False)
            self._indexed.discard(evicted.namespace)  # absence from the cache no longer means "none"

    async def _load_latest(self, key: GroupKey) -> Obj | None:
        """The latest episode for the key; one LIST indexes a whole namespace the first time.

        After that, a key missing from the cache has no incident as far as this process knows;
        if another process created one meanwhile, our create gets a 409 and we join it.
        """
        if key.namespace in self._indexed:
            return None
        latest: dict[GroupKey, Obj] = {}
        for obj in await self._kube.list(INCIDENT, key.namespace, CORRELATION_LABEL):
            annotations = obj["metadata"].get("annotations") or {}
            found = GroupKey(key.namespace, annotations.get(CORRELATION_KEY_ANNOTATION, ""))
            if found not in latest or episode_of(obj) > episode_of(latest[found]):
                latest[found] = obj
        for found, obj in latest.items():
            if found not in self._latest:
                self._remember(found, obj)
        self._indexed.add(key.namespace)
        return latest.get(key)

    async def _refresh(self, key: GroupKey, name: str) -> None:
        try:
            self._remember(key, await self._kube.get(INCIDENT, key.namespace, name))
        except NotFound:
            self._remember(key, None)

    async def _persist(self, key: GroupKey, alerts: list[Alert]) -> Persisted:
        unavailable = 0
        for _ in range(MAX_ATTEMPTS):
            try:
                result = await self._attempt(key, alerts)
            except NotFound as error:  # from LIST or create: the resource type or the namespace is missing
                raise Unavailable(
                    f"cannot write Incidents in namespace {key.namespace} ({error}): "
                    "are the incidentops CRDs installed and the namespace present?"
                ) from error
            except Unavailable:
                if unavailable >= len(UNAVAILABLE_BACKOFF):
                    raise
                await asyncio.sleep(UNAVAILABLE_BACKOFF[unavailable])
                unavailable += 1
                continue
            if result is not None:
                return result
        raise Unavailable(f"gave up on {key.namespace}/{key.correlation} after {MAX_ATTEMPTS} conflicting writes")

    async def _attempt(self, key: GroupKey, alerts: list[Alert]) -> Persisted | None:
        """One read-decide-write round; None means 'lost a race, go again with fresh state'."""
        now = self._clock()
        latest = self._latest.get(key)
        if latest is None:
            latest = await self._load_latest(key)
            self._remember(key, latest)
        created = False
        replays = 0
        latest_status = status_of(latest)
        if latest is not None and accepts_alerts(latest_status, now, self._window):
            target, base = latest, latest_status
        else:
            fresh = without_replays(latest_status, alerts, now, self._window)  # no new episode from replays
            replays, alerts = len(alerts) - len(fresh), fresh
            if not any(a.firing for a in alerts):
                ALERTS_DEDUPLICATED.inc(replays)
                name = latest["metadata"]["name"] if latest else None
                return Persisted(key.namespace, name)
            episode = episode_of(latest) + 1 if latest else 1
            body = new_incident(key, alerts, episode, latest)
            try:
                target = await self._kube.create(INCIDENT, key.namespace, body)
            except Conflict:
                await self._refresh(key, body["metadata"]["name"])
                return None
            created, base = True, IncidentStatus()
        name = target["metadata"]["name"]
        spec = IncidentSpec.model_validate(target["spec"])
        initializing = base.detected_at is None
        if initializing:
            asked = next((a.namespace for a in alerts if a.firing and a.namespace), None)
            base = opening_status(spec, now, asked=asked, namespace=key.namespace)
        try:
            status, outcome = apply_alerts(
                base,
                alerts,
                now=now,
                auto_resolve=self._config.auto_resolve,
                recent_limit=self._config.recent_alerts,
                common_labels=spec.labels or {},
            )
            status = _in_step_with_spec(spec, target["metadata"].get("generation"), status, now)
        except Exception:
            if created:  # never leave an Incident without status: the lifecycle would wait for us forever
                log.exception(
                    "could not record alerts in new incident %s/%s; writing its opening status", key.namespace, name
                )
                await self._kube.replace_status(INCIDENT, {**target, "status": base.wire()})
            raise
        try:
            updated = await self._kube.replace_status(INCIDENT, {**target, "status": status.wire()})
        except (Conflict, NotFound):
            INCIDENT_WRITES.labels("conflict").inc()
            await self._refresh(key, name)
            return None
        INCIDENT_WRITES.labels("ok").inc()
        self._remember(key, updated)
        ALERTS_DEDUPLICATED.inc(outcome.duplicates + outcome.stale + replays)
        ALERTS_UNKNOWN_SEVERITY.inc(outcome.unknown_severity)
        if created:
            INCIDENTS_CREATED.labels(target["spec"]["severity"]).inc()
            if latest is not None:
                await self._link_previous(key.namespace, latest["metadata"]["name"], name)
        self._announce(updated, initializing, outcome)
        return Persisted(key.namespace, name, created, outcome)

    async def accepts(self, key: GroupKey) -> bool:
        """Whether an open episode for the key takes alerts now (so alerts keep joining it)."""
        latest = self._latest.get(key)
        if latest is None:
            try:
                latest = await self._load_latest(key)
            except NotFound:  # no such namespace, or no CRD: nothing there to join
                return False
            self._remember(key, latest)
        if latest is None or not accepts_alerts(status_of(latest), self._clock(), self._window):
            return False
        # Only alerts once routed here while their namespace was missing get this far: read it
        # fresh, since a responder may have resolved it meanwhile (our cache sees only our writes).
        await self._refresh(key, latest["metadata"]["name"])
        fresh = self._latest.get(key)
        return fresh is not None and accepts_alerts(status_of(fresh), self._clock(), self._window)

    def _announce(self, obj: Obj, initializing: bool, outcome: MergeOutcome) -> None:
        """Events and log lines for humans; Events are posted in the background, off the webhook's path."""
        spec = obj["spec"]
        status = status_of(obj)
        where = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        severity = status.severity or spec["severity"]
        if initializing:
            self._post(obj, "Detected", f"{severity} incident opened: {spec['title']}")
            log.info(
                "opened incident %s (%s, service %s): %s; %d alerts firing",
                where,
                severity,
                spec.get("service") or "-",
                spec["title"],
                status.alerts.firing,
            )
        elif outcome.new_firing:
            log.debug(
                "%d alerts joined incident %s: %s", len(outcome.new_firing), where, ", ".join(outcome.new_firing[:5])
            )
        if outcome.severity_raised:
            old, new = outcome.severity_raised
            self._post(obj, "SeverityRaised", f"severity raised {old} → {new}: a {new} alert joined", warning=True)
            log.info("incident %s severity raised %s -> %s", where, old, new)
        if outcome.auto_transition == IncidentState.RESOLVED:
            resolved_in = status.metrics.time_to_resolve_seconds
            if resolved_in is not None:
                TIME_TO_RESOLVE.labels(severity).observe(resolved_in)
            self._post(obj, "Resolved", "every alert has resolved; incident resolved automatically")
            log.info("incident %s resolved: every alert has resolved", where)
        elif outcome.auto_transition == IncidentState.MONITORING:
            self._post(obj, "Monitoring", "every alert has resolved; monitoring (auto-resolve is off)")
            log.info("incident %s monitoring: every alert has resolved (auto-resolve is off)", where)

    def _post(self, obj: Obj, reason: str, message: str, *, warning: bool = False) -> None:
        task = asyncio.create_task(
            self._kube.post_event(obj, reason, message, type_="Warning" if warning else "Normal")
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _link_previous(self, namespace: str, previous: str, current: str) -> None:
        """Tell the old episode, in its timeline, that the alert came back as a new incident."""
        for _ in range(MAX_ATTEMPTS):
            try:
                obj = await self._kube.get(INCIDENT, namespace, previous)
            except NotFound:
                return
            status = status_of(obj)
            if status.recurred_as == current:
                return
            status = append_timeline(
                status.model_copy(update={"recurred_as": current}),
                self._clock(),
                "Recurred",
                f"the alert fired again after this episode ended; it continues as {current}",
            )
            try:
                await self._kube.replace_status(INCIDENT, {**obj, "status": status.wire()})
                return
            except Conflict:
                continue


def new_incident(key: GroupKey, alerts: list[Alert], episode: int, previous: Obj | None) -> Obj:
    """The Incident a group of alerts opens; pure, so the fuzz suite checks it against the CRD schema."""
    firing = [a for a in alerts if a.firing]
    first = firing[0]
    severity = min((a.severity for a in firing), key=lambda s: Severity(s).value)
    service = first.service
    base = service or first.name
    name = incident_name(key, base, episode)
    spec = IncidentSpec(
        title=bounded_text(first.summary or f"{first.name} on {service or key.namespace}", TITLE),
        severity=severity,
        category=_category(first.labels.get("category")),
        service=service,
        summary=first.annotations.get("description") if first.annotations else None,
        source=first.source,
        affected_workloads=_workloads(first.labels),
        dedup_key=first.dedup_key,
        correlation_key=key.correlation[:1024],
        labels=_common_labels(firing),
        previous_incident=previous["metadata"]["name"] if previous else None,
        runbook_ref=_ref(first.runbook_ref),
        escalation_policy_ref=_ref(first.escalation_policy_ref),
    )
    return {
        "apiVersion": API_VERSION,
        "kind": INCIDENT.kind,
        "metadata": {
            "name": name,
            "namespace": key.namespace,
            "labels": {
                MANAGED_BY_LABEL: MANAGED_BY,
                CORRELATION_LABEL: key.digest,
                EPISODE_LABEL: str(episode),
                SERVICE_LABEL: slug(base, 63),
                SEVERITY_LABEL: str(severity),
            },
            "annotations": {CORRELATION_KEY_ANNOTATION: key.correlation},
        },
        "spec": spec.wire(),
    }


def _ref(name: str | None) -> LocalObjectReference | None:
    """A DetectionRule's runbookRef or escalationPolicyRef, carried into the Incident it opens."""
    return LocalObjectReference(name=name) if name else None


def opening_status(
    spec: IncidentSpec, now: datetime, *, asked: str | None = None, namespace: str | None = None
) -> IncidentStatus:
    """The first status of an Incident the ingester opened: its severity follows its alerts.

    When the alerts named another namespace than the one the incident is in (a typo, a namespace
    not watched), the timeline says so: its runbooks and escalation policies are not the ones used.
    """
    status = initial_status(now, how=f"opened from {spec.source or 'alerts'}: {spec.title}")
    if asked and namespace and asked != namespace:
        status = append_timeline(
            status,
            now,
            "NamespaceNotFound",
            f"the alerts name namespace {asked[:63]!r}, which does not exist or is not watched "
            f"(INCIDENTOPS_NAMESPACES): the incident is in {namespace}, with that namespace's runbooks and "
            "escalation policies",
        )
    return status.model_copy(
        update={"severity": spec.severity, "spec_severity": spec.severity, "severity_source": "alerts"}
    )


def _in_step_with_spec(
    spec: IncidentSpec, generation: int | None, status: IncidentStatus, now: datetime
) -> IncidentStatus:
    """Stamp observedGeneration when no human intent waits, so the lifecycle handler has nothing to redo.

    When one does wait (an acknowledgement not yet mirrored, say), the status is left as it is:
    the lifecycle handler applies it, with its Event and metrics.
    """
    pending = reconcile_intents(spec, status, now=now, generation=generation)
    return status if pending.notices else pending.status


def _category(value: str | None) -> Category | None:
    try:
        return Category(value) if value else None
    except ValueError:
        return None


def _workloads(labels: dict[str, str]) -> list[WorkloadReference]:
    """Workloads named by the alert's labels; values that cannot name an object are skipped."""
    namespace = labels.get("namespace")
    namespace = namespace if namespace and is_dns_label(namespace) else None
    return [
        WorkloadReference(kind=kind, name=labels[label], namespace=namespace)
        for label, kind in WORKLOAD_LABELS.items()
        if is_object_name(labels.get(label, ""))
    ]


def _common_labels(alerts: list[Alert], limit: int = 32) -> dict[str, str]:
    common = dict(alerts[0].labels)
    for alert in alerts[1:]:
        common = {k: v for k, v in common.items() if alert.labels.get(k) == v}
    return dict(sorted(common.items())[:limit])
