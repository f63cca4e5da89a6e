"""What humans write into an Incident's spec: acknowledgement, resolution, approvals, requests, notes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from incidentops.api.v1alpha1.common import Model, Timestamp

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
    runbook: Annotated[
        str | None,
        Field(
            max_length=253,
            description="The Runbook whose step is approved (status.remediation.runbook when it was written; kubectl "
            "incident approve sets it). An approval naming another runbook never counts; the chart's admission "
            "policy requires it and checks the approve verb on that Runbook.",
        ),
    ] = None


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
