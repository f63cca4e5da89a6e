"""Kopf handlers for Incidents: mirror human intents into status; feed the open-incidents gauge."""

from __future__ import annotations

from typing import Any

import kopf

from incidentops.api.v1alpha1.common import GROUP, VERSION
from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.handlers.deps import Deps
from incidentops.lifecycle.service import reconcile_incident
from incidentops.metrics import OPEN_INCIDENTS


def register(registry: kopf.OperatorRegistry, deps: Deps) -> None:
    async def intents(*, namespace: str | None, name: str, **_: Any) -> None:
        await reconcile_incident(deps.kube, namespace or "", name, deps.clock)

    for decorator in (
        kopf.on.create(GROUP, VERSION, INCIDENT.plural, registry=registry),
        kopf.on.update(GROUP, VERSION, INCIDENT.plural, registry=registry, field="spec"),
        kopf.on.resume(GROUP, VERSION, INCIDENT.plural, registry=registry),
    ):
        decorator(intents)

    @kopf.on.event(GROUP, VERSION, INCIDENT.plural, registry=registry)
    def gauge(*, event: kopf.RawEvent, namespace: str | None, name: str, **_: Any) -> None:
        body = event.get("object") or {}
        if event.get("type") == "DELETED":
            OPEN_INCIDENTS.forget(namespace or "", name)
            return
        severity = (body.get("spec") or {}).get("severity", "")
        state = (body.get("status") or {}).get("state", "Detected")
        OPEN_INCIDENTS.observe(namespace or "", name, severity, state)
