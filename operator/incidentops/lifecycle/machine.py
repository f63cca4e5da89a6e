"""The incident state machine: legal transitions, timestamps, metrics, conditions, timeline.

Pure functions over IncidentStatus with the time passed in, so every rule is unit-tested
without a cluster or a clock.
"""

from __future__ import annotations

from datetime import datetime

from incidentops.api.v1alpha1.conditions import Condition, set_condition
from incidentops.api.v1alpha1.incident import IncidentMetrics, IncidentState, IncidentStatus
from incidentops.concern import append_timeline

__all__ = ["append_timeline"]  # kept here too: it is where the lifecycle's callers look for it

S = IncidentState
_WORKING = {S.INVESTIGATING, S.IDENTIFIED, S.MITIGATING, S.MONITORING}
ALLOWED: dict[IncidentState, frozenset[IncidentState]] = {
    S.DETECTED: frozenset({S.ACKNOWLEDGED, *_WORKING, S.RESOLVED}),
    S.ACKNOWLEDGED: frozenset({*_WORKING, S.RESOLVED}),
    S.INVESTIGATING: frozenset({S.IDENTIFIED, S.MITIGATING, S.MONITORING, S.RESOLVED}),
    S.IDENTIFIED: frozenset({S.INVESTIGATING, S.MITIGATING, S.MONITORING, S.RESOLVED}),
    S.MITIGATING: frozenset({S.INVESTIGATING, S.IDENTIFIED, S.MONITORING, S.RESOLVED}),
    S.MONITORING: frozenset({S.INVESTIGATING, S.MITIGATING, S.RESOLVED}),
    S.RESOLVED: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
}
_REASON = {
    S.ACKNOWLEDGED: "Acknowledged",
    S.INVESTIGATING: "Investigating",
    S.IDENTIFIED: "Identified",
    S.MITIGATING: "Mitigating",
    S.MONITORING: "Monitoring",
    S.RESOLVED: "Resolved",
    S.CLOSED: "Closed",
}


class IllegalTransitionError(ValueError):
    """The transition is not allowed from the current state; the message says why."""


def check(current: IncidentState, target: IncidentState) -> None:
    """Raise IllegalTransitionError unless current → target is allowed."""
    if target not in ALLOWED[IncidentState(current)]:
        allowed = ", ".join(sorted(ALLOWED[IncidentState(current)])) or "nothing (it is final)"
        raise IllegalTransitionError(f"cannot move from {current} to {target}; from {current} it can go to {allowed}")


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, round((end - start).total_seconds(), 3))


def metrics_of(status: IncidentStatus) -> IncidentMetrics:
    """Durations from detection (and from the alert's own start, for time to detect)."""
    return IncidentMetrics(
        time_to_detect_seconds=_seconds(status.started_at, status.detected_at),
        time_to_acknowledge_seconds=_seconds(status.detected_at, status.acknowledged_at),
        time_to_mitigate_seconds=_seconds(status.detected_at, status.mitigated_at),
        time_to_resolve_seconds=_seconds(status.detected_at, status.resolved_at),
    )


def _acknowledged(conditions: list[Condition], by: str, now: datetime, generation: int | None) -> list[Condition]:
    return set_condition(
        conditions,
        "Acknowledged",
        "True",
        "AcknowledgedByResponder",
        f"acknowledged by {by}",
        now=now,
        generation=generation,
    )


def transition(
    status: IncidentStatus,
    target: IncidentState,
    *,
    now: datetime,
    actor: str,
    reason: str = "",
    generation: int | None = None,
) -> IncidentStatus:
    """Move to `target`, stamping its timestamp, conditions, metrics and a timeline entry."""
    check(status.state, target)
    update: dict[str, object] = {"state": target}
    conditions = status.conditions
    if target == S.ACKNOWLEDGED:
        update.update(acknowledged_at=now, acknowledged_by=actor)
        conditions = _acknowledged(conditions, actor, now, generation)
    if target == S.IDENTIFIED and status.identified_at is None:
        update["identified_at"] = now
    if target in (S.MONITORING, S.RESOLVED) and status.mitigated_at is None:
        update["mitigated_at"] = now
    if target == S.RESOLVED:
        update.update(resolved_at=now, resolved_by=actor)
        conditions = set_condition(
            conditions,
            "Resolved",
            "True",
            "ResolvedByResponder" if actor != "auto-resolve" else "AlertsResolved",
            reason or f"resolved by {actor}",
            now=now,
            generation=generation,
        )
    if target == S.CLOSED:
        update["closed_at"] = now
    update["conditions"] = conditions
    moved = status.model_copy(update=update)
    moved = moved.model_copy(update={"metrics": metrics_of(moved)})
    message = f"{status.state} → {target}" + (f": {reason}" if reason else "")
    return append_timeline(moved, now, _REASON[target], message, actor)


def acknowledge(status: IncidentStatus, *, by: str, now: datetime, generation: int | None = None) -> IncidentStatus:
    """Record an acknowledgement; from Detected it also moves the state, later it only records it."""
    if status.acknowledged_at is not None:
        return status
    if status.state in (S.RESOLVED, S.CLOSED):
        raise IllegalTransitionError(f"the incident is already {status.state}; there is nothing to acknowledge")
    if status.state == S.DETECTED:
        return transition(status, S.ACKNOWLEDGED, now=now, actor=by, generation=generation)
    recorded = status.model_copy(
        update={
            "acknowledged_at": now,
            "acknowledged_by": by,
            "conditions": _acknowledged(status.conditions, by, now, generation),
        }
    )
    recorded = recorded.model_copy(update={"metrics": metrics_of(recorded)})
    return append_timeline(recorded, now, "Acknowledged", f"acknowledged by {by} while {status.state}", by)


def initial_status(now: datetime, *, how: str) -> IncidentStatus:
    """A fresh status: Detected, with the conditions present and False so `kubectl wait` works."""
    conditions = set_condition(
        [], "Acknowledged", "False", "AwaitingAcknowledgement", "nobody has acknowledged yet", now=now
    )
    conditions = set_condition(conditions, "Resolved", "False", "Open", "the incident is open", now=now)
    status = IncidentStatus(state=S.DETECTED, detected_at=now, conditions=conditions)
    return append_timeline(status, now, "Detected", how)
