"""Runbook: ordered, guarded remediation steps with a verification that must clear.

Its length is field descriptions and validators: they are what `kubectl explain runbook` shows and
what the CRD schema enforces, and they belong next to the fields they describe.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from incidentops.api.v1alpha1.common import (
    DURATION_UNITS,
    Category,
    DNSLabel,
    Duration,
    LabelMap,
    Model,
    ObservedGeneration,
    Severity,
    StatusModel,
    Timestamp,
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

    alertnames: Annotated[
        list[Annotated[str, Field(max_length=253)]],
        Field(
            max_length=50,
            description="Alert names (the alertname label), e.g. [HighErrorRate]: the runbook applies when one of "
            "the incident's alerts has one of them. Empty matches any.",
        ),
    ] = []
    labels: Annotated[
        LabelMap,
        Field(
            description="Labels the incident's alerts must carry with exactly these values, e.g. {team: payments}. "
            "Empty matches any."
        ),
    ] = {}
    severities: Annotated[
        list[Severity],
        Field(
            max_length=5,
            description="Incident severities the runbook applies to, e.g. [SEV1, SEV2]. Empty matches any.",
        ),
    ] = []
    categories: Annotated[
        list[Category],
        Field(
            max_length=8,
            description="Incident categories the runbook applies to (availability, performance, data-integrity, "
            "security, capacity, dependency, configuration, model-quality). Empty matches any.",
        ),
    ] = []
    services: Annotated[
        list[Annotated[str, Field(max_length=253)]],
        Field(
            max_length=50,
            description="Services (an incident's spec.service) the runbook applies to, e.g. [checkout]. "
            "Empty matches any.",
        ),
    ] = []


class StepTarget(Model):
    """What a step acts on: a Deployment of the Runbook's namespace, or a Node (cordon)."""

    kind: Annotated[
        Literal["Deployment", "Node"],
        Field(
            description="Deployment (the default) for scale, restart, rollback, wait-rollout and delete-pod; Node "
            "for cordon."
        ),
    ] = "Deployment"
    name: Annotated[
        str | None,
        Field(
            max_length=253,
            description="Name of the Deployment or Node, e.g. checkout. Left out, the step acts on the incident's "
            "affected Deployment (or, for cordon, the node its alert names).",
        ),
    ] = None
    namespace: Annotated[
        DNSLabel | None,
        Field(
            description="The Deployment's namespace; it can only be the Runbook's own namespace (runbooks act on "
            "incidents and workloads of their namespace only), so it is best left out. Not used for Nodes."
        ),
    ] = None


class StepParams(Model):
    """Parameters; which ones apply depends on the action."""

    replicas: Annotated[
        int | None,
        Field(ge=0, le=10000, description="scale: the replica count to set; at most safety.maxScale."),
    ] = None
    revision: Annotated[
        int | None,
        Field(
            ge=1,
            description="rollback: the revision to roll back to. Default: the revision that was live before the "
            "alert began.",
        ),
    ] = None
    query: Annotated[
        str | None,
        Field(
            max_length=8192,
            description="promql-check: the PromQL expression to evaluate; by default the step succeeds when it "
            "returns no series, like verify.query (see passWhen).",
        ),
    ] = None
    pass_when: Annotated[
        Literal["empty", "series"] | None,
        Field(
            description="promql-check: empty (the default) passes when the query returns no series, series when it "
            "returns at least one. The step keeps checking until it passes or times out."
        ),
    ] = None
    url: Annotated[
        str | None,
        Field(pattern=r"^https?://", max_length=2048, description="http: the URL to call (http:// or https://)."),
    ] = None
    method: Annotated[
        Literal["GET", "POST", "PUT", "DELETE"] | None,
        Field(description="http: the request method, GET (the default), POST, PUT or DELETE."),
    ] = None
    expect_status: Annotated[
        int | None,
        Field(
            ge=100,
            le=599,
            description="http: the response status code that counts as success, e.g. 200. Default: any 2xx.",
        ),
    ] = None
    message: Annotated[
        str | None,
        Field(max_length=2048, description="notify: the text sent to the incident's notification channels."),
    ] = None
    label_selector: Annotated[
        str | None,
        Field(
            max_length=1024,
            description="delete-pod: a label selector choosing the pods to delete in the target's namespace, "
            "e.g. app=checkout,tier=web (instead of target.name).",
        ),
    ] = None


