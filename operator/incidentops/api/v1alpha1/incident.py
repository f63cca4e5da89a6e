"""Incident: one episode of something being wrong, from first alert to postmortem.

spec is written by the ingester at creation and afterwards only by humans (acknowledge, resolve,
approve, assign); status is the operator's alone.
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

SEVERITY_LABEL = "incidentops.dev/severity"
MAX_TIMELINE = 100
MAX_RECENT_ALERTS = 10
MAX_ACTIVE_ALERTS = 5000
MAX_RESOLVED_MEMORY = 200
MAX_NOTES = 50
MAX_TIMELINE_NAMES = 10


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

Actor = Annotated[str, Field(min_length=1, max_length=253)]


class Acknowledgement(Model):
    """A responder takes the incident; stops escalation."""

    by: Annotated[Actor, Field(description="Who acknowledged, e.g. alice.")]
    at: Annotated[
        Timestamp | None,
        Field(
            description="When they acknowledged (RFC 3339); time to acknowledge counts to it. Left out, the time "
            "the operator records it."
        ),
    ] = None


class Resolution(Model):
    """A responder declares the incident over."""

    by: Annotated[Actor, Field(description="Who resolved the incident, e.g. alice.")]
    at: Annotated[
        Timestamp | None,
        Field(
            description="When they resolved it (RFC 3339); time to resolve counts to it. Left out, the time the "
            "operator records it."
        ),
    ] = None
    summary: Annotated[
        str,
        Field(
            max_length=4096,
            description="What happened and what fixed it, e.g. rolled back checkout to v41; copied into the "
            "timeline for the postmortem.",
        ),
    ] = ""
    root_cause: Annotated[
        str,
        Field(max_length=4096, description="The root cause, if known, e.g. bad deploy; copied into the timeline."),
    ] = ""


class Approval(Model):
    """A responder approves one remediation step that requires it."""

    step: Annotated[
        str,
        Field(
            min_length=1,
            max_length=63,
            description="The name of the Runbook step approved (a step of the incident's runbook), e.g. rollback.",
        ),
    ]
    by: Annotated[Actor, Field(description="Who approved the step.")]
    at: Annotated[Timestamp | None, Field(description="When it was approved (RFC 3339).")] = None


RequestableState = Literal["Investigating", "Identified", "Mitigating", "Monitoring", "Closed"]


class StateRequest(Model):
    """A responder moves the incident along its lifecycle; the operator checks the move is legal."""

    state: Annotated[
        RequestableState,
        Field(description="Investigating, Identified, Mitigating, Monitoring, or Closed (only once Resolved)."),
    ]
    by: Annotated[Actor, Field(description="Who asks for the change.")]
    at: Annotated[Timestamp | None, Field(description="When they asked; also tells two requests apart.")] = None


class SeverityChoice(Model):
    """A responder decided the severity; alerts no longer raise it."""

    by: Annotated[Actor, Field(description="Who set the severity.")]
    at: Annotated[Timestamp, Field(description="When; tells two choices of the same value apart.")]


class EscalationRequest(Model):
    """A responder wants more help now: the next escalation level is notified at once."""

    by: Annotated[Actor, Field(description="Who asked to escalate.")]
    at: Annotated[Timestamp, Field(description="When; tells two requests apart (each moves one level).")]
    reason: Annotated[str, Field(max_length=1024, description="Why, copied into the timeline and the page.")] = ""


class Note(Model):
    """A responder's note, copied into the timeline."""

    by: Annotated[Actor, Field(description="Who wrote the note.")]
    at: Annotated[Timestamp | None, Field(description="When it was written.")] = None
    text: Annotated[str, Field(min_length=1, max_length=1024, description="The note itself (plain text).")]


SimulationMode = Literal["rehearsal", "live"]


class Simulation(Model):
    """A test incident (kubectl incident simulate): a rehearsal never acts or pages; a live drill does."""

    mode: Annotated[
        SimulationMode,
        Field(
            description="rehearsal (the default): the operator chooses a runbook, runs its guards and dry runs and "
            "decides who would be paged, records all that, and acts on nothing, sends nothing, and counts toward no "
            "guard, rate limit, storm budget or metric. live (kubectl incident simulate --live --yes): it acts and "
            "pages like a real incident, but its actions never hold a real incident back (cooldowns, hourly limits "
            "and the storm budget ignore drills) and metrics leave it out."
        ),
    ] = "rehearsal"
    by: Annotated[Actor, Field(description="Who opened the simulation.")]


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


