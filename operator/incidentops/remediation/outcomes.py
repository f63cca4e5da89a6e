"""What a remediation change means for the whole Incident: conditions, state, timeline. Pure.

The step engine decides about steps; this module folds its result into the Incident's status:
the Remediated condition follows the run's phase, the first action moves the incident to
Mitigating, a verified (or finished) run to Monitoring, and a failed one raises Escalated so
that a human takes over (the escalation engine pages from that condition).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from incidentops.api.v1alpha1.conditions import ConditionStatus, set_condition
from incidentops.api.v1alpha1.incident import (
    IncidentState,
    IncidentStatus,
    RemediationStatus,
    StepState,
)
from incidentops.lifecycle.machine import ALLOWED, append_timeline, transition
from incidentops.remediation.engine import Notice

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
) -> tuple[IncidentStatus, list[Notice]]:
    """The Incident's status with `remediation` in it, and every notice humans should see.

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
            updated.conditions, "Remediated", cond_status, reason, _message(remediation), now=now, generation=generation
        )
        updated = updated.model_copy(update={"conditions": conditions})
        ended = phase in ("NoRunbook", "Verified", "Done", "Failed", "Stopped", "Simulated")
        if (before is None or before.phase != phase) and ended and (announce or phase != "NoRunbook"):
            shown.append(Notice(f"Remediation{phase}", _message(remediation), phase in ("Failed", "NoRunbook")))
            updated = append_timeline(updated, now, f"Remediation{phase}", _message(remediation), ACTOR)
    already = any(c.type == "Escalated" and c.reason == "RemediationFailed" for c in updated.conditions)
    if escalate and phase in ("Undoing", "Failed") and not already:
        # Page as soon as the run has failed, not once its undo is done: a stuck undo must not hide it.
        message = f"remediation failed ({remediation.failure}): a human must take over"
        conditions = set_condition(
            updated.conditions, "Escalated", "True", "RemediationFailed", message, now=now, generation=generation
        )
        updated = append_timeline(
            updated.model_copy(update={"conditions": conditions}), now, "EscalationRequested", message, ACTOR
        )
        shown.append(Notice("EscalationRequested", message, True))
    updated = _move(updated, before, remediation, now, generation)
    return updated, shown


def _move(
    status: IncidentStatus,
    before: RemediationStatus | None,
    after: RemediationStatus,
    now: datetime,
    generation: int | None,
) -> IncidentStatus:
    """Mitigating when the first step acts; Monitoring once the run succeeded (where the state allows)."""
    acted_before = before is not None and any(s.started_at for s in before.steps if s.state != StepState.PENDING)
    acting = any(s.state == StepState.RUNNING for s in after.steps)
    target: IncidentState | None = None
    if (
        acting
        and not acted_before
        and status.state
        in (
            IncidentState.DETECTED,
            IncidentState.ACKNOWLEDGED,
            IncidentState.INVESTIGATING,
            IncidentState.IDENTIFIED,
        )
    ):
        target = IncidentState.MITIGATING
    elif after.phase in ("Verified", "Done") and (before is None or before.phase != after.phase):
        target = IncidentState.MONITORING
    if target is None or target == status.state or target not in ALLOWED[IncidentState(status.state)]:
        return status
    why = f"runbook {after.runbook}: " + ("acting" if target == IncidentState.MITIGATING else str(after.phase).lower())
    return transition(status, target, now=now, actor=ACTOR, reason=why, generation=generation)
