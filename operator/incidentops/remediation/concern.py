"""Remediation as a concern of the Incident turn: the runbook triage chose, run step by step, verified.

It owns status.remediation and the Remediated and Escalated conditions, and asks the lifecycle to
move the incident (Mitigating when a step acts, Monitoring once the run succeeded). A turn reads
what the decision needs (observing: the Runbook, a step's dry run and guards, or whether a
recorded step's effect is there, or the verify query), decides with the pure engine, and the
shell writes that before anything acts; the step is applied afterwards (acting) and its outcome
is carried into the next turn, which records it. An action's key is in status before the action
runs, so a restarted operator, or a second replica, checks the cluster for it instead of acting
twice. Starting a step holds a lock from its guards' verdict to the write: an exact storm budget.

Over 400 lines because it holds the decision for each phase (choose, steps, verify, undo); the
reads (observing), the actions (acting), the pure step engine and the outcomes live next door.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from incidentops.api.v1alpha1.common import parse_duration, parse_time
from incidentops.api.v1alpha1.conditions import ESCALATED, REMEDIATED
from incidentops.api.v1alpha1.incident import (
    ENDED_STATES,
    IncidentSpec,
    IncidentStatus,
    RemediationStatus,
    StepState,
)
from incidentops.api.v1alpha1.runbook import Action, RunbookSpec
from incidentops.concern import Decision, Notice, Ownership, WatchedConcern
from incidentops.config import Config
from incidentops.egress import protected_endpoints
from incidentops.kube import AsyncKube, Obj
from incidentops.metrics import GUARD_BLOCKS, REMEDIATIONS, TIME_TO_FIRST_ACTION, VERIFICATION_SECONDS
from incidentops.prometheus import Prometheus
from incidentops.remediation import engine, verification
from incidentops.remediation.acting import Actor
from incidentops.remediation.engine import Observed
from incidentops.remediation.guards import PastRun, Verdict
from incidentops.remediation.ledger import Ledger
from incidentops.remediation.observing import Reader
from incidentops.remediation.outcomes import settle
from incidentops.remediation.runs import Runs
from incidentops.remediation.steps import StepSetting
from incidentops.remediation.targets import CHANGES_NOTHING
from incidentops.remediation.verification import QueryResult

ACTIVE = frozenset({"Running", "Verifying", "Undoing"})
REHEARSED = "rehearsal (kubectl incident simulate): every step planned and checked, nothing changed"
Mode = Literal["choose", "steps", "verify", "undo", "idle"]


def wants_turn(body: Mapping[str, Any]) -> bool:
    """Whether an Incident, as the watch delivered it, has remediation work (cheap: no API call)."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    if not status:
        return False
    remediation = status.get("remediation")
    is_open = status.get("state") not in ENDED_STATES
    ref = (spec.get("runbookRef") or {}).get("name")
    if remediation is None:
        return is_open and status.get("triage") is not None
    phase = remediation.get("phase")
    if phase in ACTIVE:
        return True
    if phase == "AwaitingApproval":
        waiting = {s["name"] for s in remediation.get("steps") or [] if s.get("state") == "AwaitingApproval"}
        return not is_open or any(a.get("step") in waiting for a in spec.get("approvals") or [])
    return is_open and ref is not None and ref != remediation.get("runbook")


def held_until(body: Mapping[str, Any], now: datetime) -> datetime | None:
    """Until when the choice waits for a model's triage (only set when its answer can change what runs)."""
    llm = ((body.get("status") or {}).get("triage") or {}).get("llm") or {}
    if llm.get("state") != "Pending" or not llm.get("holdUntil"):
        return None
    until = parse_time(str(llm["holdUntil"]))
    return until if until > now else None


def mode_of(spec: IncidentSpec, status: IncidentStatus) -> Mode:
    remediation = status.remediation
    is_open = status.state not in ENDED_STATES
    if remediation is None or (
        is_open
        and spec.runbook_ref is not None
        and spec.runbook_ref.name != remediation.runbook
        and remediation.phase not in ACTIVE
    ):
        return "choose" if is_open and status.triage is not None else "idle"
    if remediation.phase in ("Running", "AwaitingApproval"):
        return "steps"
    if remediation.phase == "Undoing":
        return "undo"
    if remediation.phase == "Verifying":
        return "verify"
    return "idle"