class AlertSummary(StatusModel):
    """One alert as last seen; the incident keeps only the most recent few."""

    fingerprint: Annotated[
        str,
        Field(
            max_length=256,
            description="The alert's dedup key (Alertmanager's fingerprint unless dedup labels are configured), as "
            "in alerts.active.",
        ),
    ]
    name: Annotated[
        str, Field(max_length=253, description="The alert's name (its alertname label), e.g. HighErrorRate.")
    ]
    status: Annotated[
        Literal["firing", "resolved"], Field(description="firing or resolved, as of the alert's last notification.")
    ]
    labels: Annotated[
        LabelMap,
        Field(description="The alert's labels, less those the incident's spec.labels has with the same value."),
    ] = {}
    summary: Annotated[
        str | None,
        Field(
            max_length=1024,
            description="The alert's summary (else description, else message) annotation, or an event's message.",
        ),
    ] = None
    starts_at: Annotated[
        Timestamp | None,
        Field(description="When the alert began firing, as its sender reports it (Alertmanager's startsAt)."),
    ] = None
    ends_at: Annotated[
        Timestamp | None,
        Field(
            description="When the alert ended, as its sender reports it (Alertmanager's endsAt; on a firing alert, "
            "when Alertmanager will consider it resolved unless it fires again)."
        ),
    ] = None
    last_seen: Annotated[Timestamp, Field(description="When the operator last received a notification for it.")]
    generator_url: Annotated[
        str | None,
        Field(
            max_length=2048,
            description="A link to what raised the alert, e.g. the Prometheus graph of its rule (Alertmanager's "
            "generatorURL, an event's url).",
        ),
    ] = None


class ResolvedOccurrence(StatusModel):
    """An alert occurrence that resolved; a later 'firing' for the same occurrence is a stale replay."""

    key: Annotated[str, Field(max_length=256, description="The alert's dedup key.")]
    starts_at: Annotated[
        Timestamp,
        Field(
            description="The occurrence's startsAt. Alertmanager keeps it for as long as one occurrence lasts, so a "
            "later 'firing' with the same key and startsAt is a replay; a new occurrence starts at a new time."
        ),
    ]


class AlertsStatus(StatusModel):
    """Alert bookkeeping, bounded in size whatever the storm."""

    count: Annotated[
        int,
        Field(
            ge=0,
            description="How many times an alert began firing in this incident (the Alerts column); repeated "
            "notifications of an alert already firing are not counted.",
        ),
    ] = 0
    firing: Annotated[
        int,
        Field(
            ge=0,
            description="How many alerts are firing now (active plus untracked). When it drops to 0 the incident "
            "is resolved automatically (or moves to Monitoring if auto-resolve is off).",
        ),
    ] = 0
    deliveries: Annotated[
        int, Field(ge=0, description="Alert notifications received, duplicates and stale replays included.")
    ] = 0
    first_seen: Annotated[
        Timestamp | None, Field(description="When the operator received the incident's first alert notification.")
    ] = None
    last_seen: Annotated[
        Timestamp | None,
        Field(
            description="When the operator last received an alert notification for the incident. Once no alert "
            "fires, new alerts join the incident only within the correlation window (5m by default) after it."
        ),
    ] = None
    active: Annotated[
        list[str],
        Field(
            max_length=MAX_ACTIVE_ALERTS,
            description=f"Dedup keys of the alerts still firing (at most {MAX_ACTIVE_ALERTS}).",
        ),
    ] = []
    untracked: Annotated[
        int,
        Field(
            ge=0,
            description=f"Alerts that began firing while active already held {MAX_ACTIVE_ALERTS} keys. The operator "
            "cannot tell when they resolve, so they keep the incident from resolving automatically.",
        ),
    ] = 0
    recent: Annotated[
        list[AlertSummary],
        Field(
            max_length=MAX_RECENT_ALERTS,
            description=f"The last alerts seen, one entry per alert, most recent last (5 by default, at most "
            f"{MAX_RECENT_ALERTS}).",
        ),
    ] = []
    unknown_severities: Annotated[
        list[Annotated[str, Field(max_length=64)]],
        Field(
            max_length=10,
            description="Severity values the alerts carried that the severity map does not know (at most 10); such "
            "alerts count at the default severity, SEV3 unless configured.",
        ),
    ] = []
    resolved: Annotated[
        list[ResolvedOccurrence],
        Field(
            max_length=MAX_RESOLVED_MEMORY,
            description=f"The last {MAX_RESOLVED_MEMORY} alert occurrences that resolved. A later 'firing' for one "
            "of them (a copy from the other Alertmanager of an HA pair, a late retry) is a stale replay and changes "
            "nothing.",
        ),
    ] = []


