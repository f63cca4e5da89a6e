"""The remediation shell: read, decide, write, then act; one incident at a time, woken by deadlines.

Each turn reads the Incident fresh, lets the pure parts decide (runbook choice, the step engine,
verification, outcomes), writes the resulting status with the resourceVersion it was computed
from (a 409 means someone else moved first: read again and decide again), and only then acts.
An action's key is in status before the action runs, so a restarted operator, or a second
replica, checks the cluster for it instead of acting twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from incidentops.api.v1alpha1.common import format_time, parse_duration
from incidentops.api.v1alpha1.incident import (
    IncidentSpec,
    IncidentState,
    IncidentStatus,
    RemediationStatus,
    StepState,
    TriageResult,
)
from incidentops.api.v1alpha1.resources import INCIDENT, RUNBOOK
from incidentops.api.v1alpha1.runbook import Action, RunbookSpec, RunbookStep
from incidentops.config import Config
from incidentops.egress import protected_endpoints
from incidentops.kube import AsyncKube, Conflict, KubeError, NotFound, Obj, Unavailable
from incidentops.logs import waiting_level
from incidentops.metrics import ACTIONS, GUARD_BLOCKS, REMEDIATIONS, TIME_TO_FIRST_ACTION, VERIFICATION_SECONDS
from incidentops.prometheus import Prometheus, PrometheusError
from incidentops.remediation import engine, verification
from incidentops.remediation.actions import REGISTRY
from incidentops.remediation.actions.base import ActionError, Context, Plan
from incidentops.remediation.engine import Notice, Observed
from incidentops.remediation.guards import Hold, PastRun, Proposal, Verdict, accepted_approvals, network_partition
from incidentops.remediation.guards import decide as judge
from incidentops.remediation.ledger import Ledger
from incidentops.remediation.outcomes import settle
from incidentops.remediation.selection import IncidentFacts, choose
from incidentops.remediation.targets import CHANGES_NOTHING, NoTarget, Target, resolve
from incidentops.remediation.verification import QueryResult
from incidentops.triage.rules import runbook_fit

log = logging.getLogger(__name__)
MAX_ROUNDS = 40
ACTIVE = frozenset({"Running", "Verifying", "Undoing"})
CLOSED = frozenset({IncidentState.RESOLVED, IncidentState.CLOSED})
Key = tuple[str, str]


@dataclass
class Round:
    """What one read-decide-write-act round came to: go again now, or come back at `next_at`."""

    again: bool = False
    next_at: datetime | None = None
    carried: tuple[str, Observed] | None = None


def wants_turn(body: Mapping[str, Any]) -> bool:
    """Whether an Incident, as the watch delivered it, has remediation work (cheap: no API call)."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    if not status:
        return False
    remediation = status.get("remediation")
    is_open = status.get("state") not in CLOSED
    ref = (spec.get("runbookRef") or {}).get("name")
    if remediation is None:
        return is_open
    phase = remediation.get("phase")
    if phase in ACTIVE:
        return True
    if phase == "AwaitingApproval":
        waiting = {s["name"] for s in remediation.get("steps") or [] if s.get("state") == "AwaitingApproval"}
        return not is_open or any(a.get("step") in waiting for a in spec.get("approvals") or [])
    return is_open and ref is not None and ref != remediation.get("runbook")


NUMBERS = frozenset({"replicas", "set", "revision", "toRevision", "generation"})
FLAGS = frozenset({"unschedulable"})


def _parsed(before: Mapping[str, str]) -> dict[str, Any]:
    """What a step replaced, back from status strings to values (only the fields known to be numbers or flags)."""
    values: dict[str, Any] = {}
    for key, value in before.items():
        if key in NUMBERS and value.lstrip("-").isdigit():
            values[key] = int(value)
        elif key in FLAGS:
            values[key] = value == "True"
        else:
            values[key] = value
    return values


