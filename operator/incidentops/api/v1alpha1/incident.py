"""Incident: one episode of something being wrong, from first alert to postmortem.

spec is written by the ingester at creation and afterwards only by humans (acknowledge, resolve,
approve, assign); status is the operator's alone.

Each concern's part of status has its own module (incident_alerts, incident_triage, ...); this one
keeps the top level, whose length is field descriptions: they are what `kubectl explain` shows.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from incidentops.api.v1alpha1.common import (
    SEVERITY_LEVELS,
    Category,
    LabelMap,
    LocalObjectReference,
    Model,
    Severity,
    StatusModel,
    Timestamp,
    WorkloadReference,
    severity_aliases,
)
from incidentops.api.v1alpha1.conditions import Condition
from incidentops.api.v1alpha1.incident_alerts import (
    MAX_ACTIVE_ALERTS,
    MAX_ALERT_NAMES,
    MAX_RECENT_ALERTS,
    MAX_RESOLVED_MEMORY,
    AlertSignals,
    AlertsStatus,
    AlertSummary,
    ResolvedOccurrence,
)
from incidentops.api.v1alpha1.incident_cascade import CascadeStatus
from incidentops.api.v1alpha1.incident_escalation import (
    MAX_DELIVERIES,
    DeliveryState,
    EscalationStatus,
    NotificationDelivery,
    NotificationEvent,
)
from incidentops.api.v1alpha1.incident_intents import (
    Acknowledgement,
    Approval,
    EscalationRequest,
    Note,
    Resolution,
    SeverityChoice,
    Simulation,
    StateRequest,
)
from incidentops.api.v1alpha1.incident_postmortem import PostmortemLink
from incidentops.api.v1alpha1.incident_remediation import (
    RemediationPhase,
    RemediationStatus,
    RemediationStepStatus,
    StepState,
    VerificationProgress,
)
from incidentops.api.v1alpha1.incident_timeline import MAX_TIMELINE, MAX_TIMELINE_NAMES, TimelineEntry
from incidentops.api.v1alpha1.incident_triage import (
    LlmTriage,
    RulesTriage,
    TriageAnswer,
    TriageResult,
    TriageToolCall,
)

# The status models of each concern's part live in their own modules; this one keeps the top level
# (state, spec, the whole status) and names them all, so callers import from one place.
__all__ = [
    "ENDED_STATES",
    "MAX_ACTIVE_ALERTS",
    "MAX_ALERT_NAMES",
    "MAX_DELIVERIES",
    "MAX_NOTES",
    "MAX_RECENT_ALERTS",
    "MAX_RESOLVED_MEMORY",
    "MAX_TIMELINE",
    "MAX_TIMELINE_NAMES",
    "OPEN_STATES",
    "SEVERITY_LABEL",
    "Acknowledgement",
    "AlertSignals",
    "AlertSummary",
    "AlertsStatus",
    "Approval",
    "CascadeStatus",
    "DeliveryState",
    "EscalationRequest",
    "EscalationStatus",
    "IncidentMetrics",
    "IncidentSpec",
    "IncidentState",
    "IncidentStatus",
    "LlmTriage",
    "Note",
    "NotificationDelivery",
    "NotificationEvent",
    "PostmortemLink",
    "RemediationPhase",
    "RemediationStatus",
    "RemediationStepStatus",
    "Resolution",
    "ResolvedOccurrence",
    "RulesTriage",
    "SeverityChoice",
    "Simulation",
    "StateRequest",
    "StepState",
    "TimelineEntry",
    "TriageAnswer",
    "TriageResult",
    "TriageToolCall",
    "VerificationProgress",
    "current_severity",
]
SEVERITY_LABEL = "incidentops.dev/severity"
MAX_NOTES = 50


class IncidentState(StrEnum):
    """Where an incident stands in its lifecycle.

    Detected → Acknowledged → Investigating → Identified → Mitigating → Monitoring → Resolved → Closed.
    States may be skipped and responders may step back (Monitoring → Investigating, say); any open state
    can move to Resolved, Resolved only to Closed, and Closed is final.
    """

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
ENDED_STATES = frozenset({IncidentState.RESOLVED, IncidentState.CLOSED})  # nobody is paged, nothing acts


class IncidentSpec(Model):
    """What the incident is about, and what humans decided about it.

    Written by the operator's ingester when it opens the incident, and afterwards only by humans, through
    `kubectl incident ...` or `kubectl patch`; the operator records what they decide in status.
    """

    model_config = ConfigDict(
        **Model.model_config,
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.simulation) == has(oldSelf.simulation)",
                    "message": "spec.simulation is set when the incident is opened and cannot be added or removed",
                }
            ]
        },
    )

    title: Annotated[
        str,
        Field(
            min_length=1,
            max_length=512,
            description="What is wrong, in one line, e.g. Checkout payments failing for card users. The ingester "
            "takes the first alert's summary, else '<alertname> on <service or namespace>'.",
        ),
    ]
    severity: Annotated[
        Severity,
        Field(
            description="How bad the incident is, SEV1 (worst) to SEV5. The ingester sets the worst severity of "
            "the alerts that opened it, and status.severity follows later alerts. A human's change here (kubectl "
            f"incident severity) sets status.severity, and alerts no longer change it. {SEVERITY_LEVELS} Alert "
            f"severity labels, events and the plugin read names through one table (INCIDENTOPS_SEVERITY_MAP adds "
            f"to it): {severity_aliases()}."
        ),
    ]
    category: Annotated[
        Category | None,
        Field(
            description="What kind of failure: availability, performance, data-integrity, security, capacity, "
            "dependency, configuration or model-quality. The ingester takes the first alert's category label "
            "when it is one of these. Drives triage, runbook matching and routing."
        ),
    ] = None
    service: Annotated[
        str | None,
        Field(
            max_length=253,
            description="The affected service, e.g. checkout: the first alert's service label (by default the "
            "first of service, app, job, deployment). Alerts of the same namespace and service join one incident.",
        ),
    ] = None
    summary: Annotated[
        str | None,
        Field(max_length=4096, description="More about the problem: the first alert's description annotation."),
    ] = None
    source: Annotated[
        str | None,
        Field(
            max_length=63,
            description="Where the first alert came from: alertmanager, or the source of an event posted to "
            "/api/v1/events, e.g. ci.",
        ),
    ] = None
    affected_workloads: Annotated[
        list[WorkloadReference],
        Field(
            max_length=50,
            description="The workloads the incident affects, from the first alert's deployment, statefulset and "
            "daemonset labels. Runbook steps whose target names no workload act on these.",
        ),
    ] = []
    dedup_key: Annotated[
        str | None,
        Field(
            max_length=256,
            description="The dedup key of the alert that opened the incident: Alertmanager's fingerprint, a hash of "
            "an event's source and alert_id, or a hash of the configured dedup labels. status.alerts.active holds "
            "the keys of every alert still firing.",
        ),
    ] = None
    correlation_key: Annotated[
        str | None,
        Field(
            max_length=1024,
            description="What groups alerts into this incident, e.g. namespace=shop,service=checkout (or the "
            "configured correlation labels as name=value pairs). Every episode of the same problem shares it.",
        ),
    ] = None
    labels: Annotated[
        LabelMap | None,
        Field(
            description="The labels every alert that opened the incident shared (at most 32), e.g. alertname, "
            "namespace, team."
        ),
    ] = None
    previous_incident: Annotated[
        str | None,
        Field(
            max_length=253,
            description="The earlier episode this one recurs after: the incident of the same correlation key that "
            "had ended (resolved, closed, or quiet for longer than the correlation window) when alerts fired again.",
        ),
    ] = None
    escalation_policy_ref: Annotated[
        LocalObjectReference | None,
        Field(
            description="The EscalationPolicy (in this namespace) that pages responders for this incident until "
            "someone acknowledges."
        ),
    ] = None
    runbook_ref: Annotated[
        LocalObjectReference | None,
        Field(
            description="The Runbook (in this namespace) that remediates this incident; status.remediation follows "
            "its steps."
        ),
    ] = None
    acknowledgement: Annotated[
        Acknowledgement | None,
        Field(
            description="A responder takes the incident, which stops escalation (kubectl incident ack). The "
            "operator records it in status (acknowledgedAt, acknowledgedBy, condition Acknowledged); once the "
            "incident is Resolved or Closed it ignores it (condition reason AcknowledgedTooLate)."
        ),
    ] = None
    resolution: Annotated[
        Resolution | None,
        Field(
            description="A responder declares the incident over, with a summary and root cause (kubectl incident "
            "resolve). The operator moves it to Resolved, even while alerts still fire; on an incident already "
            "resolved because its alerts cleared, it records who resolved it and why."
        ),
    ] = None
    approvals: Annotated[
        list[Approval],
        Field(
            max_length=50,
            description="Responders' approvals of remediation steps that wait for one (Runbook steps with "
            "requiresApproval, or every step of a runbook that is not automatic), one entry per step.",
        ),
    ] = []
    assignee: Annotated[
        str | None,
        Field(
            max_length=253,
            description="Who owns the incident, e.g. alice (kubectl incident assign). The operator copies it into "
            "status.assignee and the timeline.",
        ),
    ] = None
    severity_set: Annotated[
        SeverityChoice | None,
        Field(
            description="Who set spec.severity by hand and when (kubectl incident severity writes it): from then "
            "on alerts no longer change the incident's severity, even when the value equals the one it opened with."
        ),
    ] = None
    requested_state: Annotated[
        StateRequest | None,
        Field(
            description="The lifecycle state a responder asks for (kubectl incident update --state, close). The "
            "operator applies each request once; a move the lifecycle forbids is refused, with a "
            "StateChangeRefused timeline entry."
        ),
    ] = None
    escalation_request: Annotated[
        EscalationRequest | None,
        Field(
            description="A responder asks for the next escalation level now (kubectl incident escalate), even "
            "after an acknowledgement. Each request (told apart by at) moves one level."
        ),
    ] = None
    notes: Annotated[
        list[Note],
        Field(
            max_length=MAX_NOTES,
            description="Responders' notes (kubectl incident note), oldest first; each is copied into the timeline "
            "once.",
        ),
    ] = []
    simulation: Annotated[
        Simulation | None,
        Field(
            description="Set when the incident is a simulation (kubectl incident simulate); never set by alerts. It "
            "cannot be added, removed or changed afterwards.",
            json_schema_extra={
                "x-kubernetes-validations": [
                    {"rule": "self == oldSelf", "message": "spec.simulation cannot change once the incident exists"}
                ]
            },
        ),
    ] = None

    @property
    def rehearsal(self) -> bool:
        """A simulation that must not act or page."""
        return self.simulation is not None and self.simulation.mode == "rehearsal"

    @property
    def drill(self) -> bool:
        """Any simulation, rehearsal or live: left out of metrics and of real incidents' guards."""
        return self.simulation is not None


