"""What remediation does after a decision is written: apply a step, undo one, tell the target's Events.

Only ever called with the status that carries the step's key already written, so a crash in
here leaves an intent the next look checks ("did it happen?") rather than a change nobody knows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentStatus, RemediationStatus
from incidentops.api.v1alpha1.runbook import Action, RunbookSpec, RunbookStep
from incidentops.kube import AsyncKube, KubeError, Obj, Unavailable
from incidentops.metrics import ACTIONS
from incidentops.remediation import engine
from incidentops.remediation.actions import REGISTRY
from incidentops.remediation.actions.base import ActionError, Started
from incidentops.remediation.engine import Observed
from incidentops.remediation.steps import StepSetting, parsed
from incidentops.remediation.targets import NoTarget, Target

log = logging.getLogger(__name__)


def counted(body: Mapping[str, Any], action: str, result: str) -> None:
    """An action's outcome in the metric, unless it was a simulation's (a live drill acts, but is no incident)."""
    if not (body.get("spec") or {}).get("simulation"):
        ACTIONS.labels(action, result).inc()


class Actor:
    def __init__(self, kube: AsyncKube, setting: StepSetting, clock: Callable[[], datetime]) -> None:
        self.kube = kube
        self.setting = setting
        self.clock = clock

    async def apply(self, written: Obj, spec: IncidentSpec, runbook: RunbookSpec, act: engine.Act) -> Observed | None:
        """Apply one recorded step; the outcome goes into the next decision (None: it stays in doubt)."""
        status = IncidentStatus.model_validate(written["status"])
        remediation = status.remediation or RemediationStatus()
        index = [s.name for s in runbook.steps].index(act.step)
        step, recorded = runbook.steps[index], remediation.steps[index]
        action = Action(step.action)
        module = REGISTRY[action]
        client = self.kube.client
        at = recorded.started_at or self.clock()
        try:
            target = self.setting.target(written, spec, status, step)
            context = self.setting.context(written, spec, status, at)
            params = self.setting.params(step)
            plan = await self.kube.run(
                module.for_apply, client, Started(target, params, act.key, context, parsed(recorded.before))
            )
            if plan.refusal:
                counted(written, str(action), "refused")
                return Observed(happened=False, error=f"{plan.refusal}: {plan.reason}", target=str(target))
            if plan.nothing_to_do and module.check_unchanged and not module.probe:
                happened = await self.kube.run(module.happened, client, plan, act.key)
                counted(written, str(action), "skipped")
                return Observed(happened=True, message=plan.reason if not happened else "", target=str(target))
            output = await self.kube.run(module.apply, client, plan)
            if module.probe:
                happened = await self.kube.run(module.happened, client, plan, act.key)
                return Observed(happened=happened, target=str(target))
        except NoTarget as missing:
            return Observed(happened=False, error=str(missing))
        except ActionError as error:
            counted(written, str(action), "failed")
            return Observed(happened=False, error=str(error))
        except Unavailable as error:
            log.warning(
                "step %s of %s: the apiserver did not answer (%s); the step is in doubt", act.step, act.key, error
            )
            return None
        except KubeError as error:
            counted(written, str(action), "failed")
            return Observed(happened=False, error=f"{type(error).__name__}: {error}")
        counted(written, str(action), "ok")
        await self.tell_target(written, target, step, output or plan.reason, recorded.before)
        return Observed(happened=True, message=output or plan.reason, target=str(target))

    async def undo(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, index: int, runbook: RunbookSpec | None
    ) -> str:
        """Undo one succeeded step (idempotent: an undo already made, or a target changed since, changes nothing)."""
        remediation = status.remediation or RemediationStatus()
        recorded = remediation.steps[index]
        step = (
            runbook.steps[index]
            if runbook is not None and index < len(runbook.steps)
            else RunbookStep.model_validate({"name": recorded.name, "action": recorded.action})
        )
        key = f"{obj['metadata']['uid']}/{recorded.name}/undo"
        module = REGISTRY[Action(recorded.action)]
        try:
            target = self.setting.target(obj, spec, status, step)
            context = self.setting.context(obj, spec, status, self.clock())
            plan = await self.kube.run(module.undo, self.kube.client, target, parsed(recorded.before), key, context)
            if plan.patch is not None and plan.refusal is None:
                await self.kube.run(module.apply, self.kube.client, plan)
                counted(obj, f"undo-{recorded.action}", "ok")
                await self.tell_target(obj, target, step, f"undone: {plan.reason}", {})
            return f"undone: {plan.reason}" if plan.refusal is None else f"could not undo: {plan.reason}"
        except Unavailable:
            raise
        except (NoTarget, ActionError, KubeError) as error:
            return f"could not undo: {error}"

    async def tell_target(
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
