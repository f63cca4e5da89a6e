"""wait-rollout: changes nothing; its effect is a completed rollout (the executor polls happened() until timeout).

Complete means what `kubectl rollout status` checks: the controller saw the latest generation,
and every replica is updated and available, with no old ones left.
"""

from __future__ import annotations

from typing import Any

from incidentops.kube import KubeClient, Obj
from incidentops.remediation.actions.base import ActionBase, Context, Plan
from incidentops.remediation.targets import Target


def rollout_complete(live: Obj) -> bool:
    spec, status = live.get("spec") or {}, live.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    return (
        int(status.get("observedGeneration", 0)) >= int((live.get("metadata") or {}).get("generation", 0))
        and int(status.get("updatedReplicas", 0)) == wanted
        and int(status.get("availableReplicas", 0)) == wanted
        and int(status.get("replicas", 0)) == wanted
    )


class WaitRollout(ActionBase):
    probe = True

    def plan(self, kube: KubeClient, target: Target, params: dict[str, Any], key: str, context: Context) -> Plan:
        return Plan(target, None, [], {}, reason=f"wait until the rollout of {target} completes")

    def apply(self, kube: KubeClient, plan: Plan) -> str | None:
        return None  # nothing to change: the step waits for happened()

    def happened(self, kube: KubeClient, plan: Plan, key: str) -> bool:
        return rollout_complete(kube.deployment(plan.target.namespace, plan.target.name))

    def undo(self, kube: KubeClient, target: Target, before: dict[str, Any], key: str, context: Context) -> Plan:
        return Plan(target, None, reason="waiting changes nothing")


ACTION = WaitRollout()
