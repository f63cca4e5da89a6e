"""Kopf handler for Incidents: mirror human intents into status; feed the open-incidents gauge.

It watches events rather than registering create/update handlers: those would make Kopf write
its bookkeeping annotations on every Incident, and each such write would collide with the
ingester's status writes. Humans change spec, which bumps metadata.generation; the ingester
stamps status.observedGeneration whenever nothing is pending. So an event needs work only when
the two differ, a check that costs nothing for the thousands of status-only events of a storm.
The initial listing at start-up arrives as events too, which covers resuming after a restart.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import kopf

from incidentops.api.v1alpha1.common import GROUP, VERSION
from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.handlers.deps import Deps
from incidentops.kube import KubeError
from incidentops.lifecycle.service import (
    INGESTER_GRACE,
    awaits_ingester,
    reconcile_incident,
    sync_severity_label,
)
from incidentops.metrics import OPEN_INCIDENTS

log = logging.getLogger(__name__)


def needs_reconcile(body: Mapping[str, Any], now: datetime) -> bool:
    """Whether spec holds something status does not reflect yet."""
    if awaits_ingester(body, now):
        return False
    status = body.get("status") or {}
    return not status or bool(status.get("observedGeneration") != (body.get("metadata") or {}).get("generation"))


def register(registry: kopf.OperatorRegistry, deps: Deps) -> None:
    rechecks: set[asyncio.Task[None]] = set()

    async def recheck(namespace: str, name: str) -> None:
        """Come back once the ingester's grace is over: an Incident must never stay without status."""
        await asyncio.sleep(INGESTER_GRACE.total_seconds() + 1)
        try:
            obj = await deps.kube.get(INCIDENT, namespace, name)
            if needs_reconcile(obj, deps.clock()):
                log.warning(
                    "incident %s/%s had no status %s after its creation; initializing it",
                    namespace,
                    name,
                    INGESTER_GRACE,
                )
                await reconcile_incident(deps.kube, obj, deps.clock)
        except KubeError as error:
            log.warning("could not check incident %s/%s for a missing status: %s", namespace, name, error)
        except Exception:  # a background task: say what went wrong rather than lose it
            log.exception("could not check incident %s/%s for a missing status", namespace, name)

    @kopf.on.event(GROUP, VERSION, INCIDENT.plural, registry=registry, id="incident-lifecycle")
    async def incident_event(*, event: kopf.RawEvent, namespace: str | None, name: str, **_: Any) -> None:
        body: Mapping[str, Any] = event.get("object") or {}
        if event.get("type") == "DELETED":
            OPEN_INCIDENTS.forget(namespace or "", name)
            if deps.responder is not None:
                deps.responder.forget(namespace or "", name, str((body.get("metadata") or {}).get("uid", "")))
            if deps.escalator is not None:
                deps.escalator.forget(namespace or "", name)
            return
        if deps.responder is not None:
            deps.responder.observe(body)
        if deps.escalator is not None:
            deps.escalator.observe(body)
        status = body.get("status") or {}
        severity = status.get("severity") or (body.get("spec") or {}).get("severity", "")
        OPEN_INCIDENTS.observe(namespace or "", name, severity, status.get("state", "Detected"))
        try:
            await sync_severity_label(deps.kube, body)
            now = deps.clock()
            if needs_reconcile(body, now):
                await reconcile_incident(deps.kube, copy.deepcopy(dict(body)), deps.clock)
            elif awaits_ingester(body, now) and event.get("type") in ("ADDED", None):  # None: the listing at start
                task = asyncio.create_task(recheck(namespace or "", name))
                rechecks.add(task)
                task.add_done_callback(rechecks.discard)
        except KubeError as error:  # the next event (or the next start) tries again
            log.warning("could not reconcile incident %s/%s: %s", namespace, name, error)