class Responder:
    """Drives every open Incident's remediation in this process."""

    def __init__(
        self, kube: AsyncKube, config: Config, clock: Callable[[], datetime], prometheus: Prometheus | None
    ) -> None:
        from incidentops.deadlines import DeadlineQueue  # noqa: PLC0415

        self.kube = kube
        self.config = config
        self.clock = clock
        self.prometheus = prometheus
        self.ledger = Ledger()
        self.queue = DeadlineQueue(self._turn, clock, name="remediation")
        self.poll = timedelta(seconds=config.seconds("remediation_poll"))
        self.in_doubt_after = timedelta(seconds=config.seconds("in_doubt_after"))
        self.egress = config.runbook_egress(protected_endpoints(kube.client.apiserver_url, config.http_port))
        self._starting = asyncio.Lock()  # guard verdicts and the writes they lead to: an exact storm budget

    # -- feeding ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Rebuild the ledger and the queue from a LIST, then start waking incidents."""
        namespaces: list[str | None] = list(self.config.namespaces) or [None]
        for namespace in namespaces:
            for obj in await self.kube.list(INCIDENT, namespace):
                self.observe(obj)
        self.queue.start()
        log.info("remediation started: %d incidents to look at", self.queue.pending())

    async def stop(self) -> None:
        await self.queue.stop()

    def observe(self, body: Mapping[str, Any]) -> None:
        """Feed one Incident as the watch (or the start-up LIST) saw it."""
        meta = body.get("metadata") or {}
        self.ledger.observe(str(meta.get("uid", "")), body.get("status") or {}, drill=_is_drill(body))
        if wants_turn(body):
            self.queue.schedule((meta.get("namespace"), meta.get("name")))

    def forget(self, namespace: str, name: str, uid: str) -> None:
        self.ledger.forget(uid)
        self.queue.forget((namespace, name))

    # -- one incident ----------------------------------------------------------------------------

    async def _turn(self, key: Hashable) -> datetime | None:
        namespace, name = str(key[0]), str(key[1])  # type: ignore[index]
        carried: tuple[str, Observed] | None = None
        for _ in range(MAX_ROUNDS):
            try:
                obj = await self.kube.get(INCIDENT, namespace, name)
                result = await self._round(obj, carried)
            except NotFound:
                return None
            except Unavailable as error:
                log.log(
                    waiting_level(error), "remediation of %s/%s waits for the apiserver: %s", namespace, name, error
                )
                return self.clock() + self.poll
            if not result.again:
                return result.next_at
            carried = result.carried
        log.warning(
            "remediation of %s/%s kept changing for %d rounds; looking again later", namespace, name, MAX_ROUNDS
        )
        return self.clock() + self.poll

    async def _round(self, obj: Obj, carried: tuple[str, Observed] | None) -> Round:
        if not obj.get("status"):
            return Round()
        spec = IncidentSpec.model_validate(obj["spec"])
        status = IncidentStatus.model_validate(obj["status"])
        now = self.clock()
        remediation = status.remediation
        is_open = status.state not in CLOSED
        if remediation is None or (
            is_open
            and spec.runbook_ref is not None
            and spec.runbook_ref.name != remediation.runbook
            and remediation.phase not in ACTIVE
        ):
            return await self._choose(obj, spec, status, now) if is_open else Round()
        if remediation.phase in ("Running", "AwaitingApproval"):
            return await self._steps(obj, spec, status, remediation, now, carried)
        if remediation.phase == "Undoing":
            return await self._undo(obj, spec, status, remediation, now)
        if remediation.phase == "Verifying":
            return await self._verify(obj, status, remediation, now)
        return Round()

    async def _write(self, obj: Obj, status: IncidentStatus, notices: list[Notice]) -> Obj | None:
        """Replace status with the resourceVersion it was computed from; None when someone moved first."""
        try:
            written = await self.kube.replace_status(INCIDENT, {**obj, "status": status.wire()})
        except Conflict:
            return None
        meta = obj["metadata"]
        for notice in notices:
            log.info("incident %s/%s: %s", meta["namespace"], meta["name"], notice.message)
            self.kube.post_event_soon(
                written, notice.reason, notice.message, type_="Warning" if notice.warning else "Normal"
            )
        return written

    async def _runbook(self, namespace: str, remediation: RemediationStatus) -> RunbookSpec | None:
        """The run's Runbook as it was chosen; None when it was deleted or has changed since (a new generation)."""
        if remediation.runbook is None:
            return None
        try:
            obj = await self.kube.get(RUNBOOK, namespace, remediation.runbook)
            runbook = RunbookSpec.model_validate(obj.get("spec") or {})
        except (NotFound, ValidationError):
            return None
        wanted = remediation.runbook_generation
        if wanted is not None and (obj.get("metadata") or {}).get("generation") != wanted:
            return None
        return runbook

    async def _runbook_gone(
        self, obj: Obj, status: IncidentStatus, remediation: RemediationStatus, now: datetime
    ) -> Round:
        """A run whose Runbook was deleted or edited stops and pages: never half one version, half another."""
        why = f"runbook {remediation.runbook} was deleted or changed during the run; its changes are kept"
        ended = remediation.model_copy(update={"phase": "Failed", "failure": "RunbookChanged", "reason": why})
        return await self._finish(obj, status, ended, [], now, escalate=True)

    async def _choose(self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, now: datetime) -> Round:
        namespace = obj["metadata"]["namespace"]
        runbooks: list[tuple[str, RunbookSpec]] = []
        generations: dict[str, int] = {}
        for item in await self.kube.list(RUNBOOK, namespace):
            try:
                runbooks.append((item["metadata"]["name"], RunbookSpec.model_validate(item.get("spec") or {})))
            except ValidationError:
                continue  # its Ready condition says why; an invalid runbook never runs
            generations[item["metadata"]["name"]] = int(item["metadata"].get("generation") or 0)
        choice = choose(spec, IncidentFacts.of(spec, status), runbooks)
        runbook = dict(runbooks).get(choice.runbook or "")
        remediation = engine.start(choice.runbook, runbook, choice.reason)
        notices: list[Notice] = []
        triage = status.triage
        if runbook is not None:
            named = spec.runbook_ref is not None and spec.runbook_ref.name == choice.runbook
            fit = runbook_fit(runbook.match, named=named)
            reason = f"{choice.reason}; confidence {fit.confidence:.2f} ({fit.reasoning})"
            remediation = remediation.model_copy(
                update={
                    "chosen_at": now,
                    "confidence": fit.confidence,
                    "reason": reason[:1024],
                    "runbook_generation": generations.get(choice.runbook or ""),
                }
            )
            notices.append(Notice("RunbookChosen", reason))
            if triage is None or triage.source in (None, "rules"):
                triage = TriageResult(
                    runbook=choice.runbook, confidence=fit.confidence, reasoning=fit.reasoning, source="rules", at=now
                )
        elif status.remediation is not None and (
            status.remediation.runbook or status.remediation.reason == remediation.reason
        ):
            return Round()  # nothing new to say (a named runbook is still missing): no write, no loop
        announce = bool(runbooks) or spec.runbook_ref is not None
        updated, shown = settle(
            status.model_copy(update={"triage": triage}),
            remediation,
            notices,
            now,
            generation=_generation(obj),
            announce=announce,
        )
        written = await self._write(obj, updated, shown)
        if written is not None and runbook is None and not _is_drill(obj):
            REMEDIATIONS.labels("", "NoRunbook").inc()
        return Round(again=written is None or runbook is not None)

    # -- steps -----------------------------------------------------------------------------------

    async def _steps(
        self,
        obj: Obj,
        spec: IncidentSpec,
        status: IncidentStatus,
        remediation: RemediationStatus,
        now: datetime,
        carried: tuple[str, Observed] | None,
    ) -> Round:
        meta = obj["metadata"]
        namespace, uid = meta["namespace"], meta["uid"]
        runbook = await self._runbook(namespace, remediation)
        if runbook is None or len(runbook.steps) != len(remediation.steps):
            return await self._runbook_gone(obj, status, remediation, now)
        acting = any(s.state == StepState.RUNNING for s in remediation.steps)
        if status.state in CLOSED and not acting:
            why = f"the incident was {str(status.state).lower()} before the run finished"
            stopped = remediation.model_copy(update={"phase": "Stopped", "reason": why})
            return await self._finish(obj, status, stopped, [], now)
        approvals = accepted_approvals(runbook, spec.approvals, since=remediation.chosen_at)
        first = engine.decide(uid, runbook, remediation, approvals, None, now, self.in_doubt_after)
        if first.needs is None:
            written = await self._record(obj, status, runbook, first, now)
            return Round(again=True) if written is None else await self._carry_out(written, spec, runbook, first, now)
        index = [s.name for s in runbook.steps].index(first.needs)
        starting = remediation.steps[index].state != StepState.RUNNING
        kept = carried if carried is not None and carried[0] == first.needs else None
        # Guard verdicts and the writes they lead to, one incident at a time: an exact storm budget.
        # Acting happens after the lock is released, so a slow step never holds the others up.
        async with self._starting if starting else contextlib.nullcontext():
            observed = kept[1] if kept is not None else await self._observe(obj, spec, status, runbook, index, now)
            decision = engine.decide(uid, runbook, remediation, approvals, observed, now, self.in_doubt_after)
            if decision.status == remediation and not decision.effects:
                return Round(next_at=self._wait(runbook, remediation, decision, now))
            if spec.rehearsal and decision.status.phase in ("Verifying", "Done"):
                decision.status = decision.status.model_copy(update={"phase": "Simulated", "reason": REHEARSED})
            elif runbook.safety.dry_run_only and decision.status.phase in ("Verifying", "Done"):
                decision.status = decision.status.model_copy(
                    update={"phase": "Stopped", "reason": "dry run only (safety.dryRunOnly): nothing was changed"}
                )
            written = await self._record(obj, status, runbook, decision, now, _blocked(observed, decision))
        if written is None:
            return Round(again=True, carried=kept)  # lost a race: decide again, without losing a step's result
        return await self._carry_out(written, spec, runbook, decision, now)

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

    async def _record(
        self,
        obj: Obj,
        status: IncidentStatus,
        runbook: RunbookSpec,
        decision: engine.Decision,
        now: datetime,
        blocked: list[str] | None = None,
    ) -> Obj | None:
        """Write the decision and note new runs in the ledger; None when someone else wrote first."""
        before = status.remediation
        escalate = self._escalates(runbook, decision.status)
        updated, shown = settle(
            status, decision.status, decision.notices, now, escalate=escalate, generation=_generation(obj)
        )
        written = await self._write(obj, updated, shown)
        if written is None:
            return None
        drill = _is_drill(obj)
        for reason in [] if drill else blocked or []:
            GUARD_BLOCKS.labels(reason).inc()
        meta = obj["metadata"]
        first_action = before is not None and not any(s.started_at for s in before.steps) and not drill
        for step in decision.status.steps:
            if step.state == StepState.RUNNING and step.started_at == now and step.target:
                if Action(step.action) not in CHANGES_NOTHING:
                    run = PastRun(
                        decision.status.runbook or "", step.target, now, bool(step.automatic), meta["uid"], drill
                    )
                    self.ledger.record(meta["uid"], run)
                if first_action:
                    first_action = False
                    detected = status.detected_at or now
                    TIME_TO_FIRST_ACTION.observe(max(0.0, (now - detected).total_seconds()))
                    await self._record_run(meta["namespace"], decision.status.runbook, meta["name"], now, "Running")
        await self._ended(meta, before, decision.status, now, drill)
        return written

    async def _carry_out(
        self, written: Obj, spec: IncidentSpec, runbook: RunbookSpec, decision: engine.Decision, now: datetime
    ) -> Round:
        """Act on what was just recorded; the outcome goes into the next round's decision."""
        carried: tuple[str, Observed] | None = None
        for act in decision.effects:
            observed = await self._act(written, spec, runbook, act)
            if observed is None:  # the apiserver did not answer: the step is in doubt; look again later
                return Round(next_at=now + self.poll)
            carried = (act.step, observed)
        return Round(again=True, carried=carried)

    def _escalates(self, runbook: RunbookSpec, remediation: RemediationStatus) -> bool:
        if remediation.failure in ("VerificationFailed", "RunbookChanged"):
            return True
        failed = {s.name for s in remediation.steps if s.state == StepState.FAILED}
        return any(s.on_failure in ("escalate", "rollback") for s in runbook.steps if s.name in failed)

    def _context(self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, at: datetime) -> Context:
        meta = obj["metadata"]
        facts = {
            "namespace": meta["namespace"],
            "service": spec.service or "",
            "severity": str(status.severity or spec.severity),
        }
        return Context(
            incident=f"{meta['namespace']}/{meta['name']}",
            alert_began=status.started_at or status.detected_at,
            now=at,
            prometheus=self.prometheus,
            facts=facts,
            lookback=timedelta(seconds=self.config.seconds("rollback_lookback")),
            egress=self.egress,
        )

    def _target(self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, step: RunbookStep) -> Target:
        facts = IncidentFacts.of(spec, status)
        return resolve(step, obj["metadata"]["namespace"], spec, facts.label_sets)

    def _params(self, step: RunbookStep) -> dict[str, Any]:
        return {**step.params.wire(), "timeout": parse_duration(step.timeout).total_seconds()}

    async def _observe(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, runbook: RunbookSpec, index: int, now: datetime
    ) -> Observed:
        """The step's dry-run plan and the guards' verdict (before it runs), or whether its effect is there."""
        step, recorded = runbook.steps[index], (status.remediation or RemediationStatus()).steps[index]
        try:
            target = self._target(obj, spec, status, step)
        except NoTarget as missing:
            return _refusal(missing.reason, str(missing), None)
        module = REGISTRY[Action(step.action)]
        client = self.kube.client
        if recorded.state == StepState.RUNNING:
            key = recorded.idempotency_key or ""
            started = recorded.started_at or now
            if Action(step.action) == Action.HTTP and now - started >= self.in_doubt_after:
                why = "InDoubt: the call may or may not have been made before a crash; it is not repeated"
                return Observed(happened=False, error=why, target=str(target))
            try:
                plan = await self._recorded_plan(
                    obj, spec, status, step, target, recorded.before, key, recorded.started_at or now
                )
                happened = await self.kube.run(module.happened, client, plan, key)
            except ActionError as error:
                return Observed(happened=False, error=str(error), target=str(target))
            except NotFound as error:
                return Observed(happened=False, error=f"{target} is gone: {error}", target=str(target))
            return Observed(happened=happened, target=str(target))
        # A stable time for the dry run (a restart's restartedAt shows it): the same plan, the same diff,
        # so a step waiting for approval is not rewritten on every look.
        context = self._context(obj, spec, status, (status.remediation or RemediationStatus()).chosen_at or now)
        try:
            plan = await self.kube.run(module.plan, client, target, self._params(step), "dry-run", context)
        except NotFound:
            return _refusal("TargetNotFound", f"{target} does not exist", target)
        except KubeError as error:
            if isinstance(error, Unavailable):
                raise
            return _refusal("DryRunRefused", f"the dry run of {step.action} on {target} was refused: {error}", target)
        verdict = self._verdict(obj, spec, status, runbook, step, target, now)
        # Planned and checked, not applied: a rehearsal (kubectl incident simulate), or safety.dryRunOnly.
        dry = None
        if spec.rehearsal:
            dry = f"rehearsal: would {plan.reason or step.action} ({_how(verdict, step)})"
        elif runbook.safety.dry_run_only:
            dry = "dry run only (safety.dryRunOnly): " + (plan.reason or "planned change recorded")
        if plan.refusal is None and dry is not None:
            return Observed(
                diff=plan.diff, nothing_to_do=True, dry_run=True, verdict=verdict, target=str(target), message=dry
            )
        return Observed(
            diff=plan.diff,
            before={k: v for k, v in plan.before.items() if v is not None},
            refusal=plan.refusal,
            message=plan.reason,
            nothing_to_do=plan.nothing_to_do,
            verdict=verdict,
            target=str(target),
        )

    async def _recorded_plan(
        self,
        obj: Obj,
        spec: IncidentSpec,
        status: IncidentStatus,
        step: RunbookStep,
        target: Target,
        before: Mapping[str, str],
        key: str,
        at: datetime,
    ) -> Plan:
        """The plan as recorded when the step started (what it replaces comes from status, not from now)."""
        module = REGISTRY[Action(step.action)]
        if Action(step.action) in (Action.PROMQL_CHECK, Action.HTTP, Action.NOTIFY):
            return await self.kube.run(
                module.plan, self.kube.client, target, self._params(step), key, self._context(obj, spec, status, at)
            )
        return Plan(target, None, before=_parsed(before))

    def _verdict(
        self,
        obj: Obj,
        spec: IncidentSpec,
        status: IncidentStatus,
        runbook: RunbookSpec,
        step: RunbookStep,
        target: Target,
        now: datetime,
    ) -> Verdict:
        action = Action(step.action)
        if action in CHANGES_NOTHING:
            return Verdict("automatic")
        remediation = status.remediation or RemediationStatus()
        facts = IncidentFacts.of(spec, status)
        proposal = Proposal(
            runbook_name=remediation.runbook or "",
            runbook=runbook,
            action=action,
            target=str(target),
            target_namespace=target.namespace or obj["metadata"]["namespace"],
            target_opted_out=False,  # the action's own plan refuses opted-out targets, with the annotation named
            category=spec.category,
            confidence=remediation.confidence,
            now=now,
            history=self.ledger.history(excluding=obj["metadata"]["uid"], now=now, drills=spec.drill),
            planned_replicas=step.params.replicas if action == Action.SCALE else None,
            network_partition=network_partition(facts.alertnames, facts.label_sets),
            risk_ceiling=self.config.risk_ceiling,
            storm_budget=self.config.storm_budget,
            storm_window=timedelta(seconds=self.config.seconds("storm_window")),
        )
        verdict = judge(proposal)
        if runbook.effective_risk() == "high" and verdict.mode != "refused":
            who = ", ".join(runbook.approvers) or "nobody (the runbook names no approvers)"
            verdict = Verdict(
                verdict.mode, [*verdict.holds, Hold("ApproverRequired", f"high risk: only {who} may approve")]
            )
        return verdict

    async def _act(self, written: Obj, spec: IncidentSpec, runbook: RunbookSpec, act: engine.Act) -> Observed | None:
        """Apply one recorded step; the outcome goes into the next decision (or it stays in doubt)."""
        status = IncidentStatus.model_validate(written["status"])
        remediation = status.remediation or RemediationStatus()
        index = [s.name for s in runbook.steps].index(act.step)
        step, recorded = runbook.steps[index], remediation.steps[index]
        action = Action(step.action)
        module = REGISTRY[action]
        client = self.kube.client
        at = recorded.started_at or self.clock()
        try:
            target = self._target(written, spec, status, step)
            context = self._context(written, spec, status, at)
            if action == Action.DELETE_POD:
                plan = await self._recorded_plan(written, spec, status, step, target, recorded.before, act.key, at)
                plan = Plan(target, {"pods": plan.before.get("pods") or _pods(recorded.before)}, before=plan.before)
            else:
                plan = await self.kube.run(module.plan, client, target, self._params(step), act.key, context)
            if plan.refusal:
                _count_action(written, str(action), "refused")
                return Observed(happened=False, error=f"{plan.refusal}: {plan.reason}", target=str(target))
            if plan.nothing_to_do and action not in engine.PROBES and action not in (Action.HTTP, Action.NOTIFY):
                happened = await self.kube.run(module.happened, client, plan, act.key)
                _count_action(written, str(action), "skipped")
                return Observed(happened=True, message=plan.reason if not happened else "", target=str(target))
            output = await self.kube.run(module.apply, client, plan)
            if action in engine.PROBES:
                happened = await self.kube.run(module.happened, client, plan, act.key)
                return Observed(happened=happened, target=str(target))
        except NoTarget as missing:
            return Observed(happened=False, error=str(missing))
        except ActionError as error:
            _count_action(written, str(action), "failed")
            return Observed(happened=False, error=str(error))
        except Unavailable as error:
            log.warning(
                "step %s of %s: the apiserver did not answer (%s); the step is in doubt", act.step, act.key, error
            )
            return None
        except KubeError as error:
            _count_action(written, str(action), "failed")
            return Observed(happened=False, error=f"{type(error).__name__}: {error}")
        _count_action(written, str(action), "ok")
        await self._tell_target(written, target, step, output or plan.reason, recorded.before)
        return Observed(happened=True, message=output or plan.reason, target=str(target))

    async def _tell_target(
        self, incident: Obj, target: Target, step: RunbookStep, what: str, before: Mapping[str, str]
    ) -> None:
        """An Event on the Deployment, so `kubectl describe` there shows what incidentops did and why."""
        if target.kind != "Deployment":
            return  # Events live in a namespace; a Node's story is on the Incident
        meta = incident["metadata"]
        try:
            obj = await self.kube.run(self.kube.client.deployment, target.namespace, target.name)
        except KubeError:
            return
        detail = ""
        if step.action == Action.ROLLBACK and before:
            detail = f" from revision {before.get('revision')} to revision {before.get('toRevision')}"
        incident_name = f"{meta['namespace']}/{meta['name']}"
        message = f"incidentops {step.action}{detail} for incident {incident_name} (step {step.name}): {what}"
        self.kube.post_event_soon(obj, f"Incidentops{str(step.action).title().replace('-', '')}", message)

    # -- after the steps -------------------------------------------------------------------------

    async def _verify(self, obj: Obj, status: IncidentStatus, remediation: RemediationStatus, now: datetime) -> Round:
        namespace = obj["metadata"]["namespace"]
        runbook = await self._runbook(namespace, remediation)
        if runbook is None:
            return await self._runbook_gone(obj, status, remediation, now)
        if runbook.verify is None:
            done = remediation.model_copy(update={"phase": "Done"})
            return await self._finish(obj, status, done, [], now)
        spec_v = runbook.verify
        progress = remediation.verification or verification.begin(now)
        result = await self._query(spec_v.query)
        turn = verification.turn(spec_v, progress, result, now)
        if turn.outcome is None:
            if remediation.verification is not None and turn.progress.clear_since == progress.clear_since:
                return Round(next_at=verification.next_check(spec_v, turn.progress, self.poll.total_seconds()))
            updated = remediation.model_copy(update={"verification": turn.progress})
            notices = (
                []
                if remediation.verification
                else [Notice("Verifying", f"checking {spec_v.query} until clear for {spec_v.window}")]
            )
            return await self._finish(obj, status, updated, notices, now)
        seconds = (now - turn.progress.started_at).total_seconds()
        VERIFICATION_SECONDS.labels(turn.outcome).observe(seconds)
        if turn.outcome == "verified":
            ended = remediation.model_copy(
                update={"verification": turn.progress, "verified": True, "phase": "Verified", "reason": turn.message}
            )
            return await self._finish(obj, status, ended, [], now)
        # Still firing, or Prometheus never answered: not proven, so a failure (the rule). Whether the
        # changes are undone is the runbook's call (verify.onFailure); the message says which of the two it was.
        undo = spec_v.on_failure == "undo" and engine.undoable(remediation) is not None
        ended = remediation.model_copy(
            update={
                "verification": turn.progress,
                "verified": False,
                "phase": "Undoing" if undo else "Failed",
                "failure": "VerificationFailed",
                "reason": turn.message[:1024],
            }
        )
        notice = Notice("VerificationFailed", turn.message + ("; undoing the changes" if undo else ""), True)
        return await self._finish(obj, status, ended, [notice], now, escalate=True)

    async def _query(self, query: str) -> QueryResult:
        if self.prometheus is None:
            return QueryResult(error="no Prometheus is configured (INCIDENTOPS_PROMETHEUS_URL)")
        try:
            series = await asyncio.to_thread(self.prometheus.query, query)
        except PrometheusError as error:
            return QueryResult(error=str(error))
        return QueryResult(firing=tuple(str(s) for s in series))

    async def _undo(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, remediation: RemediationStatus, now: datetime
    ) -> Round:
        """Undo the last change still standing; the run is Failed once none is left."""
        index = engine.undoable(remediation)
        if index is None:
            return await self._finish(
                obj, status, remediation.model_copy(update={"phase": "Failed"}), [], now, escalate=True
            )
        runbook = await self._runbook(
            obj["metadata"]["namespace"], remediation.model_copy(update={"runbook_generation": None})
        )
        recorded = remediation.steps[index]
        step = (
            runbook.steps[index]
            if runbook is not None and index < len(runbook.steps)
            else RunbookStep.model_validate({"name": recorded.name, "action": recorded.action})
        )
        key = f"{obj['metadata']['uid']}/{recorded.name}/undo"
        module = REGISTRY[Action(recorded.action)]
        try:
            target = self._target(obj, spec, status, step)
            plan = await self.kube.run(
                module.undo,
                self.kube.client,
                target,
                _parsed(recorded.before),
                key,
                self._context(obj, spec, status, now),
            )
            if plan.patch is not None and plan.refusal is None:
                await self.kube.run(module.apply, self.kube.client, plan)
                _count_action(obj, f"undo-{recorded.action}", "ok")
                await self._tell_target(obj, target, step, f"undone: {plan.reason}", {})
            message = f"undone: {plan.reason}" if plan.refusal is None else f"could not undo: {plan.reason}"
        except Unavailable:
            raise
        except (NoTarget, ActionError, KubeError) as error:
            message = f"could not undo: {error}"
        updated = engine.undone(remediation, index, message, now)
        notice = Notice("StepUndone", f"step {recorded.name}: {message}", message.startswith("could not"))
        return await self._finish(obj, status, updated, [notice], now, escalate=True)

    async def _finish(
        self,
        obj: Obj,
        status: IncidentStatus,
        remediation: RemediationStatus,
        notices: list[Notice],
        now: datetime,
        *,
        escalate: bool = False,
    ) -> Round:
        """Write a remediation change that is not a step decision (verification, undo, stop)."""
        before = status.remediation
        updated, shown = settle(status, remediation, notices, now, escalate=escalate, generation=_generation(obj))
        written = await self._write(obj, updated, shown)
        if written is None:
            return Round(again=True)
        await self._ended(obj["metadata"], before, remediation, now, _is_drill(obj))
        return Round(again=True)

    async def _ended(
        self,
        meta: Mapping[str, Any],
        before: RemediationStatus | None,
        after: RemediationStatus,
        now: datetime,
        drill: bool = False,
    ) -> None:
        """Count a run that just ended, in metrics and in its Runbook's status (never a simulation's)."""
        if before is not None and before.phase == after.phase:
            return
        if drill:
            return
        if after.phase not in ("Verified", "Done", "Failed"):
            return
        REMEDIATIONS.labels(after.runbook or "", str(after.phase)).inc()
        if not any(s.started_at for s in after.steps):
            return  # nothing ran (refused at the first step): not an execution
        rolled_back = any(s.state == StepState.ROLLED_BACK for s in after.steps)
        result = "Succeeded" if after.phase in ("Verified", "Done") else ("RolledBack" if rolled_back else "Failed")
        await self._record_run(str(meta["namespace"]), after.runbook, str(meta["name"]), now, result)

    async def _record_run(self, namespace: str, runbook: str | None, incident: str, at: datetime, result: str) -> None:
        """The Runbook's executions, last result and success rate (best effort: it is a summary)."""
        if runbook is None:
            return
        for _ in range(5):
            try:
                obj = await self.kube.get(RUNBOOK, namespace, runbook)
            except KubeError:
                return
            current = obj.get("status") or {}
            patch: dict[str, Any] = {}
            if result == "Running":
                patch["executions"] = int(current.get("executions", 0)) + 1
                patch["lastExecution"] = {"incident": incident, "at": format_time(at), "result": result}
            else:
                good = int(current.get("succeeded", 0)) + (result == "Succeeded")
                bad = int(current.get("failed", 0)) + (result != "Succeeded")
                last = current.get("lastExecution") or {"incident": incident, "at": format_time(at)}
                patch.update(succeeded=good, failed=bad, successRate=f"{round(100 * good / (good + bad))}%")
                patch["lastExecution"] = {**last, "incident": incident, "result": result}
            try:
                await self.kube.run(
                    self.kube.client.patch_status,
                    RUNBOOK,
                    namespace,
                    runbook,
                    {"status": patch},
                    obj["metadata"]["resourceVersion"],
                )
                return
            except Conflict:
                continue
            except KubeError as error:
                log.warning("could not record the run of runbook %s/%s: %s", namespace, runbook, error)
                return


