"""Postmortem: the blameless review of a resolved incident, written once by the operator, then the team's.

The operator creates it when a SEV1 or SEV2 incident is resolved (INCIDENTOPS_POSTMORTEM_SEVERITIES),
from a template, with the narrative sections drafted by a language model when one is configured
(listed in spec.drafted). From then on spec is the team's: the operator never writes it again. It
is not owned by the Incident, so it outlives the incident's retention.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from incidentops.api.v1alpha1.common import Category, LocalObjectReference, Model, Severity, StatusModel, Timestamp
from incidentops.api.v1alpha1.conditions import Condition

PostmortemState = Literal["Draft", "InReview", "Published"]
ActionItemStatus = Literal["Open", "InProgress", "Done", "WontDo"]
Priority = Literal["P1", "P2", "P3", "P4"]
OPEN_ACTION_ITEMS = frozenset({"Open", "InProgress"})
NARRATIVE = (
    "summary",
    "rootCause",
    "contributingFactors",
    "fiveWhys",
    "whatWentWell",
    "whatCouldImprove",
    "actionItems",
)
Text = Annotated[str, Field(max_length=4096)]
Line = Annotated[str, Field(max_length=1024)]


class Peak(Model):
    """The worst value a query reached over the incident's window, read from Prometheus."""

    query: Annotated[str, Field(max_length=1024, description="The PromQL query, e.g. the alert rule's expression.")]
    source: Annotated[
        str, Field(max_length=253, description="Where the query came from: alert X, rule X or runbook X's verify.")
    ]
    peak: Annotated[float | None, Field(description="Its highest value over the incident's window.")] = None
    error: Annotated[str | None, Field(max_length=512, description="Why no value could be read, if none was.")] = None


class Impact(Model):
    """Who and what was affected, for how long."""

    services: Annotated[
        list[Annotated[str, Field(max_length=253)]],
        Field(max_length=50, description="The services affected: the incident's, and the cascade it was part of."),
    ] = []
    started_at: Annotated[Timestamp | None, Field(description="When the first alert began firing.")] = None
    detected_at: Annotated[Timestamp | None, Field(description="When the incident was opened.")] = None
    resolved_at: Annotated[Timestamp | None, Field(description="When it was resolved.")] = None
    duration_seconds: Annotated[
        float | None, Field(ge=0, description="Seconds from the first alert's start (or detection) to resolution.")
    ] = None
    alert_count: Annotated[int, Field(ge=0, description="How many alerts began firing.")] = 0
    users: Annotated[
        str | None, Field(max_length=1024, description="Users affected, in words (from the alerts' impact signals).")
    ] = None
    peaks: Annotated[
        list[Peak], Field(max_length=10, description="Peak values of the queries the incident was judged by.")
    ] = []


class TimelineItem(Model):
    """One line of the incident's timeline, as it was when the postmortem was written."""

    at: Annotated[Timestamp, Field(description="When it happened.")]
    type: Annotated[str, Field(max_length=63, description="What kind of event, e.g. Detected, Escalated, Resolved.")]
    message: Annotated[str, Field(max_length=2048, description="What happened, in words.")]
    actor: Annotated[
        str | None, Field(max_length=253, description="Who did it (a role or a responder), if anyone.")
    ] = None


class ActionTaken(Model):
    """A remediation step that ran (or waited), and how it ended."""

    step: Annotated[str, Field(max_length=253, description="The runbook step's name.")]
    action: Annotated[str, Field(max_length=63, description="Its action, e.g. rollback or scale.")]
    state: Annotated[str, Field(max_length=63, description="How it ended, e.g. Succeeded, Failed, Undone.")]
    target: Annotated[str | None, Field(max_length=512, description="What it acted on, e.g. Deployment shop/x.")] = None
    message: Annotated[
        str | None, Field(max_length=1024, description="What it changed (the release it undid) or what it said.")
    ] = None


class RemediationSummary(Model):
    """The runbook run: what it did, and whether verification proved it worked."""

    runbook: Annotated[str | None, Field(max_length=253, description="The runbook that ran, if any.")] = None
    phase: Annotated[str | None, Field(max_length=63, description="How the run ended, e.g. Verified or Failed.")] = None
    verified: Annotated[bool | None, Field(description="True when the verify query cleared within its window.")] = None
    automatic: Annotated[bool | None, Field(description="True when a step ran without a human's approval.")] = None
    actions: Annotated[list[ActionTaken], Field(max_length=30, description="The steps, in order.")] = []
    outcome: Annotated[str | None, Field(max_length=1024, description="The run's result in words.")] = None


