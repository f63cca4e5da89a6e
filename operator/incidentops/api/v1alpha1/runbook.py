"""Runbook: ordered, guarded remediation steps with a verification that must clear."""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from incidentops.api.v1alpha1.common import (
    Category,
    DNSLabel,
    Duration,
    LabelMap,
    Model,
    Severity,
    StatusModel,
    Timestamp,
    WorkloadReference,
)
from incidentops.api.v1alpha1.conditions import Condition


class Action(StrEnum):
    """The actions the remediation engine knows."""

    SCALE = "scale"
    RESTART = "restart"
    ROLLBACK = "rollback"
    DELETE_POD = "delete-pod"
    CORDON = "cordon"
    WAIT_ROLLOUT = "wait-rollout"
    PROMQL_CHECK = "promql-check"
    HTTP = "http"
    NOTIFY = "notify"


RISK_OF_ACTION: dict[Action, Literal["low", "medium", "high"]] = {
    Action.SCALE: "low",
    Action.RESTART: "low",
    Action.DELETE_POD: "low",
    Action.WAIT_ROLLOUT: "low",
    Action.PROMQL_CHECK: "low",
    Action.NOTIFY: "low",
    Action.HTTP: "low",
    Action.ROLLBACK: "medium",
    Action.CORDON: "medium",
}


class RunbookMatch(Model):
    """Which incidents the runbook applies to; every list given must match (empty means any)."""

    alertnames: Annotated[list[Annotated[str, Field(max_length=253)]], Field(max_length=50)] = []
    labels: Annotated[LabelMap, Field(description="Labels the incident's alerts must carry.")] = {}
    severities: Annotated[list[Severity], Field(max_length=5)] = []
    categories: Annotated[list[Category], Field(max_length=8)] = []
    services: Annotated[list[Annotated[str, Field(max_length=253)]], Field(max_length=50)] = []


class StepParams(Model):
    """Parameters; which ones apply depends on the action."""

    replicas: Annotated[int | None, Field(ge=0, le=10000)] = None
    revision: Annotated[int | None, Field(ge=1, description="rollback: target revision (default: pre-alert).")] = None
    query: Annotated[str | None, Field(max_length=8192)] = None
    url: Annotated[str | None, Field(pattern=r"^https?://", max_length=2048)] = None
    method: Literal["GET", "POST", "PUT", "DELETE"] | None = None
    expect_status: Annotated[int | None, Field(ge=100, le=599)] = None
    message: Annotated[str | None, Field(max_length=2048)] = None
    label_selector: Annotated[str | None, Field(max_length=1024)] = None


class RunbookStep(Model):
    """One action against one target."""

    name: DNSLabel
    action: Action
    target: WorkloadReference | None = None
    params: StepParams = StepParams()
    requires_approval: bool = False
    timeout: Duration = "5m"
    on_failure: Literal["abort", "continue", "rollback", "escalate"] = "abort"


class Verification(Model):
    """A PromQL expression that must return no series (the problem cleared) within the window."""

    query: Annotated[str, Field(min_length=1, max_length=8192)]
    window: Duration = "5m"
    timeout: Duration = "15m"


class Safety(Model):
    """Guards every automatic action passes before it runs."""

    cooldown: Duration = "10m"
    max_executions_per_hour: Annotated[int, Field(ge=0, le=100)] = 3
    max_scale: Annotated[int, Field(ge=1, le=10000)] = 20
    allowed_namespaces: Annotated[list[DNSLabel], Field(max_length=100)] = []
    dry_run_only: bool = False


class RunbookSpec(Model):
    """Match, steps, verification, autonomy and safety."""

    description: Annotated[str, Field(max_length=4096)] = ""
    match: RunbookMatch = RunbookMatch()
    steps: Annotated[
        list[RunbookStep],
        Field(
            min_length=1,
            max_length=20,
            json_schema_extra={
                "x-kubernetes-validations": [
                    {
                        "rule": "self.all(s, self.exists_one(t, t.name == s.name))",
                        "message": "step names must be unique",
                    }
                ]
            },
        ),
    ]
    verify: Verification | None = None
    automatic: bool = False
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.8
    risk: Literal["low", "medium", "high"] | None = None
    safety: Safety = Safety()

    @model_validator(mode="after")
    def _unique_step_names(self) -> RunbookSpec:
        repeated = sorted(name for name, n in Counter(s.name for s in self.steps).items() if n > 1)
        if repeated:
            raise ValueError(f"step names must be unique (repeated: {', '.join(repeated)})")
        return self

    def effective_risk(self) -> Literal["low", "medium", "high"]:
        """The declared risk, or the highest risk among the steps' actions."""
        if self.risk:
            return self.risk
        order = {"low": 0, "medium": 1, "high": 2}
        return max((RISK_OF_ACTION[Action(s.action)] for s in self.steps), key=order.__getitem__)


class ExecutionRecord(StatusModel):
    """The last run of the runbook."""

    incident: Annotated[str, Field(max_length=253)]
    at: Timestamp
    result: Literal["Succeeded", "Failed", "RolledBack", "Running"]


class RunbookStatus(StatusModel):
    """Executions and readiness."""

    observed_generation: Annotated[int | None, Field(ge=0)] = None
    conditions: Annotated[list[Condition], Field(max_length=16)] = []
    executions: Annotated[int, Field(ge=0)] = 0
    last_execution: ExecutionRecord | None = None
