"""approve and mitigate: which steps a responder may approve, which runbooks could run, and the spec they write."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from incidentops.api.v1alpha1.incident import Approval, StepState
from incidentops.api.v1alpha1.runbook import Action, RunbookSpec, RunbookStep
from incidentops.cli.actions import Incident, Obj, Refused, check_open
from incidentops.kube import KubeClient, KubeError
from incidentops.remediation.targets import NoTarget, resolve
from incidentops.triage.selection import IncidentFacts, matches, specificity

ACTIVE = ("Running", "Verifying", "Undoing")


def steps_to_approve(incident: Incident, wanted: Sequence[str], by: str) -> list[str]:
    """The steps this approval covers (those awaiting one when none is named); refuses what makes no sense."""
    check_open(incident)
    remediation = incident.status.remediation
    if remediation is None or not remediation.steps:
        raise Refused(f'incident "{incident.name}" has no runbook to approve (see: kubectl incident mitigate --list)')
    names = [s.name for s in remediation.steps]
    waiting = [s.name for s in remediation.steps if s.state == StepState.AWAITING_APPROVAL]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise Refused(f"runbook {remediation.runbook} has no step {', '.join(unknown)} (its steps: {', '.join(names)})")
    chosen = list(wanted) or waiting
    if not chosen:
        raise Refused(f'no step of incident "{incident.name}" waits for an approval (remediation: {remediation.phase})')
    done = {a.step for a in incident.spec.approvals if a.by == by}
    fresh = [c for c in chosen if c not in done]
    if not fresh:
        raise Refused(f"{by} already approved {', '.join(chosen)}")
    return fresh


def approval_patch(incident: Incident, steps: Iterable[str], by: str, now: datetime) -> Obj:
    """spec.approvals with these added (a merge patch replaces the list whole; the write is guarded)."""
    runbook = incident.status.remediation.runbook if incident.status.remediation else None
    approvals = [*incident.spec.approvals, *(Approval(step=s, by=by, at=now, runbook=runbook) for s in steps)]
    if len(approvals) > 50:
        raise Refused(f'incident "{incident.name}" already holds 50 approvals, the most it keeps')
    return {"spec": {"approvals": [a.wire() for a in approvals]}}


def check_mitigate(incident: Incident, runbook: str) -> None:
    check_open(incident)
    remediation = incident.status.remediation
    if remediation is not None and remediation.phase in ACTIVE:
        raise Refused(f"runbook {remediation.runbook} is {remediation.phase} for this incident; wait until it ends")
    if remediation is not None and remediation.runbook == runbook and incident.spec.runbook_ref is not None:
        raise Refused(f"runbook {runbook} was already chosen for this incident ({remediation.phase})")


def would_change(kube: KubeClient, incident: Incident, runbook: RunbookSpec) -> list[str]:
    """What each step would change now, from the same server-side dry runs the operator makes."""
    # The actions (httpx, the egress checks...) load only for this verb: every plugin call pays for its imports.
    from incidentops.remediation.actions import REGISTRY  # noqa: PLC0415
    from incidentops.remediation.actions.base import ActionError, Context  # noqa: PLC0415

    facts = IncidentFacts.of(incident.spec, incident.status)
    context = Context(
        incident=f"{incident.namespace}/{incident.name}",
        alert_began=incident.status.started_at or incident.status.detected_at,
    )
    lines = []
    for step in runbook.steps:
        try:
            target = resolve(step, incident.namespace, incident.spec, facts.label_sets)
            plan = REGISTRY[Action(step.action)].plan(kube, target, step.params.wire(), "dry-run", context)
        except NoTarget as missing:
            lines.append(f"{step.name}: cannot run: {missing}")
            continue
        except (KubeError, ActionError) as error:
            lines.append(f"{step.name}: dry run failed: {error}")
            continue
        if plan.refusal == "NoPrometheus":
            lines.append(f"{step.name}: {step.action}, checked by the operator on Prometheus")
        elif plan.refusal:
            lines.append(f"{step.name}: refused ({plan.refusal}): {plan.reason}")
        elif plan.diff:
            lines += [f"{step.name}: {line}" for line in plan.diff]
        else:
            lines.append(f"{step.name}: {plan.reason or 'no change'}")
    return lines


@dataclass(frozen=True)
class Candidate:
    name: str
    fits: bool
    specificity: int
    risk: str
    automatic: bool
    steps: list[str]
    problem: str = ""
    spec: RunbookSpec | None = None


def _step_line(step: RunbookStep) -> str:
    target = step.target.name if step.target is not None and step.target.name else "the incident's workload"
    params = step.params.wire()
    extra = f" {params}" if params else ""
    gate = " (needs approval)" if step.requires_approval else ""
    return f"{step.name}: {step.action} {target}{extra}{gate}"


def candidates(incident: Incident, runbooks: Iterable[Obj]) -> list[Candidate]:
    """Every runbook in the namespace, matching ones first (most specific first), with what each would do."""
    facts = IncidentFacts.of(incident.spec, incident.status)
    found = []
    for obj in runbooks:
        name = str(obj["metadata"]["name"])
        try:
            spec = RunbookSpec.model_validate(obj.get("spec") or {})
        except ValidationError as error:
            found.append(Candidate(name, False, -1, "?", False, [], f"invalid: {error.errors()[0]['msg']}"))
            continue
        steps = [_step_line(s) for s in spec.steps]
        fits = matches(spec.match, facts)
        found.append(
            Candidate(name, fits, specificity(spec.match), spec.effective_risk(), spec.automatic, steps, spec=spec)
        )
    return sorted(found, key=lambda c: (not c.fits, -c.specificity, c.name))