class TimelineEntry(StatusModel):
    """Something that happened, for `kubectl describe` and the postmortem."""

    at: Annotated[
        Timestamp, Field(description="When it happened; for an entry folding several alerts, when the first did.")
    ]
    type: Annotated[
        str,
        Field(
            max_length=63,
            description="What kind of event, e.g. Detected, AlertFiring, AlertResolved, SeverityRaised, "
            "Acknowledged, Investigating, Resolved, Closed, Assigned, Note, StateChangeRefused or Recurred.",
        ),
    ]
    message: Annotated[
        str, Field(max_length=2048, description="What happened, in words, e.g. 3 alerts firing: HighErrorRate.")
    ]
    actor: Annotated[
        str | None,
        Field(
            max_length=253,
            description="Who did it: a responder (e.g. alice), or auto-resolve when the alerts resolved the "
            "incident. Empty for what alerts or the operator did.",
        ),
    ] = None
    count: Annotated[
        int | None,
        Field(
            ge=1,
            description="How many alerts the entry folds: consecutive alert events of the same kind within a "
            "minute of the entry's at share one entry. Left out for a single alert.",
        ),
    ] = None
    last_at: Annotated[
        Timestamp | None, Field(description="When the last event folded into this entry happened (at is the first).")
    ] = None
    names: Annotated[
        list[Annotated[str, Field(max_length=253)]],
        Field(
            max_length=MAX_TIMELINE_NAMES,
            description=f"The distinct alert names folded into this entry (at most {MAX_TIMELINE_NAMES}).",
        ),
    ] = []
    more_names: Annotated[
        bool | None,
        Field(description=f"True when more distinct alert names were folded in than the {MAX_TIMELINE_NAMES} kept."),
    ] = None


class TriageResult(StatusModel):
    """How the incident was classified, by rules or by an LLM, and why."""

    severity: Annotated[Severity | None, Field(description="The severity triage assessed, SEV1 (worst) to SEV5.")] = (
        None
    )
    category: Annotated[
        Category | None, Field(description="The category triage assessed, e.g. availability or performance.")
    ] = None
    runbook: Annotated[
        str | None, Field(max_length=253, description="The Runbook (in this namespace) triage chose, if any.")
    ] = None
    confidence: Annotated[
        float | None,
        Field(
            ge=0,
            le=1,
            description="How sure triage is, from 0 to 1. An automatic Runbook runs without approval only when it "
            "is at least the Runbook's minConfidence.",
        ),
    ] = None
    reasoning: Annotated[str | None, Field(max_length=8192, description="Why triage decided so, in words.")] = None
    source: Annotated[
        Literal["rules", "llm"] | None,
        Field(description="Who triaged: rules (the operator's classification rules) or llm (a language model)."),
    ] = None
    at: Annotated[Timestamp | None, Field(description="When the incident was triaged.")] = None


NotificationEvent = Literal["page", "acknowledged", "update", "resolved"]
DeliveryState = Literal["Pending", "Delivered", "Failed", "Simulated"]
MAX_DELIVERIES = 200


class NotificationDelivery(StatusModel):
    """One notification to one channel (and, for email, sms and phone, one person): made or visibly failed.

    The outbox: written Pending before it is sent, claimed (attempts, claimedUntil) by the process that
    sends it, then Delivered or Failed. A claim that expires without a result is sent again.
    """

    idempotency_key: Annotated[
        str,
        Field(
            max_length=512,
            description="incident uid/event/round/level/channel/target: sent with the notification (PagerDuty "
            "dedup_key, the webhook's Idempotency-Key), and never created twice.",
        ),
    ]
    event: Annotated[
        NotificationEvent,
        Field(description="page (a level fired), acknowledged, update (remediation news) or resolved."),
    ]
    level: Annotated[int, Field(ge=1, description="The escalation level it belongs to, 1 for the first.")]
    round: Annotated[int, Field(ge=0, description="The repeat round, 0 for the first pass through the levels.")] = 0
    channel: Annotated[
        str, Field(max_length=32, description="The channel type: slack, pagerduty, webhook, email, sms, phone...")
    ]
    channel_index: Annotated[
        int, Field(ge=0, description="The channel's position in the level's channels (which configuration sends).")
    ] = 0
    target: Annotated[
        str,
        Field(
            max_length=253,
            description="Who it is for: a user for email, sms and phone; the level's targets (comma-separated) "
            "for channels that post once.",
        ),
    ] = ""
    state: Annotated[
        DeliveryState,
        Field(
            description="Pending (not sent yet, or being retried), Delivered, Failed (given up; see message), or "
            "Simulated (a rehearsal: it would have been sent, and was not)."
        ),
    ]
    attempts: Annotated[int, Field(ge=0, description="How many times sending it has been tried.")] = 0
    created_at: Annotated[Timestamp | None, Field(description="When it was put in the outbox.")] = None
    at: Annotated[Timestamp | None, Field(description="When it was last tried, or delivered.")] = None
    next_attempt_at: Annotated[
        Timestamp | None, Field(description="When a Pending delivery is (re)tried: after a backoff or Retry-After.")
    ] = None
    claimed_until: Annotated[
        Timestamp | None,
        Field(description="An attempt is under way until then; past it without a result, it is tried again."),
    ] = None
    message: Annotated[
        str | None, Field(max_length=1024, description="The channel's answer, or why sending failed.")
    ] = None
    ref: Annotated[
        str | None,
        Field(
            max_length=256,
            description="The channel's own id for what was sent (Slack message ts, Statuspage incident id), so "
            "later updates thread under it.",
        ),
    ] = None