@dataclass(frozen=True)
class Observation:
    """What the decision needs from outside status, by what the run is doing."""

    mode: Mode
    runbook: RunbookSpec | None = None  # the run's Runbook (None: deleted or changed since it was chosen)
    generation: int | None = None  # the chosen Runbook's generation (choose)
    approvals: Mapping[str, str] | None = None
    step: Observed | None = None  # the step the engine asked about, observed (steps)
    needs: str | None = None
    query: QueryResult | None = None  # verify
    undone: tuple[int, str] | None = None  # an undo made by the last act (undo)


@dataclass(frozen=True)
class UndoStep:
    index: int


class Remediation(WatchedConcern):
    name = "remediation"
    owns = Ownership(frozenset({"remediation"}), frozenset({REMEDIATED, ESCALATED}))

    def __init__(
        self, kube: AsyncKube, config: Config, clock: Any, prometheus: Prometheus | None, ledger: Ledger | None = None
    ) -> None:
        self.kube = kube
        self.config = config
        self.clock = clock
        self.ledger = ledger or Ledger()
        self.poll = timedelta(seconds=config.seconds("remediation_poll"))
        self.in_doubt_after = timedelta(seconds=config.seconds("in_doubt_after"))
        egress = config.runbook_egress(protected_endpoints(kube.client.apiserver_url, config.http_port))
        setting = StepSetting(prometheus, egress, timedelta(seconds=config.seconds("rollback_lookback")))
        self.reader = Reader(kube, config, setting, self.ledger, self.in_doubt_after)
        self.actor = Actor(kube, setting, clock)
        self.runs = Runs(kube)
        self._starting = asyncio.Lock()  # guard verdicts and the writes they lead to: an exact storm budget

    # -- what wakes it ------------------------------------------------------------------------

    def wake(self, body: Mapping[str, Any], now: datetime) -> datetime | None:
        if not wants_turn(body):
            return None
        if (body.get("status") or {}).get("remediation") is None:
            return held_until(body, now) or now  # a model's answer that can change the choice is awaited
        return now

    def seen(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        drill = bool((body.get("spec") or {}).get("simulation"))
        self.ledger.observe(str(meta.get("uid", "")), body.get("status") or {}, drill=drill)

    def gone(self, namespace: str, name: str, uid: str) -> None:
        self.ledger.forget(uid)

    def serial(self, obj: Obj, status: IncidentStatus) -> asyncio.Lock | None:
        remediation = status.remediation
        if remediation is None or remediation.phase not in ("Running", "AwaitingApproval"):
            return None
        starting = not any(s.state == StepState.RUNNING for s in remediation.steps)
        return self._starting if starting else None

    # -- reading --------------------------------------------------------------------------------

    async def observe(self, obj: Obj, status: IncidentStatus, now: datetime, carried: Any) -> Any:
        if not obj.get("status"):
            return Observation("idle")
        spec = IncidentSpec.model_validate(obj.get("spec") or {})
        mode = mode_of(spec, status)
        namespace = obj["metadata"]["namespace"]
        remediation = status.remediation or RemediationStatus()
        if mode == "choose":
            assert status.triage is not None
            found = await self.reader.runbook_named(namespace, status.triage.runbook) if status.triage.runbook else None
            return Observation("choose", found[0] if found else None, found[1] if found else None)
        if mode == "verify":
            runbook = await self.reader.runbook(namespace, remediation)
            if runbook is None or runbook.verify is None:
                return Observation("verify", runbook)
            return Observation("verify", runbook, query=await self.reader.query(runbook.verify.query))
        if mode == "undo":
            runbook = await self.reader.runbook(namespace, remediation.model_copy(update={"runbook_generation": None}))
            undone = carried if isinstance(carried, tuple) and len(carried) == 2 else None
            return Observation("undo", runbook, undone=undone)
        if mode != "steps":
            return Observation(mode)
        runbook = await self.reader.runbook(namespace, remediation)
        if runbook is None or len(runbook.steps) != len(remediation.steps):
            return Observation("steps", None)
        from incidentops.remediation.guards import accepted_approvals  # noqa: PLC0415

        approvals = accepted_approvals(runbook, spec.approvals, since=remediation.chosen_at, name=remediation.runbook)
        first = engine.decide(obj["metadata"]["uid"], runbook, remediation, approvals, None, now, self.in_doubt_after)
        if first.needs is None:
            return Observation("steps", runbook, approvals=approvals)
        index = [s.name for s in runbook.steps].index(first.needs)
        if isinstance(carried, tuple) and len(carried) == 2 and carried[0] == first.needs:
            observed: Observed = carried[1]
        else:
            observed = await self.reader.step(obj, spec, status, runbook, index, now)
        return Observation("steps", runbook, approvals=approvals, step=observed, needs=first.needs)

    # -- deciding (pure) ------------------------------------------------------------------------

    def decide(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Any, now: datetime
    ) -> Decision | None:
        if not isinstance(observed, Observation) or observed.mode == "idle":
            return None
        if observed.mode == "choose":
            return self._choose(obj, spec, status, observed, now)
        remediation = status.remediation or RemediationStatus()
        if observed.mode == "steps":
            return self._steps(obj, spec, status, remediation, observed, now)
        if observed.mode == "verify":
            return self._verify(obj, spec, status, remediation, observed, now)
        return self._undo(obj, spec, status, remediation, observed, now)

    def _choose(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Observation, now: datetime
    ) -> Decision | None:
        triage = status.triage
        assert triage is not None
        waiting = held_until({"status": status.wire()}, now) if status.remediation is None else None
        if waiting is not None:
            return Decision(status, next_at=waiting)  # the model may choose otherwise; never longer than its timeout
        runbook = observed.runbook
        reason = triage.choice or "triage chose no runbook"
        if triage.runbook and runbook is None:
            reason = f"runbook {triage.runbook} was deleted or is invalid"
        remediation = engine.start(triage.runbook if runbook else None, runbook, reason)
        notices: list[Notice] = []
        if runbook is not None:
            confidence = triage.confidence if triage.confidence is not None else 0.0
            source = "a model's triage" if triage.source == "llm" else "the rules' triage"
            text = f"{reason}; confidence {confidence:.2f} ({source})"
            remediation = remediation.model_copy(
                update={
                    "chosen_at": now,
                    "confidence": confidence,
                    "reason": text[:1024],
                    "runbook_generation": observed.generation,
                }
            )
            notices.append(Notice("RunbookChosen", text))
        elif status.remediation is not None and (
            status.remediation.runbook or status.remediation.reason == remediation.reason
        ):
            return None  # nothing new to say (a named runbook is still missing): no write, no loop
        announce = bool(triage.candidates) or spec.runbook_ref is not None
        updated, shown, moves = settle(
            status, remediation, notices, now, generation=_generation(obj), announce=announce
        )
        drill = spec.drill

        async def counted(_: Obj) -> None:
            if runbook is None and not drill:
                REMEDIATIONS.labels("", "NoRunbook").inc()

        return Decision(updated, shown, moves, again=runbook is not None, written=counted)

    def _steps(
        self,
        obj: Obj,
        spec: IncidentSpec,
        status: IncidentStatus,
        remediation: RemediationStatus,
        observed: Observation,
        now: datetime,
    ) -> Decision | None:
        runbook = observed.runbook
        if runbook is None:
            return self._runbook_gone(obj, spec, status, remediation, now)
        acting = any(s.state == StepState.RUNNING for s in remediation.steps)
        if status.state in ENDED_STATES and not acting:
            why = f"the incident was {str(status.state).lower()} before the run finished"
            stopped = remediation.model_copy(update={"phase": "Stopped", "reason": why})
            return self._finish(obj, spec, status, stopped, [], now)
        uid = obj["metadata"]["uid"]
        decision = engine.decide(
            uid, runbook, remediation, observed.approvals or {}, observed.step, now, self.in_doubt_after
        )
        if observed.needs is not None and decision.status == remediation and not decision.effects:
            return Decision(status, next_at=self._wait(runbook, remediation, decision, now))
        if spec.rehearsal and decision.status.phase in ("Verifying", "Done"):
            decision.status = decision.status.model_copy(update={"phase": "Simulated", "reason": REHEARSED})
        elif runbook.safety.dry_run_only and decision.status.phase in ("Verifying", "Done"):
            decision.status = decision.status.model_copy(
                update={"phase": "Stopped", "reason": "dry run only (safety.dryRunOnly): nothing was changed"}
            )
        escalate = self._escalates(runbook, decision.status)
        updated, shown, moves = settle(
            status, decision.status, decision.notices, now, escalate=escalate, generation=_generation(obj)
        )
        blocked = _blocked(observed.step, decision) if observed.step is not None else []
        after = decision.status
        written = self._bookkeeping(obj, spec, status.remediation, after, status, now, blocked)
        effects: list[Any] = [(runbook, act) for act in decision.effects]
        next_at = self._wait(runbook, after, decision, now) if not effects else now + self.poll
        return Decision(updated, shown, moves, effects, next_at=next_at, again=not effects, written=written)

    def _wait(
        self, runbook: RunbookSpec, remediation: RemediationStatus, decision: engine.Decision, now: datetime
    ) -> datetime | None:
        """When a step that is waiting (a probe, an intent in doubt) should be looked at again."""
        if decision.needs is None:
            return None
        index = [s.name for s in runbook.steps].index(decision.needs)
        step, spec = remediation.steps[index], runbook.steps[index]
        if step.state != StepState.RUNNING or step.started_at is None:
            return None  # awaiting a human: their spec change wakes the incident
        candidates = [now + self.poll, step.started_at + parse_duration(spec.timeout)]
        if Action(spec.action) not in engine.PROBES:
            candidates.append(step.started_at + self.in_doubt_after)
        return max(now, min(c for c in candidates if c > now - timedelta(seconds=1)))

    def _verify(
        self,
        obj: Obj,
        spec: IncidentSpec,
        status: IncidentStatus,
        remediation: RemediationStatus,
        observed: Observation,
        now: datetime,
    ) -> Decision | None:
        runbook = observed.runbook
        if runbook is None:
            return self._runbook_gone(obj, spec, status, remediation, now)
        if runbook.verify is None or observed.query is None:
            return self._finish(obj, spec, status, remediation.model_copy(update={"phase": "Done"}), [], now)
        check = runbook.verify
        progress = remediation.verification or verification.begin(now)
        result = verification.turn(check, progress, observed.query, now)
        if result.outcome is None:
            next_at = verification.next_check(check, result.progress, self.poll.total_seconds())
            if remediation.verification is not None and result.progress.clear_since == progress.clear_since:
                return Decision(status, next_at=next_at)
            updated = remediation.model_copy(update={"verification": result.progress})
            notices = [] if remediation.verification else [
                Notice("Verifying", f"checking {check.query} until clear for {check.window}")
            ]  # fmt: skip
            finished = self._finish(obj, spec, status, updated, notices, now)
            finished.again, finished.next_at = False, next_at
            return finished
        seconds = (now - result.progress.started_at).total_seconds()
        outcome = result.outcome
        if outcome == "verified":
            ended = remediation.model_copy(
                update={
                    "verification": result.progress,
                    "verified": True,
                    "phase": "Verified",
                    "reason": result.message,
                }
            )
            decision = self._finish(obj, spec, status, ended, [], now)
        else:
            # Still firing, or Prometheus never answered: not proven, so a failure. Whether the changes are
            # undone is the runbook's call (verify.onFailure); the message says which of the two it was.
            undo = check.on_failure == "undo" and engine.undoable(remediation) is not None
            ended = remediation.model_copy(
                update={
                    "verification": result.progress,
                    "verified": False,
                    "phase": "Undoing" if undo else "Failed",
                    "failure": "VerificationFailed",
                    "reason": result.message[:1024],
                }
            )
            notice = Notice("VerificationFailed", result.message + ("; undoing the changes" if undo else ""), True)
            decision = self._finish(obj, spec, status, ended, [notice], now, escalate=True)
        inner = decision.written

        async def timed(written: Obj) -> None:
            VERIFICATION_SECONDS.labels(outcome).observe(seconds)
            if inner is not None:
                await inner(written)

        decision.written = timed
        return decision

    def _undo(
        self,
        obj: Obj,
        spec: IncidentSpec,
        status: IncidentStatus,
        remediation: RemediationStatus,
        observed: Observation,
        now: datetime,
    ) -> Decision | None:
        """Undo the last change still standing (one per turn: act, then record); Failed once none is left."""
        index = engine.undoable(remediation)
        if index is None:
            failed = remediation.model_copy(update={"phase": "Failed"})
            return self._finish(obj, spec, status, failed, [], now, escalate=True)
        if observed.undone is None or observed.undone[0] != index:
            return Decision(status, effects=[UndoStep(index)], next_at=now + self.poll)
        message = observed.undone[1]
        recorded = remediation.steps[index]
        updated = engine.undone(remediation, index, message, now)
        notice = Notice("StepUndone", f"step {recorded.name}: {message}", message.startswith("could not"))
        return self._finish(obj, spec, status, updated, [notice], now, escalate=True)

    def _runbook_gone(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, remediation: RemediationStatus, now: datetime
    ) -> Decision:
        """A run whose Runbook was deleted or edited stops and pages: never half one version, half another."""
        why = f"runbook {remediation.runbook} was deleted or changed during the run; its changes are kept"
        ended = remediation.model_copy(update={"phase": "Failed", "failure": "RunbookChanged", "reason": why})
        return self._finish(obj, spec, status, ended, [], now, escalate=True)

    def _finish(
        self,
        obj: Obj,
        spec: IncidentSpec,
        status: IncidentStatus,
        remediation: RemediationStatus,
        notices: list[Notice],
        now: datetime,
        *,
        escalate: bool = False,
    ) -> Decision:
        """A remediation change that is not a step decision (verification, undo, stop)."""
        before = status.remediation
        updated, shown, moves = settle(
            status, remediation, notices, now, escalate=escalate, generation=_generation(obj)
        )
        meta = obj["metadata"]
        drill = spec.drill

        async def ended(_: Obj) -> None:
            await self.runs.ended(meta["namespace"], meta["name"], before, remediation, now, drill)

        return Decision(updated, shown, moves, again=True, written=ended)

    def _escalates(self, runbook: RunbookSpec, remediation: RemediationStatus) -> bool:
        if remediation.failure in ("VerificationFailed", "RunbookChanged"):
            return True
        failed = {s.name for s in remediation.steps if s.state == StepState.FAILED}
        return any(s.on_failure in ("escalate", "rollback") for s in runbook.steps if s.name in failed)

    def _bookkeeping(
        self,
        obj: Obj,
        spec: IncidentSpec,
        before: RemediationStatus | None,
        after: RemediationStatus,
        status: IncidentStatus,
        now: datetime,
        blocked: list[str],
    ) -> Any:
        """What is counted once the step decision is written: guard blocks, new runs, the first action."""
        meta = obj["metadata"]
        drill = spec.drill
        detected = status.detected_at or now

        async def written(_: Obj) -> None:
            for reason in [] if drill else blocked:
                GUARD_BLOCKS.labels(reason).inc()
            first_action = before is not None and not any(s.started_at for s in before.steps) and not drill
            for step in after.steps:
                if step.state == StepState.RUNNING and step.started_at == now and step.target:
                    if Action(step.action) not in CHANGES_NOTHING:
                        run = PastRun(after.runbook or "", step.target, now, bool(step.automatic), meta["uid"], drill)
                        self.ledger.record(meta["uid"], run)
                    if first_action:
                        first_action = False
                        TIME_TO_FIRST_ACTION.observe(max(0.0, (now - detected).total_seconds()))
                        await self.runs.record(meta["namespace"], after.runbook, meta["name"], now, "Running")
            await self.runs.ended(meta["namespace"], meta["name"], before, after, now, drill)

        return written

    # -- acting (after the write) ---------------------------------------------------------------

    async def act(self, written: Obj, decision: Decision) -> Any:
        spec = IncidentSpec.model_validate(written.get("spec") or {})
        carried: Any = None
        for effect in decision.effects:
            if isinstance(effect, UndoStep):
                status = IncidentStatus.model_validate(written.get("status") or {})
                remediation = status.remediation or RemediationStatus()
                runbook = await self.reader.runbook(
                    written["metadata"]["namespace"], remediation.model_copy(update={"runbook_generation": None})
                )
                message = await self.actor.undo(written, spec, status, effect.index, runbook)
                carried = (effect.index, message)
                continue
            runbook, act = effect
            observed = await self.actor.apply(written, spec, runbook, act)
            if observed is None:  # the apiserver did not answer: the step is in doubt; the next look checks it
                return None
            carried = (act.step, observed)
        return carried


def _blocked(observed: Observed, decision: engine.Decision) -> list[str]:
    """The guard reasons that held the step back in this decision (for the guard-blocks metric)."""
    reasons = {n.reason for n in decision.notices}
    if "StepRefused" in reasons:
        return (
            [observed.refusal]
            if observed.refusal
            else [h.reason for h in (observed.verdict or Verdict("refused")).holds]
        )
    if "AwaitingApproval" in reasons and observed.verdict is not None:
        return [h.reason for h in observed.verdict.holds]
    return []


def _generation(obj: Obj) -> int | None:
    value = (obj.get("metadata") or {}).get("generation")
    return int(value) if value is not None else None
