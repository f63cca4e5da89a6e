"""DetectionRule: a PromQL expression or structured conditions the operator evaluates itself."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from incidentops.api.v1alpha1.common import (
    Category,
    Duration,
    LabelMap,
    LocalObjectReference,
    Model,
    Severity,
    StatusModel,
    Timestamp,
)
from incidentops.api.v1alpha1.conditions import Condition

PromQL = Annotated[str, Field(min_length=1, max_length=8192)]
LabelName = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=128)]


class ThresholdCondition(Model):
    """A query compared with a threshold; true for the series that pass."""

    query: PromQL
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    threshold: float


class DetectionRuleSpec(Model):
    """Firing while `expr` returns series (or the conditions hold) for at least `for`."""

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

    expr: PromQL | None = None
    conditions: Annotated[list[ThresholdCondition] | None, Field(min_length=1, max_length=10)] = None
    combine: Literal["all", "any"] = "all"
    for_: Annotated[Duration, Field(alias="for")] = "0s"
    interval: Duration = "30s"
    severity: Severity = Severity.SEV3
    category: Category | None = None
    service: Annotated[str | None, Field(max_length=253)] = None
    labels: LabelMap = {}
    annotations: Annotated[LabelMap, Field(description="Templates; {{ $labels.x }} and {{ $value }}.")] = {}
    group_by: Annotated[list[LabelName], Field(max_length=20)] = []
    runbook_ref: LocalObjectReference | None = None
    escalation_policy_ref: LocalObjectReference | None = None
    resolve_after: Duration = "5m"
    enabled: bool = True

    @model_validator(mode="after")
    def _one_of_expr_or_conditions(self) -> DetectionRuleSpec:
        if (self.expr is None) == (self.conditions is None):
            raise ValueError("exactly one of expr or conditions must be set")
        return self


class SeriesState(StatusModel):
    """The state of one label set the rule returned."""

    labels: LabelMap = {}
    state: Literal["inactive", "pending", "firing"]
    value: float | None = None
    active_since: Timestamp | None = None
    last_evaluation: Timestamp | None = None


class DetectionRuleStatus(StatusModel):
    """Evaluation results and readiness."""

    observed_generation: Annotated[int | None, Field(ge=0)] = None
    conditions: Annotated[list[Condition], Field(max_length=16)] = []
    state: Literal["Inactive", "Pending", "Firing", "Disabled"] | None = None
    series: Annotated[list[SeriesState], Field(max_length=100)] = []
    last_evaluation: Timestamp | None = None
    last_value: float | None = None
    evaluation_errors: Annotated[int, Field(ge=0)] = 0
    last_error: Annotated[str | None, Field(max_length=4096)] = None