class EscalationStatus(StatusModel):
    """Escalation progress; every deadline is a timestamp, so a restarted operator continues on time."""

    policy: Annotated[
        str | None,
        Field(max_length=253, description="The EscalationPolicy (in this namespace) paging for the incident."),
    ] = None
    reason: Annotated[
        str | None, Field(max_length=1024, description="Why this policy: named in spec, matched, or the default.")
    ] = None
    policy_generation: Annotated[
        int | None, Field(ge=0, description="The policy's metadata.generation when it was chosen.")
    ] = None
    level: Annotated[
        int | None,
        Field(ge=1, description="The level notified last, 1 for the policy's first level (the Level column)."),
    ] = None
    level_name: Annotated[str | None, Field(max_length=63, description="The name of that level, if it has one.")] = None
    round: Annotated[
        int,
        Field(
            ge=0,
            description="How many times the whole chain has started over because nobody acknowledged (at most the "
            "policy's repeat.times).",
        ),
    ] = 0
    next_level: Annotated[
        int | None, Field(ge=1, description="The level notified next, 1 for the first; empty when the chain ended.")
    ] = None
    round_started_at: Annotated[
        Timestamp | None,
        Field(description="What this round's level delays count from: detection, or the repeat's start."),
    ] = None
    next_escalation_at: Annotated[
        Timestamp | None,
        Field(
            description="When the next level is notified (or, after the last level, when the chain is called "
            "exhausted), unless someone acknowledges first."
        ),
    ] = None
    exhausts_at: Annotated[
        Timestamp | None,
        Field(
            description="After the last level of the last round: when nobody acknowledging counts as Exhausted. "
            "The last level gets as long to answer as it waited after the level before it (for a one-level policy, "
            "its own delay), or the repeat interval when that is zero."
        ),
    ] = None
    summary: Annotated[
        str | None,
        Field(
            max_length=63,
            description="What the Level column shows: the level notified last (2), with '(failed)' when every "
            "notification of it failed, '(rehearsal)' in a simulation that sends nothing, 'none' when nobody will "
            "be paged (no usable EscalationPolicy), or 'pending' before level 1 is due.",
        ),
    ] = None
    stopped: Annotated[
        str | None,
        Field(
            max_length=63,
            description="Why the chain stopped: Acknowledged, Resolved, Exhausted (every level and repeat "
            "notified, and the last one had its time to answer) or NoPolicy.",
        ),
    ] = None
    escalation_request_seen: Annotated[
        Timestamp | None, Field(description="The spec.escalationRequest.at last applied, so each applies once.")
    ] = None
    announced: Annotated[
        list[Annotated[str, Field(max_length=63)]],
        Field(
            max_length=20,
            description="Milestones already announced to those notified (acknowledged, remediated, "
            "remediation-failed, resolved), so each is told once.",
        ),
    ] = []
    deliveries: Annotated[
        list[NotificationDelivery],
        Field(
            max_length=MAX_DELIVERIES + 50,
            description=f"The outbox: every notification, Pending, Delivered or Failed (at most {MAX_DELIVERIES}; "
            "past that the oldest delivered go).",
        ),
    ] = []


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
        Literal["alerts", "human"] | None,
        Field(description="alerts: follows the worst alert; human: set in spec, alerts no longer change it."),
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
    postmortem_ref: Annotated[
        str | None,
        Field(max_length=253, description="The name of the postmortem written for the incident after resolution."),
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
