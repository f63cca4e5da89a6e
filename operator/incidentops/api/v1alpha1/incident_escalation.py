"""An Incident's escalation part of status: the chain's cursor and the outbox of notifications."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from incidentops.api.v1alpha1.common import Severity, StatusModel, Timestamp

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
    chosen_for: Annotated[
        Severity | None,
        Field(
            description="The severity the policy was chosen for; when the incident gets worse, the choice is made "
            "again (a SEV1 policy takes over from a SEV3 one)."
        ),
    ] = None
    switches: Annotated[
        int,
        Field(
            ge=0,
            description="How many times another policy took over (a severity rise); pages of each are told apart.",
        ),
    ] = 0
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
            "notified, and the last one had its time to answer), NoPolicy, or Deferred (a symptom of another "
            "incident, status.cascade.root, whose escalation pages instead).",
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
