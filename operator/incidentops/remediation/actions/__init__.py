"""The action registry: one small module per action, each with plan, apply, happened and undo."""

from __future__ import annotations

from incidentops.api.v1alpha1.runbook import Action
from incidentops.remediation.actions import (
    cordon,
    delete_pod,
    http_call,
    notify,
    promql_check,
    restart,
    rollback,
    scale,
    wait_rollout,
)
from incidentops.remediation.actions.base import ActionModule

REGISTRY: dict[Action, ActionModule] = {
    Action.SCALE: scale.ACTION,
    Action.RESTART: restart.ACTION,
    Action.ROLLBACK: rollback.ACTION,
    Action.DELETE_POD: delete_pod.ACTION,
    Action.CORDON: cordon.ACTION,
    Action.WAIT_ROLLOUT: wait_rollout.ACTION,
    Action.PROMQL_CHECK: promql_check.ACTION,
    Action.HTTP: http_call.ACTION,
    Action.NOTIFY: notify.ACTION,
}
