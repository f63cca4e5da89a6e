"""Applying a batch of alerts to an Incident's status: pure, bounded, idempotent per dedup key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from incidentops.api.v1alpha1.common import format_time
from incidentops.api.v1alpha1.incident import (
    MAX_ACTIVE_ALERTS,
    MAX_RESOLVED_MEMORY,
    OPEN_STATES,
    AlertSummary,
    IncidentState,
    IncidentStatus,
    ResolvedOccurrence,
)
from incidentops.ingest.alerts import Alert
from incidentops.lifecycle.machine import append_timeline, transition

COALESCE = timedelta(minutes=1)


@dataclass
class MergeOutcome:
    """What the batch did, for metrics, Events and the webhook's answer."""

    new_firing: list[str] = field(default_factory=list)
    duplicates: int = 0
    stale: int = 0
    resolved: list[str] = field(default_factory=list)
    auto_transition: IncidentState | None = None


def _occurrence(key: str, starts_at: datetime) -> tuple[str, str]:
    """An occurrence compared as status stores it (millisecond timestamps), not as it arrived."""
    return key, format_time(starts_at)


def is_stale(alert: Alert, resolved: Mapping[tuple[str, str], object]) -> bool:
    """A 'firing' for an occurrence that already resolved: a late retry or an HA twin, not news.

    Alertmanager keeps startsAt for as long as one occurrence lasts, so a new occurrence of the
    same alert has a new startsAt and is not stale.
    """
    return alert.starts_at is not None and _occurrence(alert.dedup_key, alert.starts_at) in resolved


def without_replays(status: IncidentStatus, alerts: list[Alert]) -> list[Alert]:
    """The alerts, less the firing ones that replay occurrences this incident saw resolve."""
    resolved = {_occurrence(r.key, r.starts_at): r for r in status.alerts.resolved}
    return [a for a in alerts if not (a.firing and is_stale(a, resolved))]


def _summary(alert: Alert, now: datetime, common: dict[str, str]) -> AlertSummary:
    """The alert as kept in status: only the labels that set it apart from the incident's own."""
    return AlertSummary(
        fingerprint=alert.dedup_key,
        name=alert.name,
        status="firing" if alert.firing else "resolved",
        labels={k: v for k, v in alert.labels.items() if common.get(k) != v},
        summary=(alert.summary or "")[:1024] or None,
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        last_seen=now,
        generator_url=(alert.generator_url or "")[:2048] or None,
    )


def apply_alerts(
    status: IncidentStatus,
    alerts: list[Alert],
    *,
    now: datetime,
    auto_resolve: bool,
    recent_limit: int,
    common_labels: dict[str, str] | None = None,
) -> tuple[IncidentStatus, MergeOutcome]:
    """Fold alerts into the status; a firing alert already active is a duplicate, not a new alert."""
    outcome = MergeOutcome()
    counts = status.alerts.model_copy(deep=True)
    active = dict.fromkeys(counts.active)
    recent = {r.fingerprint: r for r in counts.recent}
    resolved = {_occurrence(r.key, r.starts_at): r for r in counts.resolved}
    for alert in alerts:
        counts.deliveries += 1
        if alert.firing and is_stale(alert, resolved):
            outcome.stale += 1
            continue
        if alert.firing:
            if alert.dedup_key in active:
                outcome.duplicates += 1
            elif len(active) >= MAX_ACTIVE_ALERTS:
                counts.untracked += 1
                counts.count += 1
                outcome.new_firing.append(alert.name)
            else:
                active[alert.dedup_key] = None
                counts.count += 1
                outcome.new_firing.append(alert.name)
            if alert.starts_at and (status.started_at is None or alert.starts_at < status.started_at):
                status = status.model_copy(update={"started_at": alert.starts_at})
        elif alert.dedup_key in active:
            del active[alert.dedup_key]
            outcome.resolved.append(alert.name)
            if alert.starts_at is not None:
                resolved[_occurrence(alert.dedup_key, alert.starts_at)] = ResolvedOccurrence(
                    key=alert.dedup_key, starts_at=alert.starts_at
                )
        recent.pop(alert.dedup_key, None)
        recent[alert.dedup_key] = _summary(alert, now, common_labels or {})
    counts.active = list(active)
    counts.resolved = list(resolved.values())[-MAX_RESOLVED_MEMORY:]
    counts.firing = len(active) + counts.untracked
    counts.recent = list(recent.values())[-recent_limit:]
    counts.first_seen = counts.first_seen or now
    counts.last_seen = now
    status = status.model_copy(update={"alerts": counts})
    if status.detected_at is None:
        status = status.model_copy(update={"detected_at": now})
    if outcome.new_firing:
        status = _note_alerts(status, now, "AlertFiring", "firing", outcome.new_firing)
    if outcome.resolved:
        status = _note_alerts(status, now, "AlertResolved", "resolved", outcome.resolved)
    if outcome.resolved and counts.firing == 0 and status.state in OPEN_STATES:
        target = IncidentState.RESOLVED if auto_resolve else IncidentState.MONITORING
        if target != status.state:
            status = transition(status, target, now=now, actor="auto-resolve", reason="every alert has resolved")
            outcome.auto_transition = target
    return status, outcome


def _note_alerts(status: IncidentStatus, now: datetime, type_: str, what: str, names: list[str]) -> IncidentStatus:
    """A timeline entry for alerts; in a storm, entries of the last minute fold into one."""
    last = status.timeline[-1] if status.timeline else None
    if last is not None and last.type == type_ and now - last.at <= COALESCE:
        count = (last.count or 1) + len(names)
        folded = last.model_copy(update={"count": count, "message": _describe(what, count, names)})
        return status.model_copy(update={"timeline": [*status.timeline[:-1], folded]})
    status = append_timeline(status, now, type_, _describe(what, len(names), names))
    if len(names) > 1:
        entries = status.timeline
        status = status.model_copy(
            update={"timeline": [*entries[:-1], entries[-1].model_copy(update={"count": len(names)})]}
        )
    return status


def _describe(what: str, count: int, latest: list[str]) -> str:
    distinct = sorted(set(latest))
    shown = ", ".join(distinct[:5]) + (f" and {len(distinct) - 5} more" if len(distinct) > 5 else "")
    noun = "alert" if count == 1 else "alerts"
    return f"{count} {noun} {what}: {shown}"
