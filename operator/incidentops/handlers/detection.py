"""Kopf handler feeding DetectionRules to the evaluator: new, changed and deleted rules.

An event handler, like the Incident one: it needs no finalizer, so a rule deleted while the
operator is down goes at once (and what it opened is resolved when the operator sees it gone).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from incidentops.api.v1alpha1.common import GROUP, VERSION
from incidentops.api.v1alpha1.resources import DETECTION_RULE
from incidentops.handlers.deps import Deps


def register(registry: kopf.OperatorRegistry, deps: Deps) -> None:
    @kopf.on.event(GROUP, VERSION, DETECTION_RULE.plural, registry=registry, id="detection-rules")
    async def rule_event(*, event: kopf.RawEvent, **_: Any) -> None:
        evaluator = deps.evaluator
        if evaluator is None:
            return
        body: Mapping[str, Any] = event.get("object") or {}
        if event.get("type") == "DELETED":
            evaluator.forget(body)
        else:
            evaluator.observe(body)
