"""Applying human intents to an Incident in the cluster, safely next to the ingester."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentStatus
from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.kube import AsyncKube, Conflict, NotFound
from incidentops.lifecycle.intents import Reconciled, reconcile_intents
from incidentops.metrics import TIME_TO_ACKNOWLEDGE, TIME_TO_RESOLVE

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 20


async def reconcile_incident(
    kube: AsyncKube, namespace: str, name: str, clock: Callable[[], datetime]
) -> Reconciled | None:
    """Read, reconcile, write with the read's resourceVersion; a conflict means read again."""
    for _ in range(MAX_ATTEMPTS):
        try:
            obj = await kube.get(INCIDENT, namespace, name)
        except NotFound:
            return None
        spec = IncidentSpec.model_validate(obj["spec"])
        current = IncidentStatus.model_validate(obj["status"]) if obj.get("status") else None
        result = reconcile_intents(spec, current, now=clock(), generation=obj["metadata"].get("generation"))
        if current is not None and result.status == current:
            return result
        try:
            updated = await kube.replace_status(INCIDENT, {**obj, "status": result.status.wire()})
        except Conflict:
            continue
        for notice in result.notices:
            await kube.post_event(
                updated, notice.reason, notice.message, type_="Warning" if notice.warning else "Normal"
            )
        metrics = result.status.metrics
        if result.acknowledged and metrics.time_to_acknowledge_seconds is not None:
            TIME_TO_ACKNOWLEDGE.labels(spec.severity).observe(metrics.time_to_acknowledge_seconds)
        if result.resolved and metrics.time_to_resolve_seconds is not None:
            TIME_TO_RESOLVE.labels(spec.severity).observe(metrics.time_to_resolve_seconds)
        return result
    raise Conflict(f"incident {namespace}/{name} kept changing; giving up after {MAX_ATTEMPTS} attempts")
