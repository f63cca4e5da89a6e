"""EscalationPolicy: who is told, how, and when, until someone acknowledges."""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, JsonValue, model_validator

from incidentops.api.v1alpha1.common import (
    DNSLabel,
    Duration,
    Model,
    SecretKeyReference,
    Severity,
    StatusModel,
    Timestamp,
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


class EscalationTarget(Model):
    """A person, a team, or a rotation schedule defined in this policy."""

    type: Literal["user", "team", "schedule"]
    name: Annotated[str, Field(min_length=1, max_length=253)]


class Channel(Model):
    """Where a level's notifications go; credentials are read from the referenced Secret."""

    model_config = ConfigDict(**Model.model_config, json_schema_extra={"x-kubernetes-validations": _CHANNEL_RULES})

    type: ChannelType
    secret_ref: Annotated[
        SecretKeyReference | None,
        Field(description="Slack webhook URL, PagerDuty routing key, webhook token, SMS/phone provider key."),
    ] = None
    slack_channel: Annotated[str | None, Field(max_length=80)] = None
    url: Annotated[str | None, Field(pattern=r"^https?://", max_length=2048)] = None
    to: Annotated[list[Annotated[str, Field(max_length=253)]], Field(max_length=50)] = []

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

    name: DNSLabel | None = None
    after: Duration
    targets: Annotated[list[EscalationTarget], Field(min_length=1, max_length=50)]
    channels: Annotated[list[Channel], Field(min_length=1, max_length=10)]


class Repeat(Model):
    """Run the chain again while nobody acknowledges."""

    times: Annotated[int, Field(ge=0, le=10)] = 0
    interval: Duration = "30m"


class PolicyMatch(Model):
    """Which incidents the policy applies to (empty means any)."""

    severities: Annotated[list[Severity], Field(max_length=5)] = []
    services: Annotated[list[Annotated[str, Field(max_length=253)]], Field(max_length=50)] = []


class ScheduleOverride(Model):
    """Someone covers the rotation for a while."""

    user: Annotated[str, Field(min_length=1, max_length=253)]
    start: Timestamp
    end: Timestamp


class Schedule(Model):
    """An on-call rotation through members, one `rotation` period each."""

    name: DNSLabel
    members: Annotated[list[Annotated[str, Field(max_length=253)]], Field(min_length=1, max_length=100)]
    rotation: Duration = "168h"
    start: Timestamp
    overrides: Annotated[list[ScheduleOverride], Field(max_length=100)] = []


class EscalationPolicySpec(Model):
    """Ordered levels with strictly increasing delays."""

    levels: Annotated[
        list[EscalationLevel],
        Field(
            min_length=1,
            max_length=MAX_LEVELS,
            json_schema_extra={
                "x-kubernetes-validations": [
                    {
                        "rule": "self.map(l, duration(l.after)).isSorted() && "
                        "self.all(l, self.exists_one(m, duration(m.after) == duration(l.after)))",
                        "message": "escalation levels must have strictly increasing 'after' delays",
                    }
                ]
            },
        ),
    ]
    repeat: Repeat = Repeat()
    match: PolicyMatch = PolicyMatch()
    schedules: Annotated[list[Schedule], Field(max_length=20)] = []

    @model_validator(mode="after")
    def _increasing_delays(self) -> EscalationPolicySpec:
        delays = [parse_duration(level.after) for level in self.levels]
        if any(later <= earlier for earlier, later in itertools.pairwise(delays)):
            raise ValueError("escalation levels must have strictly increasing 'after' delays")
        return self


class EscalationPolicyStatus(StatusModel):
    """Readiness and what validation found."""

    observed_generation: Annotated[int | None, Field(ge=0)] = None
    conditions: Annotated[list[Condition], Field(max_length=16)] = []
    level_count: Annotated[int | None, Field(ge=0)] = None
    messages: Annotated[list[Annotated[str, Field(max_length=1024)]], Field(max_length=50)] = []
    last_validated: Timestamp | None = None
