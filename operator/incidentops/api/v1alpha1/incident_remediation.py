"""An Incident's remediation part of status: the runbook's run, step by step, and its verification."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from incidentops.api.v1alpha1.common import StatusModel, Timestamp


class StepState(StrEnum):
    """Where a remediation step stands."""

    PENDING = "Pending"
    AWAITING_APPROVAL = "AwaitingApproval"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    ROLLED_BACK = "RolledBack"


class RemediationStepStatus(StatusModel):
    """One runbook step's progress; the intent is recorded before acting."""

    name: Annotated[str, Field(max_length=63, description="The step's name in the Runbook, e.g. rollback.")]
    action: Annotated[
        str,
        Field(
            max_length=63,
            description="The step's action: scale, restart, rollback, delete-pod, cordon, wait-rollout, "
            "promql-check, http or notify.",
        ),
    ]
    state: Annotated[
        StepState,
        Field(
            description="Pending, AwaitingApproval (until an entry in spec.approvals names the step), Running, "
            "Succeeded, Failed, Skipped or RolledBack (succeeded, then undone after a later failure)."
        ),
    ]
    idempotency_key: Annotated[
        str | None,
        Field(
            max_length=253,
            description="A key recorded before the action runs, so that after a restart the operator checks "
            "whether it already happened instead of doing it twice.",
        ),
    ] = None
    started_at: Annotated[Timestamp | None, Field(description="When the step started running.")] = None
    finished_at: Annotated[
        Timestamp | None, Field(description="When the step ended: succeeded, failed or was skipped.")
    ] = None
    output: Annotated[
        str | None, Field(max_length=4096, description="What the action reported: its result, or the error.")
    ] = None
    dry_run_diff: Annotated[
        str | None,
        Field(max_length=8192, description="What the step changes (or would change), from a server-side dry run."),
    ] = None
    reason: Annotated[
        str | None,
        Field(
            max_length=63,
            description="Why the step is where it is, as a CamelCase reason: NotAutomatic, Cooldown, "
            "HPAOwnsReplicas, Timeout, ...",
        ),
    ] = None
    attempt: Annotated[int, Field(ge=0, description="How many times the step was started (part of its key).")] = 0
    approved_by: Annotated[
        str | None, Field(max_length=253, description="Who approved the step (from spec.approvals).")
    ] = None
    before: Annotated[
        dict[str, Annotated[str, Field(max_length=256)]],
        Field(description="What the step replaced (replica count, revision, template hash), to undo it."),
    ] = {}
    target: Annotated[
        str | None,
        Field(max_length=512, description="What the step acts on, e.g. shop/Deployment/checkout."),
    ] = None
    automatic: Annotated[
        bool | None,
        Field(description="True when the step ran without an approval (it counts against the storm budget)."),
    ] = None


RemediationPhase = Literal[
    "NoRunbook",
    "Running",
    "AwaitingApproval",
    "Verifying",
    "Verified",
    "Done",
    "Undoing",
    "Failed",
    "Stopped",
    "Simulated",
]


class VerificationProgress(StatusModel):
    """Where the verify query stands: deadlines as timestamps, so a restart continues on time."""

    started_at: Annotated[Timestamp, Field(description="When verification began (after the last step).")]
    clear_since: Annotated[
        Timestamp | None,
        Field(description="Since when the query has returned no series without a break; left out while it fires."),
    ] = None
    checked_at: Annotated[Timestamp | None, Field(description="When the query was last evaluated.")] = None
    last_result: Annotated[
        str | None,
        Field(max_length=1024, description="What the last evaluation said: the series still firing, or the error."),
    ] = None
    finished_at: Annotated[Timestamp | None, Field(description="When verification passed or failed.")] = None


class RemediationStatus(StatusModel):
    """Progress of the runbook chosen for this incident."""

    runbook: Annotated[
        str | None, Field(max_length=253, description="The Runbook (in this namespace) run for the incident.")
    ] = None
    steps: Annotated[
        list[RemediationStepStatus],
        Field(max_length=20, description="Each step's progress, in the Runbook's order."),
    ] = []
    verified: Annotated[
        bool | None,
        Field(
            description="Whether the Runbook's verify query cleared within its window after the steps ran (false: "
            "it did not). Left out until verification has run."
        ),
    ] = None
    phase: Annotated[
        RemediationPhase | None,
        Field(
            description="Where remediation stands as a whole (the Remediation column): NoRunbook, Running, "
            "AwaitingApproval, Verifying, Verified, Done (no verify query), Undoing (undoing its changes after a "
            "failure), Failed, Stopped (the incident ended before the run did) or Simulated (a rehearsal: every "
            "step's plan and guards recorded, nothing changed)."
        ),
    ] = None
    reason: Annotated[
        str | None, Field(max_length=1024, description="Why: the runbook chosen and why, or why none applies.")
    ] = None
    failure: Annotated[
        str | None,
        Field(
            max_length=63,
            description="Why the run failed, as a CamelCase reason (StepFailed, VerificationFailed, ...); kept "
            "while its changes are undone.",
        ),
    ] = None
    chosen_at: Annotated[Timestamp | None, Field(description="When the runbook was chosen.")] = None
    runbook_generation: Annotated[
        int | None,
        Field(
            ge=0,
            description="The Runbook's metadata.generation when it was chosen: a run whose Runbook changes "
            "underneath it stops (RunbookChanged) rather than mix two versions.",
        ),
    ] = None
    confidence: Annotated[
        float | None,
        Field(ge=0, le=1, description="The triage confidence the guards compared with the runbook's minConfidence."),
    ] = None
    verification: Annotated[
        VerificationProgress | None,
        Field(description="Progress of the runbook's verify query, once every step has run."),
    ] = None
