"""Applying a batch of alerts to an Incident's status: pure, bounded, idempotent per dedup key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from incidentops.api.v1alpha1.common import Severity, format_time
from incidentops.api.v1alpha1.incident import (
    MAX_ACTIVE_ALERTS,
    MAX_ALERT_NAMES,
    MAX_RESOLVED_MEMORY,
    MAX_TIMELINE_NAMES,
    OPEN_STATES,
    AlertSummary,
    IncidentState,
    IncidentStatus,
    ResolvedOccurrence,
)
from incidentops.ingest.alerts import Alert
from incidentops.lifecycle.machine import append_timeline, transition
from incidentops.triage.signals import combine

COALESCE = timedelta(minutes=1)


@dataclass
class MergeOutcome:
    """What the batch did, for metrics, Events and the webhook's answer."""

    new_firing: list[str] = field(default_factory=list)
    duplicates: int = 0
    stale: int = 0
    resolved: list[str] = field(default_factory=list)
    auto_transition: IncidentState | None = None
    severity_raised: tuple[Severity, Severity] | None = None
    unknown_severity: int = 0


def _occurrence(key: str, starts_at: datetime) -> tuple[str, str]:
    """An occurrence compared as status stores it (millisecond timestamps), not as it arrived."""
    return key, format_time(starts_at)


def is_stale(alert: Alert, resolved: Mapping[tuple[str, str], object]) -> bool:
    """A 'firing' for an occurrence that already resolved: a late retry or an HA twin, not news.

    Alertmanager keeps startsAt for as long as one occurrence lasts, so a new occurrence of the
    same alert has a new startsAt and is not stale.
    """
    return alert.starts_at is not None and _occurrence(alert.dedup_key, alert.starts_at) in resolved


def without_replays(status: IncidentStatus, alerts: list[Alert], now: datetime, window: timedelta) -> list[Alert]:
    """The alerts, less the firing ones that replay occurrences this incident saw resolve.

    A responder may resolve an incident while its alerts still fire; the next deliveries of those
    same alerts are that incident's, not a new episode, for a correlation window after the
    resolution. An alert still firing after that opens the next episode: the problem persists.
    """
    resolved = {_occurrence(r.key, r.starts_at): r for r in status.alerts.resolved}
    lingering: set[str] = set()
    if (
        status.state == IncidentState.RESOLVED
        and status.resolved_by not in (None, "auto-resolve")
        and status.resolved_at is not None
        and now - status.resolved_at <= window
    ):
        lingering = set(status.alerts.active)
    return [a for a in alerts if not (a.firing and (is_stale(a, resolved) or a.dedup_key in lingering))]


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
    unknown = list(counts.unknown_severities)
    new_unknown: list[tuple[str, Severity]] = []
    worst: Severity | None = None
    active = dict.fromkeys(counts.active)
    names = list(counts.names)
    worst_signals = counts.signals
    recent = {r.fingerprint: r for r in counts.recent}
    resolved = {_occurrence(r.key, r.starts_at): r for r in counts.resolved}
    for alert in alerts:
        counts.deliveries += 1
        if alert.firing and is_stale(alert, resolved):
            outcome.stale += 1
            continue
        if alert.firing:
            began = alert.dedup_key not in active
            if not began:
                outcome.duplicates += 1
            elif len(active) >= MAX_ACTIVE_ALERTS:
                counts.untracked += 1
            else:
                active[alert.dedup_key] = None
            if began:
                counts.count += 1
                outcome.new_firing.append(alert.name)
                if alert.name not in names and len(names) < MAX_ALERT_NAMES:
                    names.append(alert.name)
                if worst is None or Severity(alert.severity) < worst:
                    worst = Severity(alert.severity)
                outcome.unknown_severity += 1 if alert.unknown_severity else 0
                if alert.unknown_severity and alert.unknown_severity not in unknown:
                    unknown.append(alert.unknown_severity)
                    new_unknown.append((alert.unknown_severity, Severity(alert.severity)))
            worst_signals = combine(worst_signals, alert.signals)
            started = min(alert.starts_at, now) if alert.starts_at else None  # a sender's clock may run ahead
            if started and (status.started_at is None or started < status.started_at):
                status = status.model_copy(update={"started_at": started})
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
    counts.names = names
    counts.signals = worst_signals
    counts.resolved = list(resolved.values())[-MAX_RESOLVED_MEMORY:]
    counts.firing = len(active) + counts.untracked
    counts.recent = list(recent.values())[-recent_limit:]
    counts.unknown_severities = unknown[-10:]
    counts.first_seen = counts.first_seen or now
    counts.last_seen = now
    status = status.model_copy(update={"alerts": counts})
    if status.detected_at is None:
        status = status.model_copy(update={"detected_at": now})
    if outcome.new_firing:
        status = _note_alerts(status, now, "AlertFiring", "firing", outcome.new_firing)
    for value, treated_as in new_unknown:
        status = append_timeline(status, now, "UnknownSeverity", f"unknown severity {value!r}, treated as {treated_as}")
    status, outcome.severity_raised = _raise_severity(status, worst, now)
    if outcome.resolved:
        status = _note_alerts(status, now, "AlertResolved", "resolved", outcome.resolved)
    if outcome.resolved and counts.firing == 0 and status.state in OPEN_STATES:
        target = IncidentState.RESOLVED if auto_resolve else IncidentState.MONITORING
        if target != status.state:
            status = transition(status, target, now=now, actor="auto-resolve", reason="every alert has resolved")
            outcome.auto_transition = target
    return status, outcome


