"""The action registry: one small module per action, each with plan, apply, happened and undo."""

from __future__ import annotations

from incidentops.api.v1alpha1.runbook import Action
from incidentops.remediation.actions import restart, rollback, scale
from incidentops.remediation.actions.base import DeploymentAction

REGISTRY: dict[Action, DeploymentAction] = {
    Action.SCALE: scale.ACTION,
    Action.RESTART: restart.ACTION,
    Action.ROLLBACK: rollback.ACTION,
}
