"""May a step act alone, only after a human approves, or not at all? Pure decisions over plain facts.

Each guard that holds a step back says why, with a stable reason for status, Events and metrics:
- refused, whatever anyone approves: the target opted out (`incidentops.dev/remediation: disabled`),
  its namespace is not allowed, a scale beyond `safety.maxScale`;
- approval needed: the runbook is not automatic, its risk is above the ceiling, triage is not
  confident enough, the category is security (or a network partition: humans first), the target
  is in its cooldown, the runbook ran `maxExecutionsPerHour` times in the last hour, or the
  cluster's budget of automatic actions is spent (a storm: act on a few, leave the rest to humans).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from incidentops.api.v1alpha1.common import parse_duration
from incidentops.api.v1alpha1.incident import Approval
from incidentops.api.v1alpha1.runbook import Action, RunbookSpec

Risk = Literal["low", "medium", "high"]
RISK_ORDER: dict[Risk, int] = {"low": 0, "medium": 1, "high": 2}
OPT_OUT_ANNOTATION = "incidentops.dev/remediation"
NO_AUTOMATIC_CATEGORIES = frozenset({"security"})
NETWORK_PARTITION_LABEL = "network-partition"


@dataclass(frozen=True)
class PastRun:
    """A run of a runbook step against a target, from status (across incidents and restarts)."""

    runbook: str
    target: str
    at: datetime
    automatic: bool
    incident: str = ""
    drill: bool = False  # a live simulation's run: never held against a real incident


@dataclass(frozen=True)
class Proposal:
    """A step about to run, and what is known around it."""

    runbook_name: str
    runbook: RunbookSpec
    action: Action
    target: str
    target_namespace: str
    target_opted_out: bool
    category: str | None
    confidence: float | None
    now: datetime
    history: Sequence[PastRun] = ()
    planned_replicas: int | None = None
    network_partition: bool = False
    risk_ceiling: Risk = "low"
    storm_budget: int = 3
    storm_window: timedelta = timedelta(minutes=10)


@dataclass(frozen=True)
class Hold:
    """One guard holding the step back."""

    reason: str
    message: str


@dataclass(frozen=True)
class Verdict:
    """automatic: act now; approval: wait for a human; refused: never, whatever is approved."""

    mode: Literal["automatic", "approval", "refused"]
    holds: list[Hold] = field(default_factory=list)


def _refusals(p: Proposal) -> list[Hold]:
    holds = []
    if p.target_opted_out:
        holds.append(Hold("TargetOptedOut", f"{p.target} is annotated {OPT_OUT_ANNOTATION}: disabled"))
    allowed = p.runbook.safety.allowed_namespaces
    if allowed and p.target_namespace not in allowed:
        holds.append(Hold("NamespaceNotAllowed", f"namespace {p.target_namespace} is not in {', '.join(allowed)}"))
    limit = p.runbook.safety.max_scale
    if p.planned_replicas is not None and p.planned_replicas > limit:
        holds.append(Hold("AboveMaxScale", f"scaling to {p.planned_replicas} exceeds safety.maxScale {limit}"))
    return holds


def _approvals(p: Proposal) -> list[Hold]:
    holds = []
    runbook = p.runbook
    if not runbook.automatic:
        holds.append(Hold("NotAutomatic", f"runbook {p.runbook_name} is not automatic"))
    risk = runbook.effective_risk()
    if RISK_ORDER[risk] > RISK_ORDER[p.risk_ceiling]:
        holds.append(Hold("RiskAboveCeiling", f"{risk} risk is above the automatic ceiling ({p.risk_ceiling})"))
    if p.confidence is None or p.confidence < runbook.min_confidence:
        shown = "unknown" if p.confidence is None else f"{p.confidence:.2f}"
        holds.append(Hold("LowConfidence", f"triage confidence {shown} is below {runbook.min_confidence:.2f}"))
    if p.category in NO_AUTOMATIC_CATEGORIES or p.network_partition:
        what = "a network partition" if p.network_partition else f"a {p.category} incident"
        holds.append(Hold("HumansFirst", f"{what}: never automatic"))
    cooldown = parse_duration(runbook.safety.cooldown)
    recent = [r for r in p.history if r.target == p.target and p.now - r.at < cooldown]
    if recent:
        until = max(r.at for r in recent) + cooldown
        holds.append(
            Hold(
                "Cooldown",
                f"{p.target} was acted on at {max(r.at for r in recent):%H:%M:%S}; cooldown until {until:%H:%M:%S}",
            )
        )
    # Runs, not steps: a run is one incident's, however many steps it has (an unnamed one counts alone).
    hourly = _runs(r for r in p.history if r.runbook == p.runbook_name and p.now - r.at < timedelta(hours=1))
    if hourly >= runbook.safety.max_executions_per_hour:
        holds.append(Hold("RateLimited", f"{hourly} runs in the last hour (maxExecutionsPerHour)"))
    storm = _runs(r for r in p.history if r.automatic and p.now - r.at < p.storm_window)
    if storm >= p.storm_budget:
        holds.append(Hold("StormBudgetSpent", f"{storm} automatic runs in {p.storm_window}: humans decide"))
    return holds


def _runs(history: Iterable[PastRun]) -> int:
    return len({r.incident or f"{r.target}@{r.at.isoformat()}" for r in history})


def network_partition(alertnames: Iterable[str], label_sets: Iterable[Mapping[str, str]]) -> bool:
    """An alert about a network partition (by name, or a network-partition label set to true): humans first."""
    if any("networkpartition" in name.lower().replace("_", "").replace("-", "") for name in alertnames):
        return True
    return any(
        str(labels.get(key, "")).lower() == "true"
        for labels in label_sets
        for key in (NETWORK_PARTITION_LABEL, NETWORK_PARTITION_LABEL.replace("-", "_"))
    )


def decide(proposal: Proposal) -> Verdict:
    """The verdict for one step, with every guard that holds it back."""
    refusals = _refusals(proposal)
    if refusals:
        return Verdict("refused", refusals)
    holds = _approvals(proposal)
    return Verdict("approval" if holds else "automatic", holds)


def accepted_approvals(
    runbook: RunbookSpec, approvals: Iterable[Approval], since: datetime | None = None, name: str | None = None
) -> dict[str, str]:
    """Step name → who approved it, for this run only (approvals written before the runbook was chosen
    were for another run, and one naming another runbook is for that runbook: a right to approve one runbook
    must not carry over to another's step of the same name); for a high-risk runbook only approvals by its
    named approvers count."""
    high = runbook.effective_risk() == "high"
    accepted: dict[str, str] = {}
    for approval in approvals:
        if approval.runbook is not None and name is not None and approval.runbook != name:
            continue
        if high and approval.by not in runbook.approvers:
            continue
        if since is not None and approval.at is not None and approval.at < since.replace(microsecond=0):
            continue
        accepted.setdefault(approval.step, approval.by)
    return accepted
