"""cordon: mark a bad node unschedulable (named by params or the alert's `node` label); undo uncordons.

Refused when it would leave fewer than half the cluster's nodes schedulable (and never the last
one): cordoning the whole fleet because of one noisy alert is worse than the alert.
"""

from __future__ import annotations

from typing import Any

from incidentops.kube import KubeClient
from incidentops.remediation.actions.base import (
    ACTED_BY_ANNOTATION,
    ACTION_KEY_ANNOTATION,
    ActionBase,
    ActionError,
    Context,
    Plan,
    annotation,
    opted_out,
    refused,
)
from incidentops.remediation.targets import Target


def _schedulable(nodes: list[dict[str, Any]]) -> list[str]:
    return [n["metadata"]["name"] for n in nodes if not (n.get("spec") or {}).get("unschedulable")]


class Cordon(ActionBase):
    unschedulable = True

    def plan(self, kube: KubeClient, target: Target, params: dict[str, Any], key: str, context: Context) -> Plan:
        node = kube.node(target.name)
        if opted_out(node):
            return refused(target, "TargetOptedOut", f"{target} is annotated incidentops.dev/remediation: disabled")
        currently = bool((node.get("spec") or {}).get("unschedulable"))
        marks = {ACTION_KEY_ANNOTATION: key, ACTED_BY_ANNOTATION: context.incident}
        patch = {"metadata": {"annotations": marks}, "spec": {"unschedulable": self.unschedulable}}
        if currently == self.unschedulable:
            return Plan(target, None, [], {"unschedulable": currently}, reason=f"{target} is already as wanted")
        if self.unschedulable:
            nodes = kube.nodes()
            left = [n for n in _schedulable(nodes) if n != target.name]
            if len(left) < max(1, (len(nodes) + 1) // 2):
                return refused(
                    target,
                    "TooFewSchedulable",
                    f"cordoning {target.name} would leave {len(left)} of {len(nodes)} nodes schedulable",
                )
        kube.patch_node(target.name, patch, dry_run=True)  # the apiserver's word that it would be accepted
        verb = "cordon" if self.unschedulable else "uncordon"
        diff = [f"spec.unschedulable: {str(currently).lower()} -> {str(self.unschedulable).lower()}"]
        return Plan(target, patch, diff, {"unschedulable": currently}, reason=f"{verb} {target.name}")

    def apply(self, kube: KubeClient, plan: Plan) -> str | None:
        if not isinstance(plan.patch, dict):
            raise ActionError(f"nothing to apply on {plan.target}: {plan.refusal or 'no change'}")
        kube.patch_node(plan.target.name, plan.patch)
        return plan.reason or None

    def happened(self, kube: KubeClient, plan: Plan, key: str) -> bool:
        return annotation(kube.node(plan.target.name), ACTION_KEY_ANNOTATION) == key

    def undo(self, kube: KubeClient, target: Target, before: dict[str, Any], key: str, context: Context) -> Plan:
        if before.get("unschedulable"):
            return Plan(target, None, reason=f"{target.name} was cordoned before; it stays so")
        return Uncordon().plan(kube, target, {}, key, context)


class Uncordon(Cordon):
    unschedulable = False


ACTION = Cordon()
