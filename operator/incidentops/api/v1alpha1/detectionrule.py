"""DetectionRule: a PromQL expression or structured conditions the operator evaluates itself."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from incidentops.api.v1alpha1.common import (
    CEL_DURATION_PATTERN,
    DURATION_UNITS,
    SEVERITY_LEVELS,
    Category,
    Duration,
    LabelMap,
    LocalObjectReference,
    Model,
    ObservedGeneration,
    Severity,
    StatusModel,
    Timestamp,
    is_cel_duration,
    parse_duration,
)
from incidentops.api.v1alpha1.conditions import Condition

PromQL = Annotated[str, Field(min_length=1, max_length=8192)]
MIN_INTERVAL = "5s"
LabelName = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=128)]


ConditionKind = Literal["threshold", "rateOfChange", "absent", "burst", "anomaly"]
COMPARISONS = Literal[">", ">=", "<", "<=", "==", "!="]


class ThresholdCondition(Model):
    """One condition of a rule, in words a user writes without PromQL expertise; it compiles to PromQL.

    The compiled query is shown in the rule's status, so nothing is magic.
    """

    model_config = ConfigDict(
        **Model.model_config,
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.kind) || !(self.kind in ['threshold', 'rateOfChange']) || "
                    "(has(self.op) && has(self.threshold))",
                    "message": "threshold and rateOfChange conditions need op and threshold",
                },
                {
                    "rule": "!has(self.kind) || !(self.kind in ['rateOfChange', 'absent', 'burst', 'anomaly']) || "
                    "has(self.window)",
                    "message": "rateOfChange, absent, burst and anomaly conditions need a window",
                },
                {
                    "rule": "!has(self.kind) || !(self.kind in ['burst', 'anomaly']) || has(self.threshold)",
                    "message": "burst needs threshold (how many events), anomaly threshold (how many standard "
                    "deviations)",
                },
            ]
        },
    )

    kind: Annotated[
        ConditionKind,
        Field(
            description="threshold (the default: query op threshold), rateOfChange (its per-second change over "
            "window, compared with threshold), absent (no series at all for window), burst (a counter rose by at "
            "least threshold within window), or anomaly (more than threshold standard deviations from its mean "
            "over window)."
        ),
    ] = "threshold"
    query: Annotated[
        PromQL,
        Field(
            description="PromQL expression the condition is about, e.g. "
            'sum by (service) (rate(http_requests_total{code=~"5.."}[5m])); a counter for burst.'
        ),
    ]
    op: Annotated[
        COMPARISONS | None,
        Field(
            description="threshold and rateOfChange: how the value is compared with threshold: >, >=, <, <=, == or !=."
        ),
    ] = None
    threshold: Annotated[
        float | None,
        Field(
            description="threshold: the value compared with, e.g. 0.1; rateOfChange: a change per second; "
            "burst: the number of events; anomaly: the number of standard deviations, e.g. 3."
        ),
    ] = None
    window: Annotated[
        Duration | None,
        Field(
            description="rateOfChange, absent, burst and anomaly: the time range looked at, e.g. 10m (the "
            "baseline of an anomaly, the span of a burst)."
        ),
    ] = None

    @model_validator(mode="after")
    def _fields_of_kind(self) -> ThresholdCondition:
        if self.kind in ("threshold", "rateOfChange") and (self.op is None or self.threshold is None):
            raise ValueError(f"a {self.kind} condition needs op and threshold")
        if self.kind != "threshold" and self.window is None:
            raise ValueError(f"a {self.kind} condition needs a window")
        if self.kind in ("burst", "anomaly") and self.threshold is None:
            raise ValueError(f"a {self.kind} condition needs threshold")
        return self


# Some d, w or y part with a whole number of at least 1 (1d, 2w, 1y, 1.5d): far above any minimum.
WHOLE_DAYS_PATTERN = "(^|[^0-9.])[1-9][0-9]*([.][0-9]+)?[dwy]"


class DetectionRuleSpec(Model):
    """DetectionRuleSpec: what to evaluate, how often, and what the incidents it opens look like.

    The rule fires while `expr` returns series (or the conditions hold) for at least `for`.
    """

    model_config = ConfigDict(
        **Model.model_config,
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.expr) != has(self.conditions)",
                    "message": "exactly one of expr or conditions must be set",
                },
                {
                    # CEL's duration() knows only ms, s, m and h. A value in d, w or y passes only with a whole
                    # day, week or year in it (at least 1d): 0d or 0.00001d would slip under the minimum.
                    "rule": f"!has(self.interval) || (self.interval.matches('{CEL_DURATION_PATTERN}') ? "
                    f"duration(self.interval) >= duration('{MIN_INTERVAL}') : "
                    f"self.interval.matches('{WHOLE_DAYS_PATTERN}'))",
                    "message": f"interval must be at least {MIN_INTERVAL} (a rule evaluated more often only loads "
                    "Prometheus); write fractions of a day in h, m or s",
                },
            ]
        },
    )

    expr: Annotated[
        PromQL | None,
        Field(
            description="PromQL expression, usually a comparison (e.g. job:error_ratio > 0.1): the rule fires for "
            "each series it returns, as a Prometheus alerting rule does. Set exactly one of expr and conditions."
        ),
    ] = None
    conditions: Annotated[
        list[ThresholdCondition] | None,
        Field(
            min_length=1,
            max_length=10,
            description="Structured alternative to expr: 1 to 10 queries compared with thresholds, combined as "
            "combine says. Set exactly one of expr and conditions.",
        ),
    ] = None
    combine: Annotated[
        Literal["all", "any"],
        Field(
            description="How conditions combine for a label set: all (the default: every condition holds) or any "
            "(at least one does)."
        ),
    ] = "all"
    for_: Annotated[
        Duration,
        Field(
            alias="for",
            description="How long a series must keep firing before an incident opens, e.g. 5m; until then it is "
            f"pending. Default 0s (at once). Units: {DURATION_UNITS}.",
        ),
    ] = "0s"
    interval: Annotated[
        Duration,
        Field(
            description=f"How often the operator evaluates the rule, e.g. 30s (the default); at least {MIN_INTERVAL}."
        ),
    ] = "30s"
    severity: Annotated[
        Severity,
        Field(description=f"Severity of the incidents the rule opens; default SEV3. {SEVERITY_LEVELS}"),
    ] = Severity.SEV3
    category: Annotated[
        Category | None,
        Field(
            description="Category of the incidents the rule opens: availability, performance, data-integrity, "
            "security, capacity, dependency, configuration or model-quality."
        ),
    ] = None
    service: Annotated[
        str | None,
        Field(
            max_length=253,
            description="The service the incidents concern, e.g. checkout; it drives correlation and the matching "
            "of runbooks and escalation policies.",
        ),
    ] = None
    labels: Annotated[
        LabelMap,
        Field(description="Labels added to every alert the rule raises, e.g. {team: payments}."),
    ] = {}
    annotations: Annotated[
        LabelMap,
        Field(
            description="Annotations added to every alert the rule raises, e.g. summary and description. Values "
            "are templates that may use {{ $labels.x }} and {{ $value }}."
        ),
    ] = {}
    group_by: Annotated[
        list[LabelName],
        Field(
            max_length=20,
            description="Label names whose values split the result into separate incidents, one per distinct "
            "label set, e.g. [namespace, service]. Empty: one incident for the whole rule.",
        ),
    ] = []
    runbook_ref: Annotated[
        LocalObjectReference | None,
        Field(
            description="The Runbook (in this namespace) for the incidents the rule opens. The rule is Ready only "
            "while it exists."
        ),
    ] = None
    escalation_policy_ref: Annotated[
        LocalObjectReference | None,
        Field(
            description="The EscalationPolicy (in this namespace) that pages people for the incidents the rule "
            "opens. The rule is Ready only while it exists."
        ),
    ] = None
    resolve_after: Annotated[
        Duration,
        Field(
            description="How long a series must stay inactive before its incident is resolved, e.g. 5m (the default)."
        ),
    ] = "5m"
    enabled: Annotated[
        bool,
        Field(description="When false, the rule is not evaluated and its state is Disabled. Default true."),
    ] = True

    @model_validator(mode="after")
    def _one_of_expr_or_conditions(self) -> DetectionRuleSpec:
        if (self.expr is None) == (self.conditions is None):
            raise ValueError("exactly one of expr or conditions must be set")
        whole_days = is_cel_duration(self.interval) or re.search(WHOLE_DAYS_PATTERN, self.interval) is not None
        if parse_duration(self.interval) < parse_duration(MIN_INTERVAL) or not whole_days:
            raise ValueError(
                f"interval must be at least {MIN_INTERVAL} (a rule evaluated more often only loads Prometheus); "
                "write fractions of a day in h, m or s"
            )
        return self


class SeriesState(StatusModel):
    """The state of one label set the rule returned."""

    labels: Annotated[LabelMap, Field(description="The label set of the series.")] = {}
    state: Annotated[
        Literal["inactive", "pending", "firing"],
        Field(
            description="inactive (not returned at the last evaluation), pending (returned for less than for) or "
            "firing (returned for at least for; an incident is open)."
        ),
    ]
    value: Annotated[float | None, Field(description="The series' value at the last evaluation.")] = None
    active_since: Annotated[
        Timestamp | None,
        Field(description="When the series started to be returned (became pending)."),
    ] = None
    last_evaluation: Annotated[Timestamp | None, Field(description="When the series was last evaluated.")] = None
    fired_at: Annotated[Timestamp | None, Field(description="When the series started firing.")] = None
    cleared_since: Annotated[
        Timestamp | None,
        Field(description="A firing series no longer returned: since when. It resolves once this is resolveAfter old."),
    ] = None


class DetectionRuleStatus(StatusModel):
    """DetectionRuleStatus is written by the operator: whether the rule is valid, and what it last found."""

    observed_generation: ObservedGeneration = None
    conditions: Annotated[
        list[Condition],
        Field(
            max_length=16,
            description="Ready is True (reason Valid) when the rule can be evaluated, False with a reason such as "
            "InvalidSpec, RunbookNotFound or EscalationPolicyNotFound otherwise.",
        ),
    ] = []
    state: Annotated[
        Literal["Inactive", "Pending", "Firing", "Disabled"] | None,
        Field(
            description="Firing when any series fires, else Pending when any is pending, else Inactive; Disabled "
            "when spec.enabled is false."
        ),
    ] = None
    series: Annotated[
        list[SeriesState],
        Field(max_length=100, description="The state of each label set the rule returned (at most 100)."),
    ] = []
    last_evaluation: Annotated[Timestamp | None, Field(description="When the rule was last evaluated.")] = None
    query: Annotated[
        str | None,
        Field(
            max_length=16384,
            description="The PromQL the operator sends to Prometheus: expr as written, or the conditions compiled.",
        ),
    ] = None
    firing: Annotated[int, Field(ge=0, description="How many series are firing (the FIRING column).")] = 0
    last_value: Annotated[
        float | None,
        Field(description="The value of the first series at the last evaluation; empty when none was returned."),
    ] = None
    evaluation_errors: Annotated[
        int,
        Field(ge=0, description="How many evaluations failed (a query error, Prometheus unreachable)."),
    ] = 0
    last_error: Annotated[
        str | None,
        Field(max_length=4096, description="The error of the last failed evaluation."),
    ] = None
