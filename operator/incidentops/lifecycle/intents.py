"""Mirroring human intents from spec into status: acknowledgement, resolution, assignee.

Idempotent: applying it twice to the same spec and status changes nothing the second time, so
the handler can run it on every create, update and resume, and two operators cannot double-apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from incidentops.api.v1alpha1.conditions import find_condition, set_condition
from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentState, IncidentStatus
from incidentops.lifecycle.machine import (
    IllegalTransitionError,
    acknowledge,
    append_timeline,
    initial_status,
    metrics_of,
    transition,
)


@dataclass(frozen=True)
class Notice:
    """Something to tell humans as a Kubernetes Event."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Reconciled:
    status: IncidentStatus
    notices: list[Notice]
    acknowledged: bool = False
    resolved: bool = False


def reconcile_intents(
    spec: IncidentSpec, status: IncidentStatus | None, *, now: datetime, generation: int | None
) -> Reconciled:
    """The status after applying what humans wrote in spec."""
    notices: list[Notice] = []
    acknowledged = resolved = False
    if status is None or status.detected_at is None:
        status = initial_status(now, how=f"declared from {spec.source or 'a manifest'}: {spec.title}")
        notices.append(Notice("Detected", f"{spec.severity} incident opened: {spec.title}"))
    ack = spec.acknowledgement
    if ack is not None and status.acknowledged_at is None:
        try:
            status = acknowledge(status, by=ack.by, now=now, generation=generation)
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
        status = transition(
            status,
            IncidentState.RESOLVED,
            now=now,
            actor=res.by,
            reason=_resolution_text(res.summary, res.root_cause),
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
    if spec.assignee != status.assignee:
        text = f"assigned to {spec.assignee}" if spec.assignee else "unassigned"
        status = append_timeline(status.model_copy(update={"assignee": spec.assignee}), now, "Assigned", text)
        notices.append(Notice("Assigned", text))
    status = status.model_copy(update={"observed_generation": generation, "metrics": metrics_of(status)})
    return Reconciled(status, notices, acknowledged, resolved)


def _resolution_text(summary: str, root_cause: str) -> str:
    parts = [summary.strip()] if summary.strip() else []
    if root_cause.strip():
        parts.append(f"root cause: {root_cause.strip()}")
    return "; ".join(parts)
