"""EscalationPolicy: who is told, how, and when, until someone acknowledges."""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, JsonValue, model_validator

from incidentops.api.v1alpha1.common import (
    CEL_DURATION_PATTERN,
    DURATION_UNITS,
    DNSLabel,
    Duration,
    Model,
    ObservedGeneration,
    SecretKeyReference,
    Severity,
    StatusModel,
    Timestamp,
    is_cel_duration,
    parse_duration,
)
from incidentops.api.v1alpha1.conditions import Condition

ChannelType = Literal["slack", "pagerduty", "webhook", "email", "sms", "phone"]
MAX_LEVELS = 10


_CHANNEL_RULES: list[JsonValue] = [
    {
        "rule": "!(self.type in ['slack', 'pagerduty', 'sms', 'phone']) || has(self.secretRef)",
        "message": "slack, pagerduty, sms and phone channels need secretRef",
    },
    {
        "rule": "self.type != 'webhook' || has(self.url) || has(self.secretRef)",
        "message": "webhook channel needs url or secretRef",
    },
    {
        "rule": "self.type != 'email' || (has(self.to) && size(self.to) > 0)",
        "message": "email channel needs at least one address in to",
    },
]


# CEL's duration() knows no d, w or y: the apiserver compares the delays only when every one of
# them is written in h, m, s or ms, and the readiness check compares the rest (Ready=False).
_LEVEL_DELAY_RULE = (
    f"self.exists(l, !l.after.matches('{CEL_DURATION_PATTERN}')) || "
    "(self.map(l, duration(l.after)).isSorted() && "
    "self.all(l, self.exists_one(m, duration(m.after) == duration(l.after))))"
)


class EscalationTarget(Model):
    """A person, a team, or a rotation schedule defined in this policy."""

    type: Annotated[
        Literal["user", "team", "schedule"],
        Field(
            description="user (a person), team, or schedule (an on-call rotation from spec.schedules: whoever "
            "is on call is notified)."
        ),
    ]
    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=253,
            description="The user's or team's name, or the name of a schedule in spec.schedules.",
        ),
    ]


class Channel(Model):
    """Where a level's notifications go; credentials are read from the referenced Secret."""

    model_config = ConfigDict(**Model.model_config, json_schema_extra={"x-kubernetes-validations": _CHANNEL_RULES})

    type: Annotated[
        ChannelType,
        Field(
            description="slack, pagerduty (Events API v2), webhook, email, sms or phone. slack, pagerduty, sms and "
            "phone need secretRef; webhook needs url or secretRef; email needs to."
        ),
    ]
    secret_ref: Annotated[
        SecretKeyReference | None,
        Field(
            description="The Secret key holding the channel's credential: the Slack incoming-webhook URL, the "
            "PagerDuty routing key, the webhook's URL (when url is not set) or bearer token, or the SMS/phone "
            "provider's API key. Credentials are never written inline."
        ),
    ] = None
    slack_channel: Annotated[
        str | None,
        Field(
            max_length=80,
            description="slack: the channel to post to, e.g. #inc-checkout. Default: the webhook's own channel.",
        ),
    ] = None
    url: Annotated[
        str | None,
        Field(
            pattern=r"^https?://",
            max_length=2048,
            description="webhook: the URL notifications are POSTed to (http:// or https://).",
        ),
    ] = None
    to: Annotated[
        list[Annotated[str, Field(max_length=253)]],
        Field(max_length=50, description="email: the recipients' addresses, at least one."),
    ] = []

    @model_validator(mode="after")
    def _credentials(self) -> Channel:
        if self.type in ("slack", "pagerduty", "sms", "phone") and self.secret_ref is None:
            raise ValueError(f"{self.type} channel needs secretRef")
        if self.type == "webhook" and self.url is None and self.secret_ref is None:
            raise ValueError("webhook channel needs url or secretRef")
        if self.type == "email" and not self.to:
            raise ValueError("email channel needs at least one address in to")
        return self


class EscalationLevel(Model):
    """Notified `after` the incident was detected, unless it has been acknowledged by then."""

    name: Annotated[
        DNSLabel | None,
        Field(description="A name for the level (a DNS label, e.g. primary), shown in status and notifications."),
    ] = None
    after: Annotated[
        Duration,
        Field(
            description="How long after the incident was detected this level is notified, unless someone has "
            f"acknowledged by then, e.g. 0m, 5m, 1h or 1d. Units: {DURATION_UNITS}. Each level's delay must be "
            "longer than the previous level's.",
        ),
    ]
    targets: Annotated[
        list[EscalationTarget],
        Field(
            min_length=1, max_length=50, description="Who is notified at this level: 1 to 50 users, teams or schedules."
        ),
    ]
    channels: Annotated[
        list[Channel],
        Field(min_length=1, max_length=10, description="How they are notified: 1 to 10 channels."),
    ]


