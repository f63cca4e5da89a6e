"""Kopf handler for EscalationPolicies: a new or changed policy wakes the incidents that had none."""

from __future__ import annotations

from typing import Any

import kopf

from incidentops.api.v1alpha1.common import GROUP, VERSION
from incidentops.api.v1alpha1.resources import ESCALATION_POLICY
from incidentops.escalation.concern import Escalation
from incidentops.handlers.deps import Deps


def register(registry: kopf.OperatorRegistry, deps: Deps) -> None:
    @kopf.on.event(GROUP, VERSION, ESCALATION_POLICY.plural, registry=registry, id="escalation-policy-wake")
    async def policy_event(*, event: kopf.RawEvent, namespace: str | None, **_: Any) -> None:
        escalation = deps.scheduler.concern("escalation")
        if isinstance(escalation, Escalation) and event.get("type") in ("ADDED", "MODIFIED", None):
            for key in escalation.without_policy(namespace or ""):
                deps.scheduler.wake(key, "escalation")