class RunbookStep(Model):
    """One action against one target."""

    name: Annotated[
        DNSLabel,
        Field(
            description="Step name, unique in the runbook (a DNS label, e.g. rollback). An Incident's "
            "spec.approvals name the steps they approve by it."
        ),
    ]
    action: Annotated[
        Action,
        Field(
            description="What the step does: scale (set replicas), restart (rollout restart), rollback (to the "
            "revision live before the alert began), delete-pod, cordon (a Node), wait-rollout (until the "
            "rollout completes), promql-check (a query that must return nothing), http (call a URL) or notify "
            "(send a message)."
        ),
    ]
    target: Annotated[
        StepTarget | None,
        Field(
            description="What the action applies to: a Deployment of the Runbook's namespace for scale, restart, "
            "rollback, wait-rollout and delete-pod (its pods), a Node for cordon. Left out: the incident's "
            "affected Deployment."
        ),
    ] = None
    params: Annotated[
        StepParams,
        Field(description="Parameters of the action; each one says which action it is for."),
    ] = StepParams()
    requires_approval: Annotated[
        bool,
        Field(
            description="When true, the step waits until a responder approves it (an entry in the Incident's "
            "spec.approvals naming this step), even in an automatic runbook. Default false."
        ),
    ] = False
    timeout: Annotated[
        Duration,
        Field(
            description=f"How long the step may take before it counts as failed, e.g. 5m (the default). "
            f"Units: {DURATION_UNITS}."
        ),
    ] = "5m"
    on_failure: Annotated[
        Literal["abort", "continue", "rollback", "escalate"],
        Field(
            description="What happens when the step fails or times out: abort (the default: stop the run), "
            "continue (go on with the next step), rollback (undo the steps done so far, then stop) or escalate "
            "(stop and escalate the incident to its next level)."
        ),
    ] = "abort"


class Verification(Model):
    """A PromQL expression that must return no series (the problem cleared) within the window."""

    query: Annotated[
        str,
        Field(
            min_length=1,
            max_length=8192,
            description="PromQL expression that returns series while the problem persists, e.g. "
            'job:error_ratio{service="checkout"} > 0.01. The run succeeded once it has returned none for the '
            "whole window.",
        ),
    ]
    window: Annotated[
        Duration,
        Field(
            description="How long the query must keep returning no series for the problem to count as cleared, "
            "e.g. 5m (the default)."
        ),
    ] = "5m"
    timeout: Annotated[
        Duration,
        Field(
            description="How long after the last step the problem may take to clear before the run counts as "
            "failed, e.g. 15m (the default)."
        ),
    ] = "15m"
    on_failure: Annotated[
        Literal["undo", "keep"],
        Field(
            description="What happens to the steps' changes when verification fails: undo (the default: scale back, "
            "roll forward to the template replaced, uncordon) or keep. Either way the incident escalates."
        ),
    ] = "undo"


class Safety(Model):
    """Guards every automatic action passes before it runs."""

    cooldown: Annotated[
        Duration,
        Field(
            description="Minimum time between two runs of this runbook against the same target, e.g. 10m "
            f"(the default). Units: {DURATION_UNITS}."
        ),
    ] = "10m"
    max_executions_per_hour: Annotated[
        int,
        Field(
            ge=0,
            le=100,
            description="At most this many runs of the runbook in any hour, across all incidents; default 3. "
            "0 blocks every run.",
        ),
    ] = 3
    max_scale: Annotated[
        int,
        Field(ge=1, le=10000, description="The highest replica count a scale step may set; default 20."),
    ] = 20
    allowed_namespaces: Annotated[
        list[DNSLabel],
        Field(
            max_length=100,
            description="Namespaces whose workloads the steps may act on, e.g. [shop]. Empty allows any namespace.",
        ),
    ] = []
    dry_run_only: Annotated[
        bool,
        Field(
            description="When true, every step runs as a server-side dry run only: the planned change is recorded, "
            "nothing is modified. Default false."
        ),
    ] = False


