"""DetectionRule: a PromQL expression or structured conditions the operator evaluates itself."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from incidentops.api.v1alpha1.common import (
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
)
from incidentops.api.v1alpha1.conditions import Condition

PromQL = Annotated[str, Field(min_length=1, max_length=8192)]
LabelName = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=128)]


class ThresholdCondition(Model):
    """A query compared with a threshold; true for the series that pass."""

    query: Annotated[
        PromQL,
        Field(
            description="PromQL expression whose value is compared, e.g. "
            'sum by (service) (rate(http_requests_total{code=~"5.."}[5m])).'
        ),
    ]
    op: Annotated[
        Literal[">", ">=", "<", "<=", "==", "!="],
        Field(description="How the query's value is compared with threshold: >, >=, <, <=, == or !=."),
    ]
    threshold: Annotated[float, Field(description="The value the query is compared with, e.g. 0.1.")]


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
                }
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
        Field(description="How often the operator evaluates the rule, e.g. 30s (the default)."),
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
