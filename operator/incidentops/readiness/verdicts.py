"""A Runbook's or EscalationPolicy's Ready condition: the checks' verdict, as the status fields to write.

DetectionRules are not here: their Ready has one writer, the evaluator (detection.health).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from incidentops.api.v1alpha1.common import located
from incidentops.api.v1alpha1.conditions import Condition, find_condition, set_condition
from incidentops.api.v1alpha1.resources import ESCALATION_POLICY, RUNBOOK, Kind
from incidentops.config import Config
from incidentops.egress import protected_endpoints
from incidentops.readiness.checks import Lookup, Verdict, check_escalation_policy, check_runbook

Checker = Callable[[Any, str, Lookup], Awaitable[Verdict]]


def _invalid(error: ValidationError) -> Verdict:
    """The first problem, located from spec: "spec.levels.1.after: ...", or "spec: ..." for the whole spec."""
    return Verdict(False, "InvalidSpec", located(error))


def checked(config: Config, apiserver_url: str) -> list[tuple[Kind, Checker]]:
    """Each kind with its check; a Runbook's http steps are checked against the operator's egress settings."""
    egress = config.runbook_egress(protected_endpoints(apiserver_url, config.http_port))
    return [
        (RUNBOOK, functools.partial(check_runbook, egress=egress)),
        (ESCALATION_POLICY, check_escalation_policy),
    ]


async def evaluate(
    kind: Kind, checker: Checker, lookup: Lookup, obj: Mapping[str, Any], now: datetime
) -> tuple[dict[str, Any] | None, tuple[str, str, str] | None]:
    """The status fields to write (None: nothing changed) and the Event to post (type, reason, message)."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    try:
        verdict = await checker(kind.spec_model.model_validate(dict(spec)), meta.get("namespace") or "", lookup)
    except ValidationError as error:
        verdict = _invalid(error)
    conditions = [Condition.model_validate(c) for c in status.get("conditions", [])]
    before = find_condition(conditions, "Ready")
    updated = set_condition(
        conditions,
        "Ready",
        "True" if verdict.ready else "False",
        verdict.reason,
        verdict.message,
        now=now,
        generation=meta.get("generation"),
    )
    wire = [c.wire() for c in updated]
    extra: dict[str, Any] = {}
    if kind is ESCALATION_POLICY:
        extra = {"levelCount": len(spec.get("levels", [])), "messages": verdict.problems}
    if (
        wire == status.get("conditions")
        and all(status.get(k) == v for k, v in extra.items())
        and (status.get("observedGeneration") == meta.get("generation"))
    ):
        return None, None
    patch = {"conditions": wire, "observedGeneration": meta.get("generation"), **extra}
    after = find_condition(updated, "Ready")
    event = None
    if after and (before is None or (before.status, before.reason) != (after.status, after.reason)):
        event = (
            "Normal" if verdict.ready else "Warning",
            "Ready" if verdict.ready else verdict.reason,
            verdict.message,
        )
    return patch, event