class IncidentMetrics(StatusModel):
    """Durations derived from the lifecycle timestamps (MTTD/MTTA/MTTM/MTTR fall out of these)."""

    time_to_detect_seconds: Annotated[
        float | None,
        Field(
            ge=0,
            description="Seconds from the first alert's startsAt (status.startedAt) to detection "
            "(status.detectedAt). Left out when no alert said when it started.",
        ),
    ] = None
    time_to_acknowledge_seconds: Annotated[
        float | None,
        Field(ge=0, description="Seconds from detection (status.detectedAt) to acknowledgement, e.g. 312.5."),
    ] = None
    time_to_mitigate_seconds: Annotated[
        float | None,
        Field(
            ge=0,
            description="Seconds from detection (status.detectedAt) to mitigation (the first move to Monitoring "
            "or Resolved).",
        ),
    ] = None
    time_to_resolve_seconds: Annotated[
        float | None, Field(ge=0, description="Seconds from detection (status.detectedAt) to resolution.")
    ] = None


class IncidentStatus(StatusModel):
    """Everything the operator knows about the incident; written by the operator alone (change spec instead)."""

    state: Annotated[
        IncidentState,
        Field(
            description="Where the incident stands (the State column): Detected → Acknowledged → Investigating → "
            "Identified → Mitigating → Monitoring → Resolved → Closed. Every state before Resolved is open. "
            "Responders move it with kubectl incident ack, update --state, resolve and close."
        ),
    ] = IncidentState.DETECTED
    severity: Annotated[
        Severity | None,
        Field(
            description="The current severity (the Severity column): the worst of the alerts' unless a human "
            "changed spec.severity."
        ),
    ] = None
    severity_source: Annotated[
        Literal["alerts", "triage", "human"] | None,
        Field(
            description="alerts: follows the worst alert; triage: raised by triage from the alerts' signals (alerts "
            "may still raise it); human: set in spec, neither alerts nor triage change it."
        ),
    ] = None
    spec_severity: Annotated[
        Severity | None,
        Field(description="spec.severity as the operator last saw it, so that it notices a human's change."),
    ] = None
    severity_set_seen: Annotated[
        Timestamp | None, Field(description="The spec.severitySet.at last applied, so each choice applies once.")
    ] = None
    state_request_seen: Annotated[
        str | None,
        Field(max_length=600, description="The spec.requestedState last acted on, so each request applies once."),
    ] = None
    notes_seen: Annotated[int, Field(ge=0, description="How many of spec.notes are in the timeline.")] = 0
    observed_generation: Annotated[
        int | None,
        Field(
            ge=0,
            description="The metadata.generation of the spec this status reflects; while it lags, a human's change "
            "is not yet applied.",
        ),
    ] = None
    conditions: Annotated[
        list[Condition],
        Field(
            max_length=16,
            description="Acknowledged: True once a responder acknowledged; False with reason "
            "AwaitingAcknowledgement, or AcknowledgedTooLate when the acknowledgement came after resolution. "
            "Resolved: True with reason ResolvedByResponder or AlertsResolved; False with reason Open. Present "
            "from the start, so kubectl wait --for=condition=Acknowledged works.",
        ),
    ] = []
    alerts: Annotated[
        AlertsStatus,
        Field(description="The incident's alerts: how many fired, which still fire, the last few seen; bounded."),
    ] = AlertsStatus()
    started_at: Annotated[
        Timestamp | None,
        Field(description="When the first alert began firing, as its sender reports it (the earliest startsAt)."),
    ] = None
    detected_at: Annotated[
        Timestamp | None,
        Field(description="When the operator opened the incident (or saw it declared by hand); metrics count from it."),
    ] = None
    acknowledged_at: Annotated[Timestamp | None, Field(description="When a responder acknowledged.")] = None
    acknowledged_by: Annotated[str | None, Field(max_length=253, description="Who acknowledged.")] = None
    identified_at: Annotated[
        Timestamp | None, Field(description="When the incident first moved to Identified (the cause is known).")
    ] = None
    mitigated_at: Annotated[
        Timestamp | None,
        Field(description="When the impact was first mitigated: the first move to Monitoring or Resolved."),
    ] = None
    resolved_at: Annotated[
        Timestamp | None,
        Field(description="When the incident was resolved, by a responder or because every alert resolved."),
    ] = None
    resolved_by: Annotated[
        str | None,
        Field(
            max_length=253,
            description="Who resolved it: a responder, or auto-resolve when every alert resolved.",
        ),
    ] = None
    closed_at: Annotated[
        Timestamp | None, Field(description="When the incident was closed; nothing about it changes afterwards.")
    ] = None
    assignee: Annotated[
        str | None, Field(max_length=253, description="Who owns the incident, as recorded from spec.assignee.")
    ] = None
    triage: Annotated[
        TriageResult | None,
        Field(
            description="How the incident was classified (severity, category, runbook), by rules or by an LLM, "
            "with its confidence and reasoning."
        ),
    ] = None
    escalation: Annotated[
        EscalationStatus | None,
        Field(description="Escalation progress: the policy, the level reached, when the next is due, notifications."),
    ] = None
    remediation: Annotated[
        RemediationStatus | None,
        Field(description="Progress of the Runbook run for the incident, step by step."),
    ] = None
    metrics: Annotated[
        IncidentMetrics,
        Field(
            description="Times to detect, acknowledge, mitigate and resolve, in seconds (averaged over incidents: "
            "MTTD, MTTA, MTTM, MTTR)."
        ),
    ] = IncidentMetrics()
    timeline: Annotated[
        list[TimelineEntry],
        Field(
            max_length=MAX_TIMELINE,
            description="What happened, oldest first: alerts firing and resolving, state and severity changes, "
            f"assignments, notes. At most {MAX_TIMELINE} entries: past that the oldest go, but the first (how it "
            "began) stays.",
        ),
    ] = []
    cascade: Annotated[
        CascadeStatus | None,
        Field(
            description="The upstream incident this one is a symptom of (its escalation defers to the root's), "
            "from the services' declared dependencies."
        ),
    ] = None
    postmortem: Annotated[
        PostmortemLink | None,
        Field(description="The postmortem: whether one is required, its name and its state (kubectl get pm)."),
    ] = None
    recurred_as: Annotated[
        str | None,
        Field(
            max_length=253,
            description="The next episode, opened when the alerts fired again after this one ended; its "
            "spec.previousIncident names this one.",
        ),
    ] = None


def current_severity(spec: IncidentSpec, status: IncidentStatus | None) -> Severity:
    """What the incident's severity is now (status), falling back to spec before the operator has seen it."""
    return Severity(status.severity if status is not None and status.severity else spec.severity)