REHEARSED = "rehearsal (kubectl incident simulate): every step planned and checked, nothing changed"


def _is_drill(body: Mapping[str, Any]) -> bool:
    """A simulation, rehearsal or live (spec.simulation, which alerts never set)."""
    return bool((body.get("spec") or {}).get("simulation"))


def _count_action(body: Mapping[str, Any], action: str, result: str) -> None:
    if not _is_drill(body):  # a live drill acts, but it is not a real incident's action
        ACTIONS.labels(action, result).inc()


def _how(verdict: Verdict, step: RunbookStep) -> str:
    """How the step would have run: on its own, or after whose approval and why."""
    if verdict.mode == "automatic" and not step.requires_approval:
        return "automatically"
    why = "; ".join(h.message for h in verdict.holds) or "the step requires approval"
    return f"after an approval: {why}"


def _refusal(reason: str, why: str, target: Target | None) -> Observed:
    """What the engine is told about a step that cannot run at all (no target, a refused dry run)."""
    return Observed(
        refusal=reason,
        message=why,
        verdict=Verdict("refused", [Hold(reason, why)]),
        target=str(target) if target is not None else None,
    )


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


def _pods(before: Mapping[str, str]) -> dict[str, str]:
    return {key[len("pod.") :]: uid for key, uid in before.items() if key.startswith("pod.")}


def _generation(obj: Obj) -> int | None:
    value = (obj.get("metadata") or {}).get("generation")
    return int(value) if value is not None else None
