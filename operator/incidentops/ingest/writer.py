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
from incidentops.api.v1alpha1.incident import SEVERITY_LABEL, IncidentSpec, IncidentStatus
from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.config import Config
from incidentops.incidents.turn import KeptChanging, Turns
from incidentops.ingest.alerts import TITLE, Alert, bounded_text
from incidentops.ingest.concern import Alerts, Recurred
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
from incidentops.ingest.episodes import EpisodeIndex
from incidentops.ingest.merge import MergeOutcome, without_replays
from incidentops.kube import AsyncKube, Conflict, NotFound, Obj, Unavailable
from incidentops.metrics import (
    ALERTS_DEDUPLICATED,
    ALERTS_UNKNOWN_SEVERITY,
    INCIDENTS_CREATED,
)

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 25
UNAVAILABLE_BACKOFF = (0.1, 0.3, 1.0)
CACHE_SIZE = 256  # whole Incidents (about 22 KiB each in memory) of the keys alerting now; others are a GET away
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

    def __init__(
        self,
        kube: AsyncKube,
        config: Config,
        clock: Callable[[], datetime],
        turns: Turns,
        episodes: EpisodeIndex | None = None,
    ) -> None:
        self._kube = kube
        self._episodes = episodes or EpisodeIndex()
        self._turns = turns
        self._config = config
        self._clock = clock
        self._window = timedelta(seconds=config.correlation_window_seconds)
        self._pending: dict[GroupKey, list[_Pending]] = {}
        self._running: dict[GroupKey, asyncio.Task[None]] = {}
        self._latest: OrderedDict[GroupKey, Obj] = OrderedDict()
        self._indexing: dict[str, asyncio.Lock] = {}

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
        self._episodes.seen(obj)  # our own writes, before the watch brings them
        self._latest[key] = obj
        self._latest.move_to_end(key)
        while len(self._latest) > CACHE_SIZE:
            self._latest.popitem(last=False)

    async def _load_latest(self, key: GroupKey) -> Obj | None:
        """The latest episode for the key. Concurrent first deliveries of one key share the read."""
        lock = self._indexing.setdefault(f"{key.namespace}/{key.digest}", asyncio.Lock())
        async with lock:
            if key in self._latest:
                return self._latest[key]
            latest = await self._read_latest(key)
            self._remember(key, latest)
        self._indexing.pop(f"{key.namespace}/{key.digest}", None)
        return latest

    async def _read_latest(self, key: GroupKey) -> Obj | None:
        """By name from the episode index while it covers the namespace (a GET, or no call at all for a key
        never seen), else by a LIST on the correlation label: the apiserver filters that over every
        Incident of the namespace, so at 10,000 incidents it cost each new key a scan."""
        if self._episodes.covers(key.namespace):
            known = self._episodes.lookup(key.namespace, key.correlation)
            if known is None:
                return None  # never seen: the create's deterministic name settles a race with another replica (409)
            try:
                return await self._kube.get(INCIDENT, key.namespace, known.name)
            except NotFound:
                self._episodes.gone(key.namespace, known.name)  # deleted: the watch will say so too
        latest: Obj | None = None
        for obj in await self._kube.list(INCIDENT, key.namespace, f"{CORRELATION_LABEL}={key.digest}"):
            annotations = obj["metadata"].get("annotations") or {}
            if annotations.get(CORRELATION_KEY_ANNOTATION, "") != key.correlation:
                continue  # another key whose digest collides: not ours
            if latest is None or episode_of(obj) > episode_of(latest):
                latest = obj
        return latest

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
            except KeptChanging:
                raise  # the turn's own bound was hit: the sender retries (503), as every caller of a turn does
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
            target = latest
        else:
            fresh = without_replays(latest_status, alerts, now, self._window)  # no new episode from replays
            replays, alerts = len(alerts) - len(fresh), fresh
            if not any(a.firing for a in alerts):
                ALERTS_DEDUPLICATED.inc(replays)
                name = latest["metadata"]["name"] if latest else None
                return Persisted(key.namespace, name)
            episode = episode_of(latest) + 1 if latest else 1  # from the cluster's objects: every replica agrees
            body = new_incident(key, alerts, episode, latest)
            try:
                target = await self._kube.create(INCIDENT, key.namespace, body)
            except Conflict:
                await self._refresh(key, body["metadata"]["name"])
                return None
            created = True
        name = target["metadata"]["name"]
        alerts_concern = Alerts(
            alerts,
            created=created,
            window=self._window,
            auto_resolve=self._config.auto_resolve,
            recent_limit=self._config.recent_alerts,
            namespace=key.namespace,
        )
        turn = await self._turns.run((key.namespace, name), [alerts_concern], obj=target)
        if turn.gone or alerts_concern.refused:
            await self._refresh(key, name)  # deleted, or no longer taking alerts: decide again from fresh state
            return None
        if turn.gave_up or turn.written is None:
            raise KeptChanging(f"incident {key.namespace}/{name} kept changing; the alerts were not recorded, retry")
        updated = turn.written
        outcome = alerts_concern.outcome
        self._remember(key, updated)
        ALERTS_DEDUPLICATED.inc(outcome.duplicates + outcome.stale + replays)
        ALERTS_UNKNOWN_SEVERITY.inc(outcome.unknown_severity)
        if created:
            if not IncidentSpec.model_validate(target["spec"]).drill:
                INCIDENTS_CREATED.labels(target["spec"]["severity"]).inc()
            if latest is not None:
                await self._turns.run((key.namespace, latest["metadata"]["name"]), [Recurred(name)])
        if outcome.new_firing and not alerts_concern.initializing:
            log.debug("%d alerts joined incident %s/%s: %s", len(outcome.new_firing), key.namespace, name,
                      ", ".join(outcome.new_firing[:5]))  # fmt: skip
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
