"""Kopf handlers that validate Runbooks and EscalationPolicies on create, update and resume, and set Ready."""

from __future__ import annotations

from typing import Any

import kopf

from incidentops.api.v1alpha1.common import GROUP, VERSION
from incidentops.api.v1alpha1.resources import Kind
from incidentops.handlers.deps import Deps
from incidentops.readiness.lookup import ClusterLookup
from incidentops.readiness.verdicts import Checker, evaluate
from incidentops.readiness.verdicts import checked as checked_kinds


def checked(deps: Deps) -> list[tuple[Kind, Checker]]:
    return checked_kinds(deps.config, deps.kube.client.apiserver_url)


def register(registry: kopf.OperatorRegistry, deps: Deps) -> None:
    lookup = ClusterLookup(deps.kube)
    for kind, checker in checked(deps):
        _register_kind(registry, deps, lookup, kind, checker)


def _register_kind(
    registry: kopf.OperatorRegistry, deps: Deps, lookup: ClusterLookup, kind: Kind, checker: Checker
) -> None:
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
