"""Kopf handlers that validate DetectionRule, Runbook and EscalationPolicy and set Ready."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf
from pydantic import BaseModel, ValidationError

from incidentops.api.v1alpha1.common import GROUP, VERSION
from incidentops.api.v1alpha1.conditions import Condition, find_condition, set_condition
from incidentops.api.v1alpha1.resources import DETECTION_RULE, ESCALATION_POLICY, KIND_BY_NAME, RUNBOOK, Kind
from incidentops.handlers.deps import Deps
from incidentops.kube import NotFound
from incidentops.readiness.checks import (
    Lookup,
    Verdict,
    check_detection_rule,
    check_escalation_policy,
    check_runbook,
)

log = logging.getLogger(__name__)
RECHECK_SECONDS = 30.0

Checker = Callable[[Any, str, Lookup], Awaitable[Verdict]]


class ClusterLookup:
    """Lookup answered by the apiserver."""

    def __init__(self, deps: Deps) -> None:
        self._kube = deps.kube

    async def exists(self, kind: str, namespace: str, name: str) -> bool:
        try:
            await self._kube.get(KIND_BY_NAME[kind], namespace, name)
        except NotFound:
            return False
        return True

    async def secret_has_key(self, namespace: str, name: str, key: str) -> bool | None:
        try:
            return await self._kube.secret_value(namespace, name, key) is not None
        except NotFound:
            return None


def _invalid(error: ValidationError) -> Verdict:
    """The first problem, located from spec: "spec.levels.1.after: ...", or "spec: ..." for the whole spec."""
    first = error.errors()[0]
    where = ".".join(["spec", *(str(p) for p in first["loc"])])
    return Verdict(False, "InvalidSpec", f"{where}: {first['msg']}")


def register(registry: kopf.OperatorRegistry, deps: Deps) -> None:
    """Validation on create, update, resume and every RECHECK_SECONDS (references can appear later)."""
    lookup = ClusterLookup(deps)
    checkers: list[tuple[Kind, type[BaseModel], Checker]] = [
        (DETECTION_RULE, DETECTION_RULE.spec_model, check_detection_rule),
        (RUNBOOK, RUNBOOK.spec_model, check_runbook),
        (ESCALATION_POLICY, ESCALATION_POLICY.spec_model, check_escalation_policy),
    ]
    for kind, model, checker in checkers:
        _register_kind(registry, deps, lookup, kind, model, checker)


def _register_kind(
    registry: kopf.OperatorRegistry,
    deps: Deps,
    lookup: Lookup,
    kind: Kind,
    model: type[BaseModel],
    checker: Checker,
) -> None:
    async def validate(
        *,
        spec: kopf.Spec,
        status: kopf.Status,
        meta: kopf.Meta,
        namespace: str | None,
        body: kopf.Body,
        patch: kopf.Patch,
        **_: Any,
    ) -> None:
        try:
            verdict = await checker(model.model_validate(dict(spec)), namespace or "", lookup)
        except ValidationError as error:
            verdict = _invalid(error)
        now = deps.clock()
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
            return
        patch.status["conditions"] = wire
        patch.status["observedGeneration"] = meta.get("generation")
        for key, value in extra.items():
            patch.status[key] = value
        after = find_condition(updated, "Ready")
        if after and (before is None or (before.status, before.reason) != (after.status, after.reason)):
            event_type = "Normal" if verdict.ready else "Warning"
            kopf.event(
                body,
                type=event_type,
                reason="Ready" if verdict.ready else verdict.reason,
                message=verdict.message,
            )

    for decorator in (
        kopf.on.create(GROUP, VERSION, kind.plural, registry=registry, id=f"validate-{kind.singular}"),
        kopf.on.update(GROUP, VERSION, kind.plural, registry=registry, id=f"validate-{kind.singular}"),
        kopf.on.resume(GROUP, VERSION, kind.plural, registry=registry, id=f"validate-{kind.singular}"),
        kopf.timer(
            GROUP,
            VERSION,
            kind.plural,
            registry=registry,
            id=f"recheck-{kind.singular}",
            interval=RECHECK_SECONDS,
            idle=RECHECK_SECONDS,
        ),
    ):
        decorator(validate)
