"""Incident: one episode of something being wrong, from first alert to postmortem.

spec is written by the ingester at creation and afterwards only by humans (acknowledge, resolve,
approve, assign); status is the operator's alone.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from incidentops.api.v1alpha1.common import (
    Category,
    LabelMap,
    LocalObjectReference,
    Model,
    Severity,
    StatusModel,
    Timestamp,
    WorkloadReference,
)
from incidentops.api.v1alpha1.conditions import Condition

SEVERITY_LABEL = "incidentops.dev/severity"
MAX_TIMELINE = 100
MAX_RECENT_ALERTS = 10
MAX_ACTIVE_ALERTS = 5000
MAX_RESOLVED_MEMORY = 200
MAX_NOTES = 50
MAX_TIMELINE_NAMES = 10


class IncidentState(StrEnum):
    """Where an incident stands in its lifecycle (REQUIREMENTS.md: Lifecycle)."""

    DETECTED = "Detected"
    ACKNOWLEDGED = "Acknowledged"
    INVESTIGATING = "Investigating"
    IDENTIFIED = "Identified"
    MITIGATING = "Mitigating"
    MONITORING = "Monitoring"
    RESOLVED = "Resolved"
    CLOSED = "Closed"


OPEN_STATES = frozenset(
    {
        IncidentState.DETECTED,
        IncidentState.ACKNOWLEDGED,
        IncidentState.INVESTIGATING,
        IncidentState.IDENTIFIED,
        IncidentState.MITIGATING,
        IncidentState.MONITORING,
    }
)

Actor = Annotated[str, Field(min_length=1, max_length=253)]


class Acknowledgement(Model):
    """A responder takes the incident; stops escalation."""

    by: Actor
    at: Timestamp | None = None


class Resolution(Model):
    """A responder declares the incident over."""

    by: Actor
    at: Timestamp | None = None
    summary: Annotated[str, Field(max_length=4096)] = ""
    root_cause: Annotated[str, Field(max_length=4096)] = ""


class Approval(Model):
    """A responder approves one remediation step that requires it."""

    step: Annotated[str, Field(min_length=1, max_length=63)]
    by: Actor
    at: Timestamp | None = None


RequestableState = Literal["Investigating", "Identified", "Mitigating", "Monitoring", "Closed"]


class StateRequest(Model):
    """A responder moves the incident along its lifecycle; the operator checks the move is legal."""

    state: Annotated[
        RequestableState,
        Field(description="Investigating, Identified, Mitigating, Monitoring, or Closed (only once Resolved)."),
    ]
    by: Annotated[Actor, Field(description="Who asks for the change.")]
    at: Annotated[Timestamp | None, Field(description="When they asked; also tells two requests apart.")] = None


class Note(Model):
    """A responder's note, copied into the timeline."""

    by: Annotated[Actor, Field(description="Who wrote the note.")]
    at: Annotated[Timestamp | None, Field(description="When it was written.")] = None
    text: Annotated[str, Field(min_length=1, max_length=1024, description="The note itself (plain text).")]


class IncidentSpec(Model):
    """What the incident is about, and what humans decided about it."""

    title: Annotated[str, Field(min_length=1, max_length=512)]
    severity: Severity
    category: Category | None = None
    service: Annotated[str | None, Field(max_length=253)] = None
    summary: Annotated[str | None, Field(max_length=4096)] = None
    source: Annotated[str | None, Field(max_length=63, description="Where the first alert came from.")] = None
    affected_workloads: Annotated[list[WorkloadReference], Field(max_length=50)] = []
    dedup_key: Annotated[str | None, Field(max_length=256)] = None
    correlation_key: Annotated[str | None, Field(max_length=1024)] = None
    labels: Annotated[LabelMap | None, Field(description="Labels common to the incident's alerts.")] = None
    previous_incident: Annotated[
        str | None, Field(max_length=253, description="The earlier episode this one recurs after.")
    ] = None
    escalation_policy_ref: LocalObjectReference | None = None
    runbook_ref: LocalObjectReference | None = None
    acknowledgement: Acknowledgement | None = None
    resolution: Resolution | None = None
    approvals: Annotated[list[Approval], Field(max_length=50)] = []
    assignee: Annotated[str | None, Field(max_length=253)] = None
    requested_state: Annotated[
        StateRequest | None,
        Field(description="The lifecycle state a responder asks for (kubectl incident update --state, close)."),
    ] = None
    notes: Annotated[
        list[Note], Field(max_length=MAX_NOTES, description="Responders' notes (kubectl incident note), oldest first.")
    ] = []