class ActionItem(Model):
    """A follow-up, tracked until done."""

    title: Annotated[str, Field(min_length=1, max_length=512, description="What to do, e.g. Add a canary stage.")]
    owner: Annotated[str | None, Field(max_length=253, description="Who sees it through.")] = None
    priority: Annotated[Priority, Field(description="P1 (most urgent) to P4.")] = "P2"
    due: Annotated[
        str | None, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="When it is due, YYYY-MM-DD, e.g. 2026-12-17.")
    ] = None
    status: Annotated[
        ActionItemStatus, Field(description="Open, InProgress, Done or WontDo (Open and InProgress count as open).")
    ] = "Open"


class ResponseMetrics(Model):
    """How fast the response was, in seconds (detect: from the first alert's start)."""

    time_to_detect_seconds: Annotated[
        float | None, Field(ge=0, description="From the first alert's start to detection (MTTD).")
    ] = None
    time_to_acknowledge_seconds: Annotated[
        float | None, Field(ge=0, description="From detection to acknowledgement (MTTA).")
    ] = None
    time_to_mitigate_seconds: Annotated[
        float | None, Field(ge=0, description="From detection to mitigation (MTTM).")
    ] = None
    time_to_resolve_seconds: Annotated[
        float | None, Field(ge=0, description="From detection to resolution (MTTR).")
    ] = None


class PostmortemSpec(Model):
    """The review document. Written by the operator once, at resolution; afterwards by the team only."""

    incident_ref: Annotated[LocalObjectReference, Field(description="The incident reviewed (in this namespace).")]
    title: Annotated[str, Field(min_length=1, max_length=512, description="The postmortem's title.")]
    state: Annotated[
        PostmortemState,
        Field(
            description="Draft (written, not reviewed), InReview or Published. Closing the incident needs Published."
        ),
    ] = "Draft"
    severity: Annotated[Severity, Field(description="The incident's severity when it was resolved.")]
    category: Annotated[Category | None, Field(description="The incident's category, as triage assessed it.")] = None
    summary: Annotated[Text, Field(description="What happened, in a few sentences.")] = ""
    impact: Annotated[Impact, Field(description="Services, duration, alert count, users and peak values.")] = Impact()
    timeline: Annotated[
        list[TimelineItem], Field(max_length=120, description="The incident's timeline, oldest first.")
    ] = []
    root_cause: Annotated[Text, Field(description="Why it happened.")] = ""
    contributing_factors: Annotated[
        list[Line], Field(max_length=20, description="What made it possible or worse, besides the root cause.")
    ] = []
    five_whys: Annotated[list[Line], Field(max_length=5, description="Why? asked up to five times, with answers.")] = []
    remediation: Annotated[
        RemediationSummary, Field(description="The remediation actions taken, and whether verification passed.")
    ] = RemediationSummary()
    what_went_well: Annotated[list[Line], Field(max_length=20, description="What helped the response.")] = []
    what_could_improve: Annotated[list[Line], Field(max_length=20, description="What slowed it down or hurt.")] = []
    action_items: Annotated[
        list[ActionItem], Field(max_length=50, description="Follow-ups with owner, priority, due date and status.")
    ] = []
    metrics: Annotated[
        ResponseMetrics, Field(description="Times to detect, acknowledge, mitigate and resolve, in seconds.")
    ] = ResponseMetrics()
    drafted: Annotated[
        list[Annotated[str, Field(max_length=63)]],
        Field(
            max_length=len(NARRATIVE),
            description="The sections a language model drafted (to be reviewed); the rest came from the template.",
        ),
    ] = []
    drafted_by: Annotated[str | None, Field(max_length=128, description="The model that drafted them.")] = None


class PostmortemStatus(StatusModel):
    """What the operator reads off the document (it never changes spec)."""

    observed_generation: Annotated[
        int | None, Field(ge=0, description="The metadata.generation of the spec this status was read from.")
    ] = None
    open_action_items: Annotated[int, Field(ge=0, description="Action items Open or InProgress (the Open column).")] = 0
    action_items: Annotated[int, Field(ge=0, description="Action items in all.")] = 0
    published_at: Annotated[Timestamp | None, Field(description="When the operator first saw it Published.")] = None
    conditions: Annotated[
        list[Condition], Field(max_length=8, description="Standard conditions (none are set today).")
    ] = []