def _raise_severity(
    status: IncidentStatus, worst: Severity | None, now: datetime
) -> tuple[IncidentStatus, tuple[Severity, Severity] | None]:
    """The incident is as severe as its worst alert, unless a human set its severity."""
    current = Severity(status.severity) if status.severity else None
    if worst is None or current is None or status.severity_source == "human" or worst >= current:
        return status, None
    raised = status.model_copy(update={"severity": worst})
    text = f"severity raised {current} → {worst}: a {worst} alert joined"
    return append_timeline(raised, now, "SeverityRaised", text), (current, worst)


def _note_alerts(status: IncidentStatus, now: datetime, type_: str, what: str, names: list[str]) -> IncidentStatus:
    """A timeline entry for alerts; in a storm, entries of the last minute fold into one.

    A folded entry stays true: `at` is the first event, `lastAt` the last, `count` every alert,
    `names` the distinct alert names (the first few; `moreNames` says when there were more).
    """
    last = status.timeline[-1] if status.timeline else None
    if last is not None and last.type == type_ and now - last.at <= COALESCE:
        count = (last.count or 1) + len(names)
        named = _named(what, count, [*last.names, *names], bool(last.more_names))
        folded = last.model_copy(update={"count": count, "last_at": now, **named})
        return status.model_copy(update={"timeline": [*status.timeline[:-1], folded]})
    status = append_timeline(status, now, type_, "")
    entry = status.timeline[-1].model_copy(
        update={"count": len(names) if len(names) > 1 else None, **_named(what, len(names), names, False)}
    )
    return status.model_copy(update={"timeline": [*status.timeline[:-1], entry]})


def _named(what: str, count: int, names: list[str], more: bool) -> dict[str, object]:
    """names, moreNames and the message of an alert entry."""
    distinct = sorted(set(names))
    more = more or len(distinct) > MAX_TIMELINE_NAMES
    kept = distinct[:MAX_TIMELINE_NAMES]
    shown = ", ".join(kept[:5])
    if more:
        shown += " and others"
    elif len(kept) > 5:
        shown += f" and {len(kept) - 5} more"
    noun = "alert" if count == 1 else "alerts"
    return {"names": kept, "more_names": more or None, "message": f"{count} {noun} {what}: {shown}"}
