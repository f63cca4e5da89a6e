"""The remediation step engine: decide, record, act, as one pure function.

`decide` takes what status says, what the shell observed about the step at hand (its dry-run
plan and guard verdict, or whether its effect is already there) and the time, and returns the
next status plus what to do. The shell writes that status first (resourceVersion precondition),
then acts, then calls `decide` again with the result. A step's key is written to status before
the step acts, so after a crash a Running step is checked ("happened?") before anything is
done again: an action happens once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from incidentops.api.v1alpha1.common import parse_duration
from incidentops.api.v1alpha1.incident import RemediationStatus, RemediationStepStatus, StepState
from incidentops.api.v1alpha1.runbook import Action, RunbookSpec, RunbookStep
from incidentops.concern import Notice
from incidentops.remediation.guards import Verdict

PROBES = frozenset({Action.WAIT_ROLLOUT, Action.PROMQL_CHECK})
UNDOABLE = frozenset({Action.SCALE, Action.ROLLBACK, Action.CORDON})
DONE = frozenset({StepState.SUCCEEDED, StepState.SKIPPED})
# A Running step whose effect is not in the cluster yet is in doubt only after this long: until
# then the process (or replica) that recorded it may still be acting on it.
IN_DOUBT_AFTER = timedelta(seconds=45)  # longer than any single apiserver call may take (30 s)


@dataclass(frozen=True)
class Observed:
    """What the shell saw of the step the engine asked about (`Decision.needs`)."""

    diff: list[str] = field(default_factory=list)
    before: Mapping[str, str] = field(default_factory=dict)
    refusal: str | None = None
    message: str = ""
    nothing_to_do: bool = False
    verdict: Verdict | None = None
    happened: bool | None = None
    error: str | None = None
    target: str | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class Act:
    """Apply the step's plan under this key (only after the status carrying the key is written)."""

    step: str
    key: str


@dataclass
class Decision:
    """The next status, what to do, and which step's plan or effect the shell should look at next."""

    status: RemediationStatus
    effects: list[Act] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    needs: str | None = None


def start(runbook_name: str | None, runbook: RunbookSpec | None, reason: str) -> RemediationStatus:
    """The remediation status for a runbook choice (or for none)."""
    if runbook_name is None or runbook is None:
        return RemediationStatus(phase="NoRunbook", reason=reason)
    steps = [RemediationStepStatus(name=s.name, action=str(s.action), state=StepState.PENDING) for s in runbook.steps]
    return RemediationStatus(runbook=runbook_name, phase="Running", reason=reason, steps=steps)


def _replace(status: RemediationStatus, index: int, **changes: object) -> RemediationStatus:
    steps = list(status.steps)
    steps[index] = steps[index].model_copy(update=changes)
    return status.model_copy(update={"steps": steps})


def _fail_run(decision: Decision, runbook: RunbookSpec, failed: RunbookStep, uid: str) -> Decision:
    """A step failed and its onFailure stops the run: undo what was done (phase Undoing), or just stop."""
    status = decision.status
    why = f"step {failed.name} failed ({failed.on_failure})"
    phase = "Undoing" if failed.on_failure == "rollback" else "Failed"
    if failed.on_failure == "rollback":
        decision.notices.append(Notice("RemediationUndoing", f"{why}: undoing the steps done so far", True))
    decision.status = status.model_copy(update={"phase": phase, "reason": why, "failure": "StepFailed"})
    return decision


def undoable(status: RemediationStatus) -> int | None:
    """The index of the last succeeded step whose change can be undone, or None when none is left."""
    for index in range(len(status.steps) - 1, -1, -1):
        step = status.steps[index]
        if step.state == StepState.SUCCEEDED and step.before and Action(step.action) in UNDOABLE:
            return index
    return None


def undone(status: RemediationStatus, index: int, message: str, now: datetime) -> RemediationStatus:
    """Record that a step's change was undone; once nothing is left to undo, the run is Failed."""
    status = _replace(status, index, state=StepState.ROLLED_BACK, output=message[:4096], finished_at=now)
    if undoable(status) is None:
        status = status.model_copy(update={"phase": "Failed"})
    return status


def decide(
    uid: str,
    runbook: RunbookSpec,
    status: RemediationStatus,
    approvals: Mapping[str, str],
    observed: Observed | None,
    now: datetime,
    in_doubt_after: timedelta = IN_DOUBT_AFTER,
) -> Decision:
    """One turn of the engine for a chosen runbook; `approvals` maps step names to who approved them."""
    decision = Decision(status)
    if status.phase not in ("Running", "AwaitingApproval"):
        return decision
    if status.phase == "AwaitingApproval":
        decision.status = status = status.model_copy(update={"phase": "Running"})
    for index, spec in enumerate(runbook.steps):
        step = decision.status.steps[index]
        if step.state in DONE or (step.state == StepState.FAILED and spec.on_failure == "continue"):
            continue
        if step.state == StepState.FAILED:
            return _fail_run(decision, runbook, spec, uid)
        turned = _turn(decision, index, spec, step, approvals, observed, now, uid, in_doubt_after)
        if turned:  # the step ended here: go on to the next one, which the shell has not observed yet
            observed = None
            if decision.status.steps[index].state == StepState.FAILED and spec.on_failure != "continue":
                return _fail_run(decision, runbook, spec, uid)
            continue
        return decision
    phase = "Verifying" if runbook.verify is not None else "Done"
    decision.status = decision.status.model_copy(update={"phase": phase})
    decision.notices.append(Notice("StepsDone", f"every step of runbook {decision.status.runbook} ran"))
    return decision


