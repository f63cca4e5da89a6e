"""scale: set a Deployment's replicas (`params.replicas`); undo puts the old count back.

A Deployment whose replicas a HorizontalPodAutoscaler owns is refused (reason HPAOwnsReplicas):
the HPA would undo the change within seconds, and raising its bounds is a capacity decision that
belongs to a human.
"""

from __future__ import annotations

from typing import Any

from incidentops.kube import KubeClient
from incidentops.remediation.actions.base import (
    Context,
    PatchesDeployment,
    Plan,
    deployment_or_refusal,
    dry_run,
    keyed,
    refused,
)
from incidentops.remediation.targets import Target


def _hpa_owner(kube: KubeClient, target: Target) -> str | None:
    for hpa in kube.autoscalers(target.namespace):
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if ref.get("kind") == "Deployment" and ref.get("name") == target.name:
            return str(hpa["metadata"]["name"])
    return None


class Scale(PatchesDeployment):
    def plan(self, kube: KubeClient, target: Target, params: dict[str, Any], key: str, context: Context) -> Plan:
        live, refusal = deployment_or_refusal(kube, target)
        if refusal:
            return refusal
        replicas = params.get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            return refused(target, "InvalidParams", "scale needs params.replicas, a whole number of at least 0")
        owner = _hpa_owner(kube, target)
        if owner:
            return refused(target, "HPAOwnsReplicas", f"HorizontalPodAutoscaler {owner} owns the replicas of {target}")
        current = int((live.get("spec") or {}).get("replicas", 1))
        patch = keyed({"spec": {"replicas": replicas}}, key, context)
        diff = dry_run(kube, target, live, patch)
        before = {"replicas": current, "set": replicas}
        return Plan(target, patch, diff, before, reason=f"scale {target} from {current} to {replicas}")

    def undo(self, kube: KubeClient, target: Target, before: dict[str, Any], key: str, context: Context) -> Plan:
        """Back to the old count, unless someone has changed the count since (then their choice stands)."""
        live = kube.deployment(target.namespace, target.name)
        current = int((live.get("spec") or {}).get("replicas", 1))
        if current == before.get("replicas"):
            return Plan(target, None, [], {}, reason=f"{target} is already back at {current} replicas")
        if "set" in before and current != before["set"]:
            return refused(
                target, "ChangedSince", f"{target} has {current} replicas, not the {before['set']} the step set: kept"
            )
        return self.plan(kube, target, {"replicas": before.get("replicas")}, key, context)


ACTION = Scale()