class Repeat(Model):
    """Run the chain again while nobody acknowledges."""

    times: Annotated[
        int,
        Field(
            ge=0,
            le=10,
            description="How many more rounds of the whole chain run while nobody acknowledges, 0 to 10; "
            "default 0 (no repeat).",
        ),
    ] = 0
    interval: Annotated[
        Duration,
        Field(description="Time from one round's last level to the start of the next round, e.g. 30m (the default)."),
    ] = "30m"


class PolicyMatch(Model):
    """Which incidents the policy applies to (empty means any)."""

    severities: Annotated[
        list[Severity],
        Field(
            max_length=5, description="Incident severities the policy applies to, e.g. [SEV1, SEV2]. Empty matches any."
        ),
    ] = []
    services: Annotated[
        list[Annotated[str, Field(max_length=253)]],
        Field(
            max_length=50,
            description="Services (an incident's spec.service) the policy applies to, e.g. [checkout]. "
            "Empty matches any.",
        ),
    ] = []


class ScheduleOverride(Model):
    """Someone covers the rotation for a while."""

    user: Annotated[
        str,
        Field(min_length=1, max_length=253, description="Who is on call instead, from start until end."),
    ]
    start: Annotated[Timestamp, Field(description="When the override begins (RFC 3339, e.g. 2026-01-05T09:00:00Z).")]
    end: Annotated[Timestamp, Field(description="When the override ends (RFC 3339).")]


class Schedule(Model):
    """An on-call rotation through members, one `rotation` period each."""

    name: Annotated[
        DNSLabel,
        Field(description="The schedule's name (a DNS label); level targets of type schedule refer to it."),
    ]
    members: Annotated[
        list[Annotated[str, Field(max_length=253)]],
        Field(
            min_length=1,
            max_length=100,
            description="The users in rotation order; each is on call for one rotation period in turn.",
        ),
    ]
    rotation: Annotated[
        Duration,
        Field(description="How long each member is on call, e.g. 1d or 1w; default 168h (a week)."),
    ] = "168h"
    start: Annotated[
        Timestamp,
        Field(
            description="When the first member's first shift begins (RFC 3339, e.g. 2026-01-05T09:00:00Z); "
            "the rotation counts from it."
        ),
    ]
    overrides: Annotated[
        list[ScheduleOverride],
        Field(max_length=100, description="Periods in which someone else covers the rotation."),
    ] = []


class EscalationPolicySpec(Model):
    """EscalationPolicySpec: who is told, how and when, level by level, until someone acknowledges."""

    levels: Annotated[
        list[EscalationLevel],
        Field(
            min_length=1,
            max_length=MAX_LEVELS,
            description=f"The levels, notified in order (1 to {MAX_LEVELS}), each `after` its delay, until "
            "someone acknowledges. Delays must strictly increase from level to level.",
            json_schema_extra={
                "x-kubernetes-validations": [
                    {
                        "rule": _LEVEL_DELAY_RULE,
                        "message": "escalation levels must have strictly increasing 'after' delays",
                    }
                ]
            },
        ),
    ]
    repeat: Annotated[
        Repeat,
        Field(description="Whether the chain runs again, and how often, while nobody acknowledges."),
    ] = Repeat()
    match: Annotated[
        PolicyMatch,
        Field(
            description="Which incidents the policy applies to: every list given must match, an empty list matches any."
        ),
    ] = PolicyMatch()
    schedules: Annotated[
        list[Schedule],
        Field(max_length=20, description="On-call rotations, which level targets of type schedule name."),
    ] = []

    @model_validator(mode="after")
    def _increasing_delays(self) -> EscalationPolicySpec:
        # What the CEL rule checks, no more: delays in d, w or y are left to the readiness check, so
        # that the model accepts every object the apiserver stores.
        if all(is_cel_duration(level.after) for level in self.levels) and self.out_of_order_levels():
            raise ValueError("escalation levels must have strictly increasing 'after' delays")
        return self

    def out_of_order_levels(self) -> list[tuple[int, int]]:
        """Index pairs (previous, level) of consecutive levels whose delays do not strictly increase."""
        delays = [parse_duration(level.after) for level in self.levels]
        return [
            (index, index + 1) for index, (earlier, later) in enumerate(itertools.pairwise(delays)) if later <= earlier
        ]


class EscalationPolicyStatus(StatusModel):
    """EscalationPolicyStatus is written by the operator: whether the policy is valid, and what is wrong."""

    observed_generation: ObservedGeneration = None
    conditions: Annotated[
        list[Condition],
        Field(
            max_length=16,
            description="Ready is True (reason Valid) when the policy can page, False with a reason such as "
            "InvalidSpec, DelaysNotIncreasing, UnknownSchedule, SecretNotFound or SecretKeyMissing otherwise.",
        ),
    ] = []
    level_count: Annotated[
        int | None,
        Field(ge=0, description="How many levels the policy has (the Levels column)."),
    ] = None
    messages: Annotated[
        list[Annotated[str, Field(max_length=1024)]],
        Field(max_length=50, description="Every problem the last validation found; empty when Ready."),
    ] = []
    last_validated: Annotated[Timestamp | None, Field(description="When the policy was last validated.")] = None
