"""restart: a rollout restart, as kubectl does it (the restartedAt annotation of the pod template).

The annotation's value is the step's time, so two restarts never collapse into one and the
rollout it starts is visible in `kubectl rollout history`. A restart cannot be undone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from incidentops.api.v1alpha1.common import format_time
from incidentops.kube import KubeClient
from incidentops.remediation.actions.base import Context, PatchesDeployment, Plan, deployment_or_refusal, dry_run, keyed
from incidentops.remediation.targets import Target

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


class Restart(PatchesDeployment):
    def plan(self, kube: KubeClient, target: Target, params: dict[str, Any], key: str, context: Context) -> Plan:
        live, refusal = deployment_or_refusal(kube, target, refuse_paused="a restart would not roll out")
        if refusal:
            return refusal
        at = format_time(context.now or datetime.now(UTC))
        patch = keyed({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}}, key, context)
        diff = dry_run(kube, target, live, patch)
        generation = (live.get("metadata") or {}).get("generation")
        return Plan(target, patch, diff, {"generation": generation}, reason=f"rollout restart of {target}")

    def undo(self, kube: KubeClient, target: Target, before: dict[str, Any], key: str, context: Context) -> Plan:
        return Plan(target, None, reason="a restart cannot be undone")


ACTION = Restart()