class RunbookSpec(Model):
    """RunbookSpec: which incidents the runbook is for, its steps, how success is verified, and its guards."""

    description: Annotated[
        str,
        Field(max_length=4096, description="Free text for responders: what the runbook does and when to use it."),
    ] = ""
    match: Annotated[
        RunbookMatch,
        Field(
            description="Which incidents the runbook applies to: every list given must match, an empty list "
            "matches any."
        ),
    ] = RunbookMatch()
    steps: Annotated[
        list[RunbookStep],
        Field(
            min_length=1,
            max_length=20,
            description="The steps, run in order (1 to 20), each one action against one target. Step names must "
            "be unique.",
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
    verify: Annotated[
        Verification | None,
        Field(
            description="A check that the problem cleared after the steps ran. Without it, a run succeeds when "
            "every step did."
        ),
    ] = None
    automatic: Annotated[
        bool,
        Field(
            description="When true, the operator runs the runbook on its own if the triage confidence is at least "
            "minConfidence and the safety guards pass. Otherwise (the default, false) every step waits for a "
            "responder's approval in the Incident's spec.approvals."
        ),
    ] = False
    min_confidence: Annotated[
        float,
        Field(
            ge=0,
            le=1,
            description="The lowest triage confidence, 0 to 1, at which an automatic runbook runs without "
            "approval; default 0.8.",
        ),
    ] = 0.8
    risk: Annotated[
        Literal["low", "medium", "high"] | None,
        Field(
            description="How risky running the runbook is: low, medium or high. Default: the highest risk of its "
            "steps' actions (rollback and cordon are medium, the others low)."
        ),
    ] = None
    safety: Annotated[
        Safety,
        Field(
            description="Guards every run must pass: cooldown, hourly limit, scale limit, allowed namespaces, "
            "dry-run mode."
        ),
    ] = Safety()
    approvers: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=253)]],
        Field(
            max_length=50,
            description="Who may approve the steps of a high-risk runbook (names as written in spec.approvals[].by, "
            "e.g. alice). A high-risk runbook without approvers cannot be approved. Medium and low risk accept "
            "any one approval.",
        ),
    ] = []

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


WORKLOAD_ACTIONS = frozenset({Action.SCALE, Action.RESTART, Action.ROLLBACK, Action.WAIT_ROLLOUT, Action.DELETE_POD})


def step_refusal(step: RunbookStep, namespace: str) -> tuple[str, str] | None:
    """Why a step of a Runbook in `namespace` would be refused at every run (reason, message); None: it may run.

    The run applies these same rules (remediation.targets), so what readiness calls Ready can run.
    """
    action = Action(step.action)
    target = step.target
    if action == Action.CORDON:
        if target is not None and target.kind != "Node":
            return "InvalidTarget", "cordon acts on a Node (target.kind: Node)"
        return None
    if target is None:
        return None
    if action in WORKLOAD_ACTIONS and target.kind != "Deployment":
        return "InvalidTarget", f"{action} acts on Deployments, not {target.kind}s"
    if action in WORKLOAD_ACTIONS and target.namespace and target.namespace != namespace:
        return (
            "OtherNamespace",
            f"the step targets namespace {target.namespace}; runbooks act only in their own ({namespace})",
        )
    return None


class ExecutionRecord(StatusModel):
    """The last run of the runbook."""

    incident: Annotated[str, Field(max_length=253, description="Name of the Incident the run was for.")]
    at: Annotated[Timestamp, Field(description="When the run started (RFC 3339).")]
    result: Annotated[
        Literal["Succeeded", "Failed", "RolledBack", "Running"],
        Field(description="Running, Succeeded, Failed, or RolledBack (failed and its changes were undone)."),
    ]


class RunbookStatus(StatusModel):
    """RunbookStatus is written by the operator: whether the runbook is valid, and its runs."""

    observed_generation: ObservedGeneration = None
    conditions: Annotated[
        list[Condition],
        Field(
            max_length=16,
            description="Ready is True (reason Valid) when the runbook can run, False with a reason such as "
            "InvalidSpec, MissingParameter, InvalidTarget, ExceedsMaxScale or NamespaceNotAllowed otherwise.",
        ),
    ] = []
    executions: Annotated[int, Field(ge=0, description="How many times the runbook has run, in total.")] = 0
    succeeded: Annotated[int, Field(ge=0, description="Runs that succeeded (verified, or every step done).")] = 0
    failed: Annotated[int, Field(ge=0, description="Runs that failed (undone or not).")] = 0
    success_rate: Annotated[
        str | None,
        Field(max_length=8, description="succeeded / (succeeded + failed), as a percentage, e.g. 75%."),
    ] = None
    last_execution: Annotated[ExecutionRecord | None, Field(description="The most recent run.")] = None