class AlertSummary(StatusModel):
    """One alert as last seen; the incident keeps only the most recent few."""

    fingerprint: Annotated[str, Field(max_length=256)]
    name: Annotated[str, Field(max_length=253)]
    status: Literal["firing", "resolved"]
    labels: Annotated[LabelMap, Field(description="Labels beyond the incident's spec.labels.")] = {}
    summary: Annotated[str | None, Field(max_length=1024)] = None
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    last_seen: Timestamp
    generator_url: Annotated[str | None, Field(max_length=2048)] = None


class ResolvedOccurrence(StatusModel):
    """An alert occurrence that resolved; a later 'firing' for the same occurrence is a stale replay."""

    key: Annotated[str, Field(max_length=256)]
    starts_at: Timestamp


class AlertsStatus(StatusModel):
    """Alert bookkeeping, bounded in size whatever the storm."""

    count: Annotated[int, Field(ge=0, description="Times an alert began firing in this incident.")] = 0
    firing: Annotated[int, Field(ge=0)] = 0
    deliveries: Annotated[int, Field(ge=0, description="Notifications received, duplicates included.")] = 0
    first_seen: Timestamp | None = None
    last_seen: Timestamp | None = None
    active: Annotated[
        list[str], Field(max_length=MAX_ACTIVE_ALERTS, description="Dedup keys of the alerts still firing.")
    ] = []
    untracked: Annotated[
        int, Field(ge=0, description="Firing alerts beyond the tracking bound; they block auto-resolve.")
    ] = 0
    recent: Annotated[list[AlertSummary], Field(max_length=MAX_RECENT_ALERTS)] = []
    unknown_severities: Annotated[
        list[Annotated[str, Field(max_length=64)]],
        Field(max_length=10, description="Severity values the alerts carried that the severity map does not know."),
    ] = []
    resolved: Annotated[
        list[ResolvedOccurrence],
        Field(max_length=MAX_RESOLVED_MEMORY, description="Recently resolved occurrences, to spot stale replays."),
    ] = []


class TimelineEntry(StatusModel):
    """Something that happened, for `kubectl describe` and the postmortem."""

    at: Timestamp
    type: Annotated[str, Field(max_length=63)]
    message: Annotated[str, Field(max_length=2048)]
    actor: Annotated[str | None, Field(max_length=253)] = None
    count: Annotated[int | None, Field(ge=1, description="Events of this kind folded into the entry.")] = None
    last_at: Annotated[
        Timestamp | None, Field(description="When the last event folded into this entry happened (at is the first).")
    ] = None
    names: Annotated[
        list[Annotated[str, Field(max_length=253)]],
        Field(max_length=MAX_TIMELINE_NAMES, description="The distinct alert names folded into this entry."),
    ] = []


class TriageResult(StatusModel):
    """How the incident was classified, by rules or by an LLM, and why."""

    severity: Severity | None = None
    category: Category | None = None
    runbook: Annotated[str | None, Field(max_length=253)] = None
    confidence: Annotated[float | None, Field(ge=0, le=1)] = None
    reasoning: Annotated[str | None, Field(max_length=8192)] = None
    source: Literal["rules", "llm"] | None = None
    at: Timestamp | None = None


class NotificationDelivery(StatusModel):
    """One notification to one channel, delivered or visibly failed."""

    level: Annotated[int, Field(ge=0)]
    channel: Annotated[str, Field(max_length=253)]
    idempotency_key: Annotated[str, Field(max_length=253)]
    state: Literal["Pending", "Delivered", "Failed"]
    attempts: Annotated[int, Field(ge=0)] = 0
    at: Timestamp | None = None
    message: Annotated[str | None, Field(max_length=1024)] = None


