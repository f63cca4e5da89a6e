"""The four kinds: names, scopes, printer columns, and their spec/status models in one table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from incidentops.api.v1alpha1.common import API_VERSION, GROUP, VERSION
from incidentops.api.v1alpha1.detectionrule import DetectionRuleSpec, DetectionRuleStatus
from incidentops.api.v1alpha1.escalationpolicy import EscalationPolicySpec, EscalationPolicyStatus
from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentStatus
from incidentops.api.v1alpha1.postmortem import PostmortemSpec, PostmortemStatus
from incidentops.api.v1alpha1.runbook import RunbookSpec, RunbookStatus


@dataclass(frozen=True)
class PrinterColumn:
    """An additionalPrinterColumn of the CRD."""

    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str = ""

    def wire(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.priority:
            column["priority"] = self.priority
        if self.description:
            column["description"] = self.description
        return column


@dataclass(frozen=True)
class Kind:
    """One custom resource kind."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    columns: tuple[PrinterColumn, ...]
    description: str
    group: str = GROUP
    version: str = VERSION

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def api_version(self) -> str:
        return API_VERSION


AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")
READY = PrinterColumn("Ready", ".status.conditions[?(@.type=='Ready')].status")
REASON = PrinterColumn("Reason", ".status.conditions[?(@.type=='Ready')].reason", priority=1)

INCIDENT = Kind(
    kind="Incident",
    plural="incidents",
    short_names=("inc",),
    spec_model=IncidentSpec,
    status_model=IncidentStatus,
    description="An incident: alerts deduplicated into one episode, driven from detection to postmortem.",
    columns=(
        PrinterColumn(
            "Severity", ".status.severity", description="Current severity (worst alert, or as a human set it)"
        ),
        PrinterColumn("State", ".status.state"),
        PrinterColumn("Service", ".spec.service"),
        PrinterColumn("Alerts", ".status.alerts.count", "integer"),
        PrinterColumn(
            "Level",
            ".status.escalation.summary",
            description="Escalation level notified last; none when nobody will be paged",
        ),
        PrinterColumn(
            "Remediation", ".status.remediation.phase", description="Where the runbook run stands (Verified, ...)"
        ),
        PrinterColumn(
            "Root", ".status.cascade.root", description="The upstream incident this one is a symptom of, if any"
        ),
        PrinterColumn("Title", ".spec.title", priority=1),
        PrinterColumn("Category", ".status.triage.category", priority=1),
        PrinterColumn("Triage", ".status.triage.source", priority=1, description="rules or llm"),
        PrinterColumn("Assignee", ".spec.assignee", priority=1),
        AGE,
    ),
)
DETECTION_RULE = Kind(
    kind="DetectionRule",
    plural="detectionrules",
    short_names=("dr",),
    spec_model=DetectionRuleSpec,
    status_model=DetectionRuleStatus,
    description="A PromQL rule (or structured conditions) the operator evaluates to open incidents.",
    columns=(
        PrinterColumn("Severity", ".spec.severity"),
        PrinterColumn("State", ".status.state"),
        PrinterColumn("Firing", ".status.firing", "integer", description="Series firing"),
        PrinterColumn("Errors", ".status.evaluationErrors", "integer", description="Failed evaluations"),
        PrinterColumn("Last Evaluation", ".status.lastEvaluation", "date"),
        READY,
        REASON,
        AGE,
    ),
)
RUNBOOK = Kind(
    kind="Runbook",
    plural="runbooks",
    short_names=("rb",),
    spec_model=RunbookSpec,
    status_model=RunbookStatus,
    description="Guarded, verified remediation steps matched to incidents.",
    columns=(
        PrinterColumn("Automatic", ".spec.automatic", "boolean"),
        PrinterColumn("Executions", ".status.executions", "integer"),
        PrinterColumn("Success", ".status.successRate", description="Share of finished runs that succeeded"),
        PrinterColumn("Last", ".status.lastExecution.result"),
        READY,
        REASON,
        AGE,
    ),
)
ESCALATION_POLICY = Kind(
    kind="EscalationPolicy",
    plural="escalationpolicies",
    short_names=("escpol",),
    spec_model=EscalationPolicySpec,
    status_model=EscalationPolicyStatus,
    description="On-call levels notified in turn until someone acknowledges.",
    columns=(
        PrinterColumn("Levels", ".status.levelCount", "integer"),
        READY,
        REASON,
        AGE,
    ),
)

POSTMORTEM = Kind(
    kind="Postmortem",
    plural="postmortems",
    short_names=("pm",),
    spec_model=PostmortemSpec,
    status_model=PostmortemStatus,
    description="The blameless review of a resolved incident: written once by the operator, then the team's.",
    columns=(
        PrinterColumn("Incident", ".spec.incidentRef.name"),
        PrinterColumn("Severity", ".spec.severity"),
        PrinterColumn("State", ".spec.state", description="Draft, InReview or Published"),
        PrinterColumn("Open", ".status.openActionItems", "integer", description="Action items not done"),
        PrinterColumn("Title", ".spec.title", priority=1),
        AGE,
    ),
)

KINDS: tuple[Kind, ...] = (INCIDENT, DETECTION_RULE, RUNBOOK, ESCALATION_POLICY, POSTMORTEM)
KIND_BY_NAME: dict[str, Kind] = {k.kind: k for k in KINDS}
