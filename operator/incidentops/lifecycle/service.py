"""Applying human intents to an Incident in the cluster, safely next to the ingester."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.common import MANAGED_BY, MANAGED_BY_LABEL, parse_time
from incidentops.api.v1alpha1.incident import SEVERITY_LABEL, IncidentSpec, IncidentStatus, current_severity
from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.kube import AsyncKube, Conflict, NotFound, Obj
from incidentops.lifecycle.intents import Reconciled, reconcile_intents
from incidentops.metrics import TIME_TO_ACKNOWLEDGE, TIME_TO_RESOLVE

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 20


INGESTER_GRACE = timedelta(seconds=30)


def awaits_ingester(obj: Mapping[str, Any], now: datetime) -> bool:
    """An ingester-made Incident whose first status is still on its way: the ingester writes it.

    Only for a grace period: an ingester killed between the create and its first status write
    never comes back for it, and an Incident without status cannot be acknowledged, so past the
    grace the lifecycle initializes it (the sender's retry then joins it).
    """
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    if obj.get("status") or labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
        return False
    created = meta.get("creationTimestamp")
    try:
        at = parse_time(str(created))
    except ValueError:
        return True
    return now - at < INGESTER_GRACE


async def reconcile_incident(kube: AsyncKube, body: Obj, clock: Callable[[], datetime]) -> Reconciled | None:
    """Reconcile from the body at hand; write with its resourceVersion; after a conflict, read again.

    Most events need no write at all (the ingester keeps status in step), so this costs no API
    call in the common case.
    """
    obj: Obj | None = body
    meta = body["metadata"]
    for _ in range(MAX_ATTEMPTS):
        if obj is None:
            try:
                obj = await kube.get(INCIDENT, meta["namespace"], meta["name"])
            except NotFound:
                return None
        if awaits_ingester(obj, clock()):
            return None
        spec = IncidentSpec.model_validate(obj["spec"])
        current = IncidentStatus.model_validate(obj["status"]) if obj.get("status") else None
        result = reconcile_intents(spec, current, now=clock(), generation=obj["metadata"].get("generation"))
        if current is not None and result.status == current:
            return result
        try:
            updated = await kube.replace_status(INCIDENT, {**obj, "status": result.status.wire()})
        except Conflict:
            obj = None
            continue
        for notice in result.notices:
            log.info("incident %s/%s: %s", meta["namespace"], meta["name"], notice.message)
            await kube.post_event(
                updated, notice.reason, notice.message, type_="Warning" if notice.warning else "Normal"
            )
        metrics = result.status.metrics
        severity = current_severity(spec, result.status)
        if result.acknowledged and metrics.time_to_acknowledge_seconds is not None:
            TIME_TO_ACKNOWLEDGE.labels(severity).observe(metrics.time_to_acknowledge_seconds)
        if result.resolved and metrics.time_to_resolve_seconds is not None:
            TIME_TO_RESOLVE.labels(severity).observe(metrics.time_to_resolve_seconds)
        return result
    raise Conflict(f"incident {meta['namespace']}/{meta['name']} kept changing; gave up after {MAX_ATTEMPTS} attempts")


def severity_label_patch(obj: Mapping[str, Any]) -> dict[str, str] | None:
    """The label change that makes `-l incidentops.dev/severity=SEV1` find what is SEV1 now, if any."""
    severity = (obj.get("status") or {}).get("severity")
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if not severity or labels.get(SEVERITY_LABEL) == severity:
        return None
    return {SEVERITY_LABEL: str(severity)}


async def sync_severity_label(kube: AsyncKube, obj: Mapping[str, Any]) -> None:
    """Keep the severity label in step with status.severity (raised by alerts, or set by a human)."""
    patch = severity_label_patch(obj)
    if patch is None:
        return
    meta = obj["metadata"]
    try:
        await kube.patch_labels(INCIDENT, meta["namespace"], meta["name"], patch)
    except NotFound:
        return
