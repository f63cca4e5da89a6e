"""What every Deployment action shares: its target, its plan, and the key that proves it happened.

The plan is the apiserver's own answer to a server-side dry run (dryRun=All), so the diff an
approver sees is what would really be stored. Applying writes the change and the step's
idempotency key (an annotation) in one patch: after a crash, "did it happen?" is one read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from incidentops.egress import EgressPolicy
from incidentops.kube import KubeClient, Obj
from incidentops.prometheus import Prometheus
from incidentops.remediation.diff import spec_diff
from incidentops.remediation.targets import Target

Params = dict[str, Any]
ACTION_KEY_ANNOTATION = "incidentops.dev/action-key"
ACTED_BY_ANNOTATION = "incidentops.dev/acted-for"
OPT_OUT_ANNOTATION = "incidentops.dev/remediation"


@dataclass(frozen=True)
class Context:
    """What an action may need to know about the incident."""

    incident: str
    alert_began: datetime | None = None
    now: datetime | None = None
    prometheus: Prometheus | None = None
    facts: dict[str, str] = field(default_factory=dict)
    lookback: timedelta = timedelta(hours=24)
    egress: EgressPolicy | None = None  # where http steps may call; None (the plugin) checks nothing


@dataclass(frozen=True)
class Started:
    """A step whose intent is recorded: what it was asked, under which key, and what it replaced then."""

    target: Target
    params: Params
    key: str
    context: Context
    before: dict[str, Any]


class ActionError(Exception):
    """The action ran and failed for a reason worth recording (a refused call, an unexpected status)."""


@dataclass(frozen=True)
class Plan:
    """What the step would do: the patch, the diff a human reads, and what it replaces (for undo)."""

    target: Target
    patch: Obj | list[Obj] | None
    diff: list[str] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)
    refusal: str | None = None
    reason: str = ""

    @property
    def nothing_to_do(self) -> bool:
        return self.refusal is None and (self.patch is None or not self.diff)


class ActionModule(Protocol):
    """plan (dry run, no change), apply (the plan, keyed), happened (is its effect there?), undo (a plan).

    And what the shell must know of the action, so it never branches on which one it is:
    `probe` (it changes nothing and waits for happened()), `repeat_in_doubt` (a recorded intent
    without its effect may be applied again, same key), `recorded(step)` (the plan as recorded when
    the step started) and `for_apply(step)` (the plan apply() carries out).
    """

    probe: bool
    repeat_in_doubt: bool
    check_unchanged: bool

    def plan(self, kube: KubeClient, target: Target, params: dict[str, Any], key: str, context: Context) -> Plan: ...

    def apply(self, kube: KubeClient, plan: Plan) -> str | None: ...

    def happened(self, kube: KubeClient, plan: Plan, key: str) -> bool: ...

    def undo(self, kube: KubeClient, target: Target, before: dict[str, Any], key: str, context: Context) -> Plan: ...

    def recorded(self, kube: KubeClient, step: Started) -> Plan: ...

    def for_apply(self, kube: KubeClient, step: Started) -> Plan: ...


class ActionBase:
    """Defaults every action shares; an action overrides what differs."""

    probe = False  # changes nothing; done once happened() says so (wait-rollout, promql-check)
    repeat_in_doubt = True  # applied again with the same key when its effect is not there after a crash
    check_unchanged = True  # a plan with nothing to change is checked (happened?) and skipped, not applied

    def recorded(self, kube: KubeClient, step: Started) -> Plan:
        """The plan as the step recorded it when it started: what it replaces comes from status, not from now."""
        return Plan(step.target, None, before=step.before)

    def for_apply(self, kube: KubeClient, step: Started) -> Plan:
        """The plan apply() carries out: planned afresh, under the step's key."""
        plan: Plan = self.plan(kube, step.target, step.params, step.key, step.context)  # type: ignore[attr-defined]
        return plan


class Replans(ActionBase):
    """Actions whose recorded plan is planned again (they keep nothing in the target to compare with)."""

    check_unchanged = False

    def recorded(self, kube: KubeClient, step: Started) -> Plan:
        plan: Plan = self.plan(kube, step.target, step.params, step.key, step.context)  # type: ignore[attr-defined]
        return plan


class PatchesDeployment(ActionBase):
    """apply and happened for actions that are one keyed patch of a Deployment."""

    def apply(self, kube: KubeClient, plan: Plan) -> str | None:
        if plan.patch is None:
            raise ActionError(f"nothing to apply on {plan.target}: {plan.refusal or 'no change'}")
        kube.patch_deployment(plan.target.namespace, plan.target.name, plan.patch)
        return plan.reason or None

    def happened(self, kube: KubeClient, plan: Plan, key: str) -> bool:
        """Whether the step with this key already changed the target (an in-doubt step after a crash)."""
        live = kube.deployment(plan.target.namespace, plan.target.name)
        return annotation(live, ACTION_KEY_ANNOTATION) == key


def annotation(obj: Obj, name: str) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(name)
    return None if value is None else str(value)


def keyed(patch: Obj, key: str, context: Context) -> Obj:
    """A merge patch that also records which step (and incident) made it."""
    meta = patch.setdefault("metadata", {})
    meta.setdefault("annotations", {}).update({ACTION_KEY_ANNOTATION: key, ACTED_BY_ANNOTATION: context.incident})
    return patch


def keyed_replace(live: Obj, path: str, value: object, key: str, context: Context) -> list[Obj]:
    """A JSON patch replacing one field whole (a merge would keep what the old value lacks), with the key."""
    marks = {ACTION_KEY_ANNOTATION: key, ACTED_BY_ANNOTATION: context.incident}
    ops: list[Obj] = [{"op": "replace", "path": path, "value": value}]
    if (live.get("metadata") or {}).get("annotations") is None:
        return [*ops, {"op": "add", "path": "/metadata/annotations", "value": marks}]
    return [
        *ops,
        *({"op": "add", "path": f"/metadata/annotations/{_pointer(k)}", "value": v} for k, v in marks.items()),
    ]


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def dry_run(kube: KubeClient, target: Target, live: Obj, patch: Obj | list[Obj]) -> list[str]:
    """The diff between the live Deployment and what the apiserver says it would store."""
    planned = kube.patch_deployment(target.namespace, target.name, patch, dry_run=True)
    return [
        line
        for line in spec_diff(live, planned)
        if ACTION_KEY_ANNOTATION not in line and ACTED_BY_ANNOTATION not in line
    ]


def refused(target: Target, reason: str, message: str) -> Plan:
    return Plan(target, None, refusal=reason, reason=message)


def deployment_or_refusal(
    kube: KubeClient, target: Target, *, refuse_paused: str | None = None
) -> tuple[Obj, Plan | None]:
    """The live Deployment, and a refusal when it opted out (or is paused, when that stops the action)."""
    live = kube.deployment(target.namespace, target.name)
    if opted_out(live):
        return live, refused(target, "TargetOptedOut", f"{target} is annotated {OPT_OUT_ANNOTATION}: disabled")
    if refuse_paused and (live.get("spec") or {}).get("paused"):
        return live, refused(target, "Paused", f"{target} is paused: {refuse_paused}")
    return live, None


def opted_out(live: Obj) -> bool:
    return (annotation(live, OPT_OUT_ANNOTATION) or "").lower() == "disabled"
