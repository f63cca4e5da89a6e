"""What a remediation change means for the whole Incident: conditions, state, timeline. Pure.

The step engine decides about steps; this module folds its result into the Incident's status:
the Remediated condition follows the run's phase, the first action asks the lifecycle to move the
incident to Mitigating, a verified (or finished) run to Monitoring (where its state machine
allows), and a failed one raises Escalated so that a human takes over (escalation pages from that
condition).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from incidentops.api.v1alpha1.conditions import (
    ESCALATED,
    REMEDIATED,
    REMEDIATION_FAILED,
    ConditionStatus,
    set_condition,
)
from incidentops.api.v1alpha1.incident import (
    IncidentState,
    IncidentStatus,
    RemediationStatus,
    StepState,
)
from incidentops.concern import Move, Notice
from incidentops.lifecycle.machine import append_timeline

ACTOR = "incidentops"
_REMEDIATED: dict[str, tuple[ConditionStatus, str]] = {
    "NoRunbook": ("False", "NoRunbook"),
    "Running": ("False", "Running"),
    "AwaitingApproval": ("False", "AwaitingApproval"),
    "Verifying": ("False", "Verifying"),
    "Verified": ("True", "Verified"),
    "Done": ("True", "StepsSucceeded"),
    "Undoing": ("False", "Undoing"),
    "Stopped": ("False", "Stopped"),
    "Simulated": ("False", "Simulated"),
}


def _message(remediation: RemediationStatus) -> str:
    name = remediation.runbook or "no runbook"
    return f"{name}: {remediation.reason or remediation.phase}"[:1024]


def settle(
    status: IncidentStatus,
    remediation: RemediationStatus,
    notices: Sequence[Notice],
    now: datetime,
    *,
    escalate: bool = False,
    generation: int | None = None,
    announce: bool = True,
) -> tuple[IncidentStatus, list[Notice], list[Move]]:
    """The Incident's status with `remediation` in it, every notice humans should see, and the state moves asked.

    `announce=False` keeps a NoRunbook out of the timeline and Events (a namespace without any
    Runbook: the condition says so, the timeline stays the incident's story).
    """
    before = status.remediation
    shown = list(notices)
    updated = status.model_copy(update={"remediation": remediation})
    for notice in notices:
        updated = append_timeline(updated, now, notice.reason, notice.message, ACTOR)
    phase = remediation.phase or "NoRunbook"
    if before is None or before.phase != phase or before.reason != remediation.reason:
        cond_status: ConditionStatus
        if phase == "Failed":
            cond_status, reason = "False", remediation.failure or "Failed"
        else:
            cond_status, reason = _REMEDIATED.get(phase, ("False", phase))
        conditions = set_condition(
            updated.conditions, REMEDIATED, cond_status, reason, _message(remediation), now=now, generation=generation
        )
        updated = updated.model_copy(update={"conditions": conditions})
        ended = phase in ("NoRunbook", "Verified", "Done", "Failed", "Stopped", "Simulated")
        if (before is None or before.phase != phase) and ended and (announce or phase != "NoRunbook"):
            shown.append(Notice(f"Remediation{phase}", _message(remediation), phase in ("Failed", "NoRunbook")))
            updated = append_timeline(updated, now, f"Remediation{phase}", _message(remediation), ACTOR)
    already = any(c.type == ESCALATED and c.reason == REMEDIATION_FAILED for c in updated.conditions)
    if escalate and phase in ("Undoing", "Failed") and not already:
        # Page as soon as the run has failed, not once its undo is done: a stuck undo must not hide it.
        message = f"remediation failed ({remediation.failure}): a human must take over"
        conditions = set_condition(
            updated.conditions, ESCALATED, "True", REMEDIATION_FAILED, message, now=now, generation=generation
        )
        updated = append_timeline(
            updated.model_copy(update={"conditions": conditions}), now, "EscalationRequested", message, ACTOR
        )
        shown.append(Notice("EscalationRequested", message, True))
    return updated, shown, _moves(before, remediation)


# A run starting moves an incident to Mitigating only from before the work (not back from Monitoring).
BEFORE_WORK = frozenset(
    {IncidentState.DETECTED, IncidentState.ACKNOWLEDGED, IncidentState.INVESTIGATING, IncidentState.IDENTIFIED}
)


def _moves(before: RemediationStatus | None, after: RemediationStatus) -> list[Move]:
    """Mitigating when the first step acts; Monitoring once the run succeeded (the lifecycle decides if it may)."""
    acted_before = before is not None and any(s.started_at for s in before.steps if s.state != StepState.PENDING)
    acting = any(s.state == StepState.RUNNING for s in after.steps)
    if acting and not acted_before:
        return [Move(IncidentState.MITIGATING, f"runbook {after.runbook}: acting", ACTOR, BEFORE_WORK)]
    if after.phase in ("Verified", "Done") and (before is None or before.phase != after.phase):
        return [Move(IncidentState.MONITORING, f"runbook {after.runbook}: {str(after.phase).lower()}", ACTOR)]
    return []
