"""rollback: back to the revision that was live before the change that preceded the alert.

The target revision comes from revisions.choose_target. The Deployment's pod template becomes
that ReplicaSet's (as `kubectl rollout undo --to-revision` does), so the controller reuses the
old ReplicaSet. Undo rolls forward to the template that was live before the rollback.
"""

from __future__ import annotations

import copy
from typing import Any

from incidentops.kube import KubeClient, Obj
from incidentops.remediation.actions.base import (
    Context,
    PatchesDeployment,
    Plan,
    deployment_or_refusal,
    dry_run,
    keyed_replace,
    refused,
)
from incidentops.remediation.revisions import TEMPLATE_HASH, ReplicaSetRevision, choose_target
from incidentops.remediation.targets import Target


def _selector(live: Obj) -> str:
    labels = ((live.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _owned(kube: KubeClient, live: Obj) -> list[Obj]:
    uid = live["metadata"]["uid"]
    found = kube.replica_sets(live["metadata"]["namespace"], _selector(live))
    return [rs for rs in found if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences") or [])]


def _template(replica_set: Obj) -> Obj:
    template: Obj = copy.deepcopy((replica_set.get("spec") or {}).get("template") or {})
    template.get("metadata", {}).get("labels", {}).pop(TEMPLATE_HASH, None)
    return template


class Rollback(PatchesDeployment):
    def plan(self, kube: KubeClient, target: Target, params: dict[str, Any], key: str, context: Context) -> Plan:
        live, refusal = deployment_or_refusal(kube, target, refuse_paused="a rollback would not roll out")
        if refusal:
            return refusal
        if context.alert_began is None:
            return refused(target, "NoAlertTime", "the incident has no start time to find the change before it")
        owned = {rs["metadata"]["name"]: rs for rs in _owned(kube, live)}
        revisions = [r for r in (ReplicaSetRevision.of(rs) for rs in owned.values()) if r is not None]
        choice = choose_target(revisions, context.alert_began, context.lookback)
        if choice.refusal or choice.target is None or choice.current is None:
            return refused(target, choice.refusal or "NoTarget", choice.reason)
        chosen = owned[choice.target.replica_set.name]
        patch = keyed_replace(live, "/spec/template", _template(chosen), key, context)
        before = {
            "revision": choice.current.number,
            "templateHash": choice.current.replica_set.template_hash,
            "toRevision": choice.target.number,
            "toTemplateHash": choice.target.replica_set.template_hash,
        }
        if choice.nothing_to_do:
            return Plan(
                target, None, [], before, reason=f"{target} already runs revision {choice.target.number}'s template"
            )
        diff = dry_run(kube, target, live, patch)
        return Plan(target, patch, diff, before, reason=choice.reason)

    def undo(self, kube: KubeClient, target: Target, before: dict[str, Any], key: str, context: Context) -> Plan:
        """Roll forward to the template replaced, unless the Deployment has moved on since (a human's deploy)."""
        live = kube.deployment(target.namespace, target.name)
        owned = {(rs["metadata"].get("labels") or {}).get(TEMPLATE_HASH): rs for rs in _owned(kube, live)}
        wanted, ours = before.get("templateHash"), before.get("toTemplateHash")
        if wanted not in owned:
            return refused(target, "RevisionGone", f"the ReplicaSet of template {wanted} no longer exists")
        current = (live.get("spec") or {}).get("template")
        if current == _template(owned[wanted]):
            return Plan(target, None, [], {}, reason=f"{target} already runs template {wanted}")
        if ours in owned and current != _template(owned[ours]):
            return refused(target, "ChangedSince", f"{target} no longer runs the template the rollback set: kept")
        patch = keyed_replace(live, "/spec/template", _template(owned[wanted]), key, context)
        return Plan(target, patch, dry_run(kube, target, live, patch), {}, reason=f"back to template {wanted}")


ACTION = Rollback()
