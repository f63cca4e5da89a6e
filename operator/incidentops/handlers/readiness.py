"""Kopf handlers that validate DetectionRule, Runbook and EscalationPolicy and set Ready."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import kopf
from pydantic import ValidationError

from incidentops.api.v1alpha1.common import GROUP, VERSION, located
from incidentops.api.v1alpha1.conditions import Condition, find_condition, set_condition
from incidentops.api.v1alpha1.resources import ESCALATION_POLICY, RUNBOOK, Kind
from incidentops.egress import protected_endpoints
from incidentops.handlers.deps import Deps
from incidentops.kube import KubeError
from incidentops.readiness.checks import (
    Lookup,
    Verdict,
    check_escalation_policy,
    check_runbook,
)
from incidentops.readiness.lookup import ClusterLookup

log = logging.getLogger(__name__)
RECHECK_SECONDS = 30.0

Checker = Callable[[Any, str, Lookup], Awaitable[Verdict]]


def _invalid(error: ValidationError) -> Verdict:
    """The first problem, located from spec: "spec.levels.1.after: ...", or "spec: ..." for the whole spec."""
    return Verdict(False, "InvalidSpec", located(error))


def checked(deps: Deps) -> list[tuple[Kind, Checker]]:
    """Each kind with its check; a Runbook's http steps are checked against the operator's egress settings."""
    egress = deps.config.runbook_egress(protected_endpoints(deps.kube.client.apiserver_url, deps.config.http_port))
    # DetectionRules are not here: their Ready has one writer, the evaluator (detection.health).
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


def register(registry: kopf.OperatorRegistry, deps: Deps) -> None:
    """Validation on create, update and resume; `recheck_forever` re-validates (references can appear later)."""
    lookup = ClusterLookup(deps.kube)
    for kind, checker in checked(deps):
        _register_kind(registry, deps, lookup, kind, checker)


def _register_kind(registry: kopf.OperatorRegistry, deps: Deps, lookup: Lookup, kind: Kind, checker: Checker) -> None:
    async def validate(*, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        changes, event = await evaluate(kind, checker, lookup, body, deps.clock())
        for key, value in (changes or {}).items():
            patch.status[key] = value
        if event is not None:
            kopf.event(body, type=event[0], reason=event[1], message=event[2])

    for decorator in (
        kopf.on.create(GROUP, VERSION, kind.plural, registry=registry, id=f"validate-{kind.singular}"),
        kopf.on.update(GROUP, VERSION, kind.plural, registry=registry, id=f"validate-{kind.singular}"),
        kopf.on.resume(GROUP, VERSION, kind.plural, registry=registry, id=f"validate-{kind.singular}"),
    ):
        decorator(validate)


async def recheck_forever(deps: Deps, ready: asyncio.Event) -> None:
    """Every RECHECK_SECONDS, validate every object again: a referenced Secret or Runbook may appear later.

    Not a Kopf timer: Kopf puts a finalizer on every object a timer runs for, and an object with
    a finalizer cannot be deleted while the operator is down or uninstalled (its namespace hangs
    in Terminating). A plain loop over a LIST needs none.
    """
    await ready.wait()
    lookup = ClusterLookup(deps.kube)
    namespaces: list[str | None] = list(deps.config.namespaces) or [None]
    kinds = checked(deps)
    while True:
        await asyncio.sleep(RECHECK_SECONDS)
        for kind, checker in kinds:
            for namespace in namespaces:
                try:
                    for obj in await deps.kube.list(kind, namespace):
                        await _recheck(deps, lookup, kind, checker, obj)
                except KubeError as error:
                    log.warning("could not re-validate %s: %s", kind.plural, error)


async def _recheck(deps: Deps, lookup: Lookup, kind: Kind, checker: Checker, obj: dict[str, Any]) -> None:
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return
    changes, event = await evaluate(kind, checker, lookup, obj, deps.clock())
    meta = obj["metadata"]
    if changes:
        await deps.kube.run(
            deps.kube.client.patch_status,
            kind,
            meta["namespace"],
            meta["name"],
            {"status": changes},
            meta.get("resourceVersion"),
        )
    if event is not None:
        await deps.kube.post_event(obj, event[1], event[2], type_=event[0])
