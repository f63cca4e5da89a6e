"""Kopf handler for Incidents: every event goes to the scheduler, which wakes the concerns it concerns.

It watches events rather than registering create/update handlers: those would make Kopf write
its bookkeeping annotations on every Incident, and each such write would collide with the
concerns' status writes. The initial listing at start-up arrives as events too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from incidentops.api.v1alpha1.common import GROUP, VERSION
from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.handlers.deps import Deps
from incidentops.metrics import OPEN_INCIDENTS


def register(registry: kopf.OperatorRegistry, deps: Deps) -> None:
    @kopf.on.event(GROUP, VERSION, INCIDENT.plural, registry=registry, id="incident-lifecycle")
    async def incident_event(*, event: kopf.RawEvent, namespace: str | None, name: str, **_: Any) -> None:
        body: Mapping[str, Any] = event.get("object") or {}
        if event.get("type") == "DELETED":
            OPEN_INCIDENTS.forget(namespace or "", name)
            deps.scheduler.forget(namespace or "", name, str((body.get("metadata") or {}).get("uid", "")))
            return
        deps.scheduler.observe(body)
        status = body.get("status") or {}
        severity = status.get("severity") or (body.get("spec") or {}).get("severity", "")
        OPEN_INCIDENTS.observe(namespace or "", name, severity, status.get("state", "Detected"))
