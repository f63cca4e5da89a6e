"""Mirroring human intents from spec into status: acknowledgement, resolution, assignee.

Idempotent: applying it twice to the same spec and status changes nothing the second time, so
the lifecycle concern can run it on every turn, and two operators cannot double-apply it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from incidentops.api.v1alpha1.conditions import find_condition, set_condition
from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentState, IncidentStatus, StateRequest
from incidentops.concern import Notice
from incidentops.lifecycle.machine import (
    IllegalTransitionError,
    acknowledge,
    append_timeline,
    initial_status,
    metrics_of,
    transition,
)


@dataclass(frozen=True)
class Reconciled:
    status: IncidentStatus
    notices: list[Notice]
    acknowledged: bool = False
    resolved: bool = False


def reconcile_intents(
    spec: IncidentSpec,
    status: IncidentStatus | None,
    *,
    now: datetime,
    generation: int | None,
    close_refusal: str | None = None,
) -> Reconciled:
    """The status after applying what humans wrote in spec."""
    notices: list[Notice] = []
    acknowledged = resolved = False
    if status is None or status.detected_at is None:
        status = initial_status(now, how=f"declared from {spec.source or 'a manifest'}: {spec.title}")
        status = status.model_copy(update={"severity_source": "alerts" if spec.dedup_key else "human"})
        notices.append(Notice("Detected", f"{spec.severity} incident opened: {spec.title}"))
    status = _severity_in_step(spec, status, now, notices)
    ack = spec.acknowledgement
    if ack is not None and status.acknowledged_at is None:
        try:
            status = acknowledge(status, by=ack.by, now=intent_time(ack.at, status, now), generation=generation)
            acknowledged = True
            notices.append(Notice("Acknowledged", f"acknowledged by {ack.by}"))
        except IllegalTransitionError as error:
            cond = find_condition(status.conditions, "Acknowledged")
            if cond is None or cond.reason != "AcknowledgedTooLate":
                status = status.model_copy(
                    update={
                        "conditions": set_condition(
                            status.conditions,
                            "Acknowledged",
                            "False",
                            "AcknowledgedTooLate",
                            str(error),
                            now=now,
                            generation=generation,
                        )
                    }
                )
                notices.append(Notice("AcknowledgementIgnored", str(error), warning=True))
    res = spec.resolution
    if res is not None and status.state not in (IncidentState.RESOLVED, IncidentState.CLOSED):
        firing = status.alerts.firing
        reason = _resolution_text(res.summary, res.root_cause)
        if firing:
            still = f"{firing} alert{'s' if firing != 1 else ''} still firing"
            reason = f"{reason}; {still}" if reason else still
            notices.append(Notice("ResolvedWhileFiring", f"resolved by {res.by} while {still}", warning=True))
        status = transition(
            status,
            IncidentState.RESOLVED,
            now=intent_time(res.at, status, now),
            actor=res.by,
            reason=reason,
            generation=generation,
        )
        resolved = True
        notices.append(Notice("Resolved", f"resolved by {res.by}" + (f": {res.summary}" if res.summary else "")))
    elif res is not None and status.resolved_by == "auto-resolve":
        status = append_timeline(
            status.model_copy(update={"resolved_by": res.by}),
            now,
            "ResolutionRecorded",
            f"resolution recorded by {res.by}"
            + (f": {_resolution_text(res.summary, res.root_cause)}" if res.summary or res.root_cause else ""),
            res.by,
        )
        notices.append(Notice("ResolutionRecorded", f"resolution recorded by {res.by}"))
    if spec.requested_state is not None:
        status = _requested_state(spec.requested_state, status, now, notices, generation, close_refusal)
    if spec.assignee != status.assignee:
        text = f"assigned to {spec.assignee}" if spec.assignee else "unassigned"
        status = append_timeline(status.model_copy(update={"assignee": spec.assignee}), now, "Assigned", text)
        notices.append(Notice("Assigned", text))
    status = _notes(spec, status, now)
    status = status.model_copy(update={"observed_generation": generation, "metrics": metrics_of(status)})
    return Reconciled(status, notices, acknowledged, resolved)


def intent_time(written: datetime | None, status: IncidentStatus, now: datetime) -> datetime:
    """When the human acted: the time they wrote, never before detection nor after now.

    An acknowledgement written while the operator was down counts from when it was written, so
    time to acknowledge does not include the operator's downtime.
    """
    if written is None:
        return now
    if status.detected_at is not None and written < status.detected_at:
        return status.detected_at
    return min(written, now)


def _severity_in_step(
    spec: IncidentSpec, status: IncidentStatus, now: datetime, notices: list[Notice]
) -> IncidentStatus:
    """A human's choice of severity (a change of spec.severity, or spec.severitySet) wins over the alerts'."""
    if status.spec_severity is None or status.severity is None:
        return status.model_copy(
            update={
                "spec_severity": spec.severity,
                "severity": status.severity or spec.severity,
                "severity_source": status.severity_source or "alerts",
                "severity_set_seen": spec.severity_set.at if spec.severity_set else None,
            }
        )
    chosen = spec.severity_set
    new_choice = chosen is not None and chosen.at != status.severity_set_seen
    if spec.severity == status.spec_severity and not new_choice:
        return status
    by = f" by {chosen.by}" if new_choice and chosen else " in spec"
    text = f"severity set to {spec.severity}{by} (was {status.severity}); alerts no longer change it"
    notices.append(Notice("SeverityChanged", text))
    changed = status.model_copy(
        update={
            "spec_severity": spec.severity,
            "severity": spec.severity,
            "severity_source": "human",
            "severity_set_seen": chosen.at if chosen else status.severity_set_seen,
        }
    )
    return append_timeline(changed, now, "SeverityChanged", text, chosen.by if new_choice and chosen else None)


def _request_key(request: StateRequest) -> str:
    at = request.at.isoformat() if request.at else ""
    return f"{request.state}|{request.by}|{at}"


def _requested_state(
    request: StateRequest,
    status: IncidentStatus,
    now: datetime,
    notices: list[Notice],
    generation: int | None,
    close_refusal: str | None = None,
) -> IncidentStatus:
    """Apply a responder's state change once; an illegal one is refused visibly, not retried forever."""
    key = _request_key(request)
    if status.state_request_seen == key:
        return status
    status = status.model_copy(update={"state_request_seen": key})
    target = IncidentState(request.state)
    if status.state == target:
        return status
    if target == IncidentState.CLOSED and close_refusal and status.state == IncidentState.RESOLVED:
        text = f"{request.by} asked for {target}: {close_refusal}"
        notices.append(Notice("StateChangeRefused", text, warning=True))
        return append_timeline(status, now, "StateChangeRefused", text, request.by)
    try:
        moved = transition(
            status, target, now=intent_time(request.at, status, now), actor=request.by, generation=generation
        )
    except IllegalTransitionError as error:
        text = f"{request.by} asked for {target}: {error}"
        notices.append(Notice("StateChangeRefused", text, warning=True))
        return append_timeline(status, now, "StateChangeRefused", text, request.by)
    notices.append(Notice(str(target), f"{status.state} → {target} by {request.by}"))
    return moved


def _notes(spec: IncidentSpec, status: IncidentStatus, now: datetime) -> IncidentStatus:
    """Copy responders' new notes into the timeline, once each."""
    seen = min(status.notes_seen, len(spec.notes))
    for note in spec.notes[seen:]:
        status = append_timeline(status, intent_time(note.at, status, now), "Note", note.text, note.by)
    return status.model_copy(update={"notes_seen": len(spec.notes)})


def _resolution_text(summary: str, root_cause: str) -> str:
    parts = [summary.strip()] if summary.strip() else []
    if root_cause.strip():
        parts.append(f"root cause: {root_cause.strip()}")
    return "; ".join(parts)