def _turn(
    decision: Decision,
    index: int,
    spec: RunbookStep,
    step: RemediationStepStatus,
    approvals: Mapping[str, str],
    observed: Observed | None,
    now: datetime,
    uid: str,
    in_doubt_after: timedelta,
) -> bool:
    """Advance one step; True when it ended (succeeded, skipped, failed)."""
    if step.state == StepState.RUNNING:
        return _running(decision, index, spec, step, observed, now, in_doubt_after)
    if observed is None or observed.verdict is None:
        decision.needs = spec.name
        return False
    verdict = observed.verdict
    if observed.refusal or verdict.mode == "refused":
        reason = observed.refusal or verdict.holds[0].reason
        message = observed.message or "; ".join(h.message for h in verdict.holds)
        decision.status = _replace(
            decision.status, index, state=StepState.FAILED, reason=reason, output=message, finished_at=now
        )
        decision.notices.append(Notice("StepRefused", f"step {spec.name}: {message}", True))
        return True
    if observed.dry_run or (observed.nothing_to_do and Action(spec.action) not in PROBES):
        decision.status = _replace(
            decision.status,
            index,
            state=StepState.SKIPPED,
            output=observed.message[:4096],
            finished_at=now,
            dry_run_diff="\n".join(observed.diff)[:8192] or None,
            target=observed.target,
        )
        if observed.dry_run:  # planned and checked, not applied (dryRunOnly, or a rehearsal)
            decision.notices.append(Notice("StepDryRun", f"step {spec.name}: {observed.message}"))
        else:
            decision.notices.append(Notice("StepSkipped", f"step {spec.name}: nothing to do ({observed.message})"))
        return True
    diff = "\n".join(observed.diff)[:8192] or None
    approver = approvals.get(spec.name)
    if (spec.requires_approval or verdict.mode == "approval") and approver is None:
        reason = verdict.holds[0].reason if verdict.holds else "RequiresApproval"
        if step.state != StepState.AWAITING_APPROVAL:
            why = "; ".join(h.message for h in verdict.holds) or "the step requires approval"
            decision.notices.append(Notice("AwaitingApproval", f"step {spec.name} waits for approval: {why}"))
        decision.status = _replace(
            decision.status, index, state=StepState.AWAITING_APPROVAL, reason=reason, dry_run_diff=diff
        )
        decision.status = decision.status.model_copy(update={"phase": "AwaitingApproval"})
        return False
    attempt = step.attempt + 1
    key = f"{uid}/{spec.name}/{attempt}"
    decision.status = _replace(
        decision.status,
        index,
        state=StepState.RUNNING,
        idempotency_key=key,
        attempt=attempt,
        started_at=now,
        dry_run_diff=diff,
        before={k: str(v) for k, v in observed.before.items() if v is not None},
        approved_by=approver,
        automatic=approver is None,
        target=observed.target,
        reason=None,
        output=None,
        finished_at=None,
    )
    decision.status = decision.status.model_copy(update={"phase": "Running"})
    decision.effects.append(Act(spec.name, key))
    by = f", approved by {approver}" if approver else ", automatically"
    decision.notices.append(Notice("StepStarted", f"step {spec.name} ({spec.action}) started{by}"))
    return False


def _running(
    decision: Decision,
    index: int,
    spec: RunbookStep,
    step: RemediationStepStatus,
    observed: Observed | None,
    now: datetime,
    in_doubt_after: timedelta,
) -> bool:
    """A step whose intent is recorded: done, failed, timed out, still waiting, or never applied (act again)."""
    if observed is None or observed.happened is None:
        decision.needs = spec.name
        return False
    if observed.happened:
        decision.status = _replace(
            decision.status, index, state=StepState.SUCCEEDED, finished_at=now, output=observed.message or None
        )
        decision.notices.append(Notice("StepSucceeded", f"step {spec.name} ({spec.action}) succeeded"))
        return True
    timed_out = step.started_at is not None and now - step.started_at >= parse_duration(spec.timeout)
    if observed.error or timed_out:
        reason, text = (
            ("ActionFailed", observed.error or "") if observed.error else ("Timeout", f"not done within {spec.timeout}")
        )
        decision.status = _replace(
            decision.status, index, state=StepState.FAILED, reason=reason, output=text[:4096], finished_at=now
        )
        decision.notices.append(Notice("StepFailed", f"step {spec.name} failed: {text}", True))
        return True
    in_doubt = step.started_at is None or now - step.started_at >= in_doubt_after
    if Action(spec.action) not in PROBES and step.idempotency_key and in_doubt:
        decision.effects.append(Act(spec.name, step.idempotency_key))  # recorded but never applied: apply, same key
        decision.notices.append(Notice("StepInDoubt", f"step {spec.name} was recorded but not applied: applying it"))
    decision.needs = spec.name
    return False
