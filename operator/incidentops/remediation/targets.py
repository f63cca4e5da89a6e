"""What a step acts on: the Deployment (or Node) it names, else the incident's own workload.

Only the incident's namespace: a Runbook lives in a namespace, and whoever may write Runbooks
there must not reach, through the operator's permissions, workloads of another namespace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from incidentops.api.v1alpha1.incident import IncidentSpec
from incidentops.api.v1alpha1.runbook import Action, RunbookStep, step_refusal


@dataclass(frozen=True)
class Target:
    """What the step acts on: a Deployment (most actions) or a Node (cordon; no namespace)."""

    namespace: str
    name: str
    kind: str = "Deployment"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


NO_TARGET_ACTIONS = frozenset({Action.PROMQL_CHECK, Action.HTTP, Action.NOTIFY})
# Steps that change nothing need no approval and never count against the storm budget.
CHANGES_NOTHING = frozenset({Action.WAIT_ROLLOUT, Action.PROMQL_CHECK, Action.NOTIFY})
NODE_LABELS = ("node", "kubernetes_node", "instance_node")


class NoTarget(ValueError):
    """The step cannot act: the message says what is missing; `reason` is for status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def resolve(step: RunbookStep, namespace: str, spec: IncidentSpec, label_sets: Sequence[Mapping[str, str]]) -> Target:
    """The step's target; raises NoTarget with a reason when there is none it may act on."""
    action = Action(step.action)
    if action in NO_TARGET_ACTIONS:
        return Target(namespace, step.name, kind="Step")
    problem = step_refusal(step, namespace)
    if problem is not None:
        raise NoTarget(*problem)
    ref = step.target
    if action == Action.CORDON:
        name = ref.name if ref is not None and ref.name else _node_from(label_sets)
        if not name:
            raise NoTarget("NoNode", "cordon needs target.name or an alert with a node label")
        return Target("", name, kind="Node")
    name = ref.name if ref is not None and ref.name else None
    if name is None:
        name = next((w.name for w in spec.affected_workloads if w.kind == "Deployment" and w.name), None)
    if name is None:
        raise NoTarget("NoTarget", "the step names no Deployment and the incident affects none")
    return Target(namespace, name)


def _node_from(label_sets: Sequence[Mapping[str, str]]) -> str | None:
    for labels in label_sets:
        for key in NODE_LABELS:
            if labels.get(key):
                return labels[key]
    return None
