"""What remediation reads before it decides: the Runbook, a step's dry run and guards, Prometheus.

Reads only: server-side dry runs (dryRun=All), GETs, queries. Nothing here changes the cluster,
so the decision that follows can be made again after a lost race without doing anything twice.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from pydantic import ValidationError

from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentStatus, RemediationStatus, StepState
from incidentops.api.v1alpha1.resources import RUNBOOK
from incidentops.api.v1alpha1.runbook import Action, RunbookSpec, RunbookStep
from incidentops.config import Config
from incidentops.kube import AsyncKube, KubeError, NotFound, Obj, Unavailable
from incidentops.prometheus import Prometheus, PrometheusError
from incidentops.remediation.actions import REGISTRY
from incidentops.remediation.actions.base import ActionError, Started
from incidentops.remediation.engine import Observed
from incidentops.remediation.guards import Hold, Proposal, Verdict, network_partition
from incidentops.remediation.guards import decide as judge
from incidentops.remediation.ledger import Ledger
from incidentops.remediation.steps import StepSetting, parsed
from incidentops.remediation.targets import CHANGES_NOTHING, NoTarget, Target
from incidentops.remediation.verification import QueryResult
from incidentops.triage.selection import IncidentFacts


def refusal(reason: str, why: str, target: Target | None) -> Observed:
    """What the engine is told about a step that cannot run at all (no target, a refused dry run)."""
    return Observed(
        refusal=reason,
        message=why,
        verdict=Verdict("refused", [Hold(reason, why)]),
        target=str(target) if target is not None else None,
    )


def how(verdict: Verdict, step: RunbookStep) -> str:
    """How the step would have run: on its own, or after whose approval and why."""
    if verdict.mode == "automatic" and not step.requires_approval:
        return "automatically"
    why = "; ".join(h.message for h in verdict.holds) or "the step requires approval"
    return f"after an approval: {why}"


class Reader:
    def __init__(
        self, kube: AsyncKube, config: Config, setting: StepSetting, ledger: Ledger, in_doubt_after: timedelta
    ) -> None:
        self.kube = kube
        self.config = config
        self.setting = setting
        self.ledger = ledger
        self.in_doubt_after = in_doubt_after

    @property
    def prometheus(self) -> Prometheus | None:
        return self.setting.prometheus

    async def runbook_named(self, namespace: str, name: str) -> tuple[RunbookSpec, int | None] | None:
        """A Runbook and its generation; None when it does not exist or does not validate."""
        try:
            obj = await self.kube.get(RUNBOOK, namespace, name)
            return RunbookSpec.model_validate(obj.get("spec") or {}), (obj.get("metadata") or {}).get("generation")
        except (NotFound, ValidationError):
            return None

    async def runbook(self, namespace: str, remediation: RemediationStatus) -> RunbookSpec | None:
        """The run's Runbook as it was chosen; None when it was deleted or has changed since (a new generation)."""
        if remediation.runbook is None:
            return None
        found = await self.runbook_named(namespace, remediation.runbook)
        if found is None:
            return None
        wanted = remediation.runbook_generation
        if wanted is not None and found[1] != wanted:
            return None
        return found[0]

    async def step(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, runbook: RunbookSpec, index: int, now: datetime
    ) -> Observed:
        """The step's dry-run plan and the guards' verdict (before it runs), or whether its effect is there."""
        step, recorded = runbook.steps[index], (status.remediation or RemediationStatus()).steps[index]
        try:
            target = self.setting.target(obj, spec, status, step)
        except NoTarget as missing:
            return refusal(missing.reason, str(missing), None)
        module = REGISTRY[Action(step.action)]
        client = self.kube.client
        if recorded.state == StepState.RUNNING:
            key = recorded.idempotency_key or ""
            started = recorded.started_at or now
            if not module.repeat_in_doubt and now - started >= self.in_doubt_after:
                why = "InDoubt: the call may or may not have been made before a crash; it is not repeated"
                return Observed(happened=False, error=why, target=str(target))
            context = self.setting.context(obj, spec, status, started)
            try:
                started_step = Started(target, self.setting.params(step), key, context, parsed(recorded.before))
                plan = await self.kube.run(module.recorded, client, started_step)
                happened = await self.kube.run(module.happened, client, plan, key)
            except ActionError as error:
                return Observed(happened=False, error=str(error), target=str(target))
            except NotFound as error:
                return Observed(happened=False, error=f"{target} is gone: {error}", target=str(target))
            return Observed(happened=happened, target=str(target))
        # A stable time for the dry run (a restart's restartedAt shows it): the same plan, the same diff,
        # so a step waiting for approval is not rewritten on every look.
        context = self.setting.context(obj, spec, status, (status.remediation or RemediationStatus()).chosen_at or now)
        try:
            plan = await self.kube.run(module.plan, client, target, self.setting.params(step), "dry-run", context)
        except NotFound:
            return refusal("TargetNotFound", f"{target} does not exist", target)
        except KubeError as error:
            if isinstance(error, Unavailable):
                raise
            return refusal("DryRunRefused", f"the dry run of {step.action} on {target} was refused: {error}", target)
        verdict = self.verdict(obj, spec, status, runbook, step, target, now)
        # Planned and checked, not applied: a rehearsal (kubectl incident simulate), or safety.dryRunOnly.
        dry = None
        if spec.rehearsal:
            dry = f"rehearsal: would {plan.reason or step.action} ({how(verdict, step)})"
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

    def verdict(
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
            category=facts.category,
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

    async def query(self, query: str) -> QueryResult:
        if self.prometheus is None:
            return QueryResult(error="no Prometheus is configured (INCIDENTOPS_PROMETHEUS_URL)")
        try:
            series = await asyncio.to_thread(self.prometheus.query, query)
        except PrometheusError as error:
            return QueryResult(error=str(error))
        return QueryResult(firing=tuple(str(s) for s in series))