class EscalationStatus(StatusModel):
    """Escalation progress; deadlines are timestamps so they survive restarts."""

    policy: Annotated[str | None, Field(max_length=253)] = None
    level: Annotated[int, Field(ge=0)] = 0
    repeats: Annotated[int, Field(ge=0)] = 0
    next_escalation_at: Timestamp | None = None
    deliveries: Annotated[list[NotificationDelivery], Field(max_length=100)] = []


class StepState(StrEnum):
    """Where a remediation step stands."""

    PENDING = "Pending"
    AWAITING_APPROVAL = "AwaitingApproval"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"


class RemediationStepStatus(StatusModel):
    """One runbook step's progress; the intent is recorded before acting."""

    name: Annotated[str, Field(max_length=63)]
    action: Annotated[str, Field(max_length=63)]
    state: StepState
    idempotency_key: Annotated[str | None, Field(max_length=253)] = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    output: Annotated[str | None, Field(max_length=4096)] = None
    dry_run_diff: Annotated[str | None, Field(max_length=8192)] = None


class RemediationStatus(StatusModel):
    """Progress of the runbook chosen for this incident."""

    runbook: Annotated[str | None, Field(max_length=253)] = None
    steps: Annotated[list[RemediationStepStatus], Field(max_length=20)] = []
    verified: bool | None = None


class IncidentMetrics(StatusModel):
    """Durations derived from the lifecycle timestamps (MTTD/MTTA/MTTM/MTTR fall out of these)."""

    time_to_detect_seconds: Annotated[float | None, Field(ge=0)] = None
    time_to_acknowledge_seconds: Annotated[float | None, Field(ge=0)] = None
    time_to_mitigate_seconds: Annotated[float | None, Field(ge=0)] = None
    time_to_resolve_seconds: Annotated[float | None, Field(ge=0)] = None


class IncidentStatus(StatusModel):
    """Everything the operator knows about the incident."""

    state: IncidentState = IncidentState.DETECTED
    severity: Annotated[
        Severity | None,
        Field(description="The current severity: the worst of the alerts' unless a human set spec.severity."),
    ] = None
    severity_source: Annotated[
        Literal["alerts", "human"] | None,
        Field(description="alerts: follows the worst alert; human: set in spec, alerts no longer change it."),
    ] = None
    spec_severity: Annotated[
        Severity | None, Field(description="spec.severity as last seen, to tell a human's change apart.")
    ] = None
    state_request_seen: Annotated[
        str | None, Field(max_length=600, description="The spec.requestedState last acted on.")
    ] = None
    notes_seen: Annotated[int, Field(ge=0, description="How many of spec.notes are in the timeline.")] = 0
    observed_generation: Annotated[int | None, Field(ge=0)] = None
    conditions: Annotated[list[Condition], Field(max_length=16)] = []
    alerts: AlertsStatus = AlertsStatus()
    started_at: Timestamp | None = Field(default=None, description="When the first alert began firing.")
    detected_at: Timestamp | None = None
    acknowledged_at: Timestamp | None = None
    acknowledged_by: Annotated[str | None, Field(max_length=253)] = None
    identified_at: Timestamp | None = None
    mitigated_at: Timestamp | None = None
    resolved_at: Timestamp | None = None
    resolved_by: Annotated[str | None, Field(max_length=253)] = None
    closed_at: Timestamp | None = None
    assignee: Annotated[str | None, Field(max_length=253)] = None
    triage: TriageResult | None = None
    escalation: EscalationStatus | None = None
    remediation: RemediationStatus | None = None
    metrics: IncidentMetrics = IncidentMetrics()
    timeline: Annotated[list[TimelineEntry], Field(max_length=MAX_TIMELINE)] = []
    postmortem_ref: Annotated[str | None, Field(max_length=253)] = None
    recurred_as: Annotated[
        str | None, Field(max_length=253, description="The later episode opened when this alert fired again.")
    ] = None


def current_severity(spec: IncidentSpec, status: IncidentStatus | None) -> Severity:
    """What the incident's severity is now (status), falling back to spec before the operator has seen it."""
    return Severity(status.severity if status is not None and status.severity else spec.severity)
