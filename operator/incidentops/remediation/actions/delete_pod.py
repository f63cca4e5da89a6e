"""delete-pod: delete stuck pods so their controller replaces them, never a workload's last ready ones.

Pods come from `params.labelSelector`, else from the target Deployment's selector. Pods that are
not ready go first (the stuck and the zombie); a ready pod goes only when none is stuck, and
never when that would leave fewer than half the ready replicas (and never the last one). Each
deletion carries the pod's uid as a precondition, so a new pod that took a name is never hit.
"""

from __future__ import annotations

from typing import Any

from incidentops.kube import KubeClient, NotFound, Obj
from incidentops.remediation.actions.base import ActionBase, ActionError, Context, Plan, Started, opted_out, refused
from incidentops.remediation.targets import Target


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _selector(kube: KubeClient, target: Target, params: dict[str, Any]) -> tuple[str, Obj | None]:
    if params.get("labelSelector"):
        return str(params["labelSelector"]), None
    live = kube.deployment(target.namespace, target.name)
    labels = ((live.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())), live


def choose_pods(pods: list[Obj]) -> tuple[list[Obj], str]:
    """The pods to delete and why; none when the blast radius forbids it."""
    alive = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    stuck = [p for p in alive if not _ready(p)]
    if stuck:
        return stuck, f"{len(stuck)} pod{'s' if len(stuck) != 1 else ''} not ready"
    ready = sorted(alive, key=lambda p: str(p["metadata"].get("creationTimestamp", "")))
    if len(ready) < 2:
        return [], f"only {len(ready)} ready pod: deleting it would take the workload down"
    return ready[:1], f"every pod is ready; the oldest of {len(ready)} goes"


class DeletePod(ActionBase):
    check_unchanged = False

    def for_apply(self, kube: KubeClient, step: Started) -> Plan:
        """The pods chosen when the step started, never a fresh choice: a retry deletes no one new."""
        pods = {name[len("pod.") :]: uid for name, uid in step.before.items() if name.startswith("pod.")}
        return Plan(step.target, {"pods": pods}, before=step.before)

    def plan(self, kube: KubeClient, target: Target, params: dict[str, Any], key: str, context: Context) -> Plan:
        selector, live = _selector(kube, target, params)
        if live is not None and opted_out(live):
            return refused(target, "TargetOptedOut", f"{target} is annotated incidentops.dev/remediation: disabled")
        if not selector:
            return refused(target, "NoSelector", "no labelSelector and no Deployment selector to choose pods with")
        chosen, why = choose_pods(kube.pods(target.namespace, selector))
        if not chosen:
            return refused(target, "BlastRadius", why)
        pods = {p["metadata"]["name"]: p["metadata"]["uid"] for p in chosen}
        for name, uid in pods.items():  # the apiserver's word that each delete would be accepted
            kube.delete_pod(target.namespace, name, uid, dry_run=True)
        diff = [f"delete pod {name}" for name in sorted(pods)]
        before = {f"pod.{name}": uid for name, uid in pods.items()}
        return Plan(target, {"pods": pods}, diff, before, reason=f"{why}: {', '.join(sorted(pods))}")

    def apply(self, kube: KubeClient, plan: Plan) -> str | None:
        if not isinstance(plan.patch, dict):
            raise ActionError(f"nothing to delete on {plan.target}: {plan.refusal}")
        for name, uid in plan.patch["pods"].items():
            try:
                kube.delete_pod(plan.target.namespace, name, uid)
            except NotFound:
                continue  # already gone: what the step wanted
        return plan.reason or None

    def happened(self, kube: KubeClient, plan: Plan, key: str) -> bool:
        """Every planned pod is gone or going (matched by uid: a replacement may reuse the name)."""
        planned = {str(uid) for key, uid in plan.before.items() if key.startswith("pod.")}
        selector, _ = _selector(kube, plan.target, {})
        remaining = {
            p["metadata"]["uid"]
            for p in kube.pods(plan.target.namespace, selector)
            if not p["metadata"].get("deletionTimestamp")
        }
        return not planned & remaining

    def undo(self, kube: KubeClient, target: Target, before: dict[str, Any], key: str, context: Context) -> Plan:
        return Plan(target, None, reason="deleted pods are replaced by their controller; nothing to undo")


ACTION = DeletePod()
