"""EscalationPolicy: who is told, how, and when, until someone acknowledges."""

from __future__ import annotations

import itertools
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

ChannelType = Literal["slack", "pagerduty", "webhook", "email", "sms", "phone", "statuspage"]
PER_PERSON: frozenset[str] = frozenset({"email", "sms", "phone"})
MAX_LEVELS = 10


_CHANNEL_RULES: list[JsonValue] = [
    {
        "rule": "!(self.type in ['slack', 'pagerduty', 'sms', 'phone', 'statuspage']) || has(self.secretRef)",
        "message": "slack, pagerduty, sms, phone and statuspage channels need secretRef",
    },
    {
        "rule": "self.type != 'webhook' || has(self.url) || has(self.secretRef)",
        "message": "webhook channel needs url or secretRef",
    },
    {
        "rule": "!(self.type in ['sms', 'phone']) || has(self.sender)",
        "message": "sms and phone channels need sender (the number they are sent from)",
    },
    {
        "rule": "self.type != 'statuspage' || "
        "(has(self.pageId) && has(self.componentIds) && size(self.componentIds) > 0)",
        "message": "statuspage channel needs pageId and at least one of componentIds",
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
            description="slack, pagerduty (Events API v2), webhook, email, sms, phone (a Twilio-style API) or "
            "statuspage (a Statuspage-style API). email, sms and phone go to each target's own address from the "
            "operator's contact directory; the others post once per channel, naming the targets."
        ),
    ]
    secret_ref: Annotated[
        SecretKeyReference | None,
        Field(
            description="The Secret key holding the channel's credential: the Slack incoming-webhook URL or bot "
            "token (xoxb-...), the PagerDuty routing key, the webhook's URL (when url is not set), ACCOUNT_SID:"
            "AUTH_TOKEN for sms and phone, the Statuspage API key, or an SMTP user:password for email. "
            "Credentials are never written inline."
        ),
    ] = None
    slack_channel: Annotated[
        str | None,
        Field(
            max_length=80,
            description="slack: the channel to post to, e.g. #inc-checkout; needed with a bot token (which "
            "threads later updates under the first message). Default: the incoming webhook's own channel.",
        ),
    ] = None
    url: Annotated[
        str | None,
        Field(
            pattern=r"^https?://",
            max_length=2048,
            description="webhook: the URL notifications are POSTed to. Other types: the service's API base URL, "
            "to reach a proxy or a self-hosted stand-in (defaults: https://events.pagerduty.com, "
            "https://slack.com/api, https://api.twilio.com, https://api.statuspage.io).",
        ),
    ] = None
    to: Annotated[
        list[Annotated[str, Field(max_length=253)]],
        Field(
            max_length=50,
            description="email: shared addresses that receive every notification too, e.g. a team list "
            "(people's own addresses come from the contact directory, never from here).",
        ),
    ] = []
    sender: Annotated[
        str | None,
        Field(
            max_length=64,
            description="sms and phone: the number messages and calls come from, in E.164 form, e.g. +15550100.",
        ),
    ] = None
    signing_key_ref: Annotated[
        SecretKeyReference | None,
        Field(
            description="webhook: the Secret key holding an HMAC-SHA256 signing key; each POST then carries "
            "X-Incidentops-Signature: sha256=<hex of timestamp.body> and X-Incidentops-Timestamp."
        ),
    ] = None
    page_id: Annotated[str | None, Field(max_length=64, description="statuspage: the status page's id.")] = None
    component_ids: Annotated[
        list[Annotated[str, Field(max_length=64)]],
        Field(
            max_length=20,
            description="statuspage: the affected components, whose status follows the incident (major_outage "
            "for SEV1, partial_outage for SEV2, degraded_performance otherwise, operational once resolved).",
        ),
    ] = []

    @model_validator(mode="after")
    def _credentials(self) -> Channel:
        if self.type in ("slack", "pagerduty", "sms", "phone", "statuspage") and self.secret_ref is None:
            raise ValueError(f"{self.type} channel needs secretRef")
        if self.type == "webhook" and self.url is None and self.secret_ref is None:
            raise ValueError("webhook channel needs url or secretRef")
        if self.type in ("sms", "phone") and not self.sender:
            raise ValueError(f"{self.type} channel needs sender (the number they are sent from)")
        if self.type == "statuspage" and not (self.page_id and self.component_ids):
            raise ValueError("statuspage channel needs pageId and at least one of componentIds")
        return self

    def identity(self) -> str:
        """What makes two channels the same destination (updates go once to each)."""
        ref = f"{self.secret_ref.name}/{self.secret_ref.key}" if self.secret_ref else ""
        return "|".join((self.type, ref, self.url or "", self.slack_channel or "", self.page_id or ""))


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
    time_zone: Annotated[
        str | None,
        Field(
            max_length=64,
            description="An IANA time zone, e.g. Europe/Berlin. With it, rotations of whole days hand over at the "
            "same local time across daylight-saving changes (a 1d shift that starts 09:00 always ends 09:00). "
            "Without it, rotations are exact durations from start.",
        ),
    ] = None

    @model_validator(mode="after")
    def _zone(self) -> Schedule:
        if self.time_zone is not None:
            try:
                ZoneInfo(self.time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"unknown time zone {self.time_zone!r} (expected an IANA name, e.g. Europe/Berlin)"
                ) from None
        return self


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
