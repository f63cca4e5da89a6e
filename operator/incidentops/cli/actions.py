"""Acknowledge and resolve: refuse what the operator would ignore, then write only the spec intent.

The checks reuse the lifecycle state machine, so the plugin refuses exactly what the operator
would refuse. Writes are merge patches guarded by the resourceVersion that was checked: if
someone else changed the incident in between, we read it again and re-check rather than
overwrite their decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from incidentops.api.v1alpha1.conditions import find_condition
from incidentops.api.v1alpha1.incident import (
    Acknowledgement,
    IncidentSpec,
    IncidentState,
    IncidentStatus,
    Resolution,
)
from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.kube import Conflict, KubeClient
from incidentops.lifecycle.machine import IllegalTransitionError, acknowledge, check

Obj = dict[str, Any]
CONFLICT_ATTEMPTS = 5


class Refused(Exception):
    """The intent makes no sense for the incident as it stands; the message says why."""


@dataclass(frozen=True)
class Incident:
    """An Incident object parsed with the shared models (status absent until the operator sees it)."""

    name: str
    namespace: str
    resource_version: str
    spec: IncidentSpec
    status: IncidentStatus
    has_status: bool
    meta: dict[str, Any]

    @classmethod
    def of(cls, obj: Obj) -> Incident:
        """Parse; spec fields this version does not know (a newer CRD) are ignored, not fatal."""
        meta = obj.get("metadata") or {}
        known = {field.alias or name for name, field in IncidentSpec.model_fields.items()} | set(
            IncidentSpec.model_fields
        )
        raw_spec = {k: v for k, v in (obj.get("spec") or {}).items() if k in known}
        raw_status = obj.get("status")
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            resource_version=str(meta.get("resourceVersion", "")),
            spec=IncidentSpec.model_validate(raw_spec),
            status=IncidentStatus.model_validate(raw_status or {}),
            has_status=bool(raw_status),
            meta=meta,
        )


def check_acknowledge(incident: Incident, now: datetime) -> None:
    """Raise Refused when the incident is already acknowledged, or Resolved/Closed."""
    name = incident.name
    status = incident.status
    if status.acknowledged_at is not None:
        raise Refused(f'incident "{name}" is already acknowledged by {status.acknowledged_by or "someone"}')
    if incident.spec.acknowledgement is not None:
        raise Refused(
            f'incident "{name}" is already acknowledged by {incident.spec.acknowledgement.by} '
            "(the operator has not recorded it yet)"
        )
    try:
        acknowledge(status, by="-", now=now)
    except IllegalTransitionError:
        raise Refused(f'incident "{name}" is already {status.state}; there is nothing to acknowledge') from None


def check_resolve(incident: Incident) -> None:
    """Raise Refused when a human already resolved it, or it is Closed.

    An auto-resolved incident (alerts cleared) may still be resolved by a human: that records
    the summary and root cause for the postmortem.
    """
    name = incident.name
    if incident.spec.resolution is not None:
        raise Refused(f'incident "{name}" is already resolved by {incident.spec.resolution.by}')
    state = IncidentState(incident.status.state)
    if state == IncidentState.RESOLVED:
        return
    try:
        check(state, IncidentState.RESOLVED)
    except IllegalTransitionError:
        raise Refused(f'incident "{name}" is already {state}; it can no longer be resolved') from None


def acknowledgement_patch(by: str, now: datetime) -> Obj:
    """The merge patch that asks the operator to record an acknowledgement."""
    return {"spec": {"acknowledgement": Acknowledgement(by=by, at=now).wire()}}


def resolution_patch(by: str, now: datetime, summary: str, root_cause: str) -> Obj:
    """The merge patch that asks the operator to resolve; validated by the shared model (lengths)."""
    resolution = Resolution(by=by, at=now, summary=summary, root_cause=root_cause)
    return {"spec": {"resolution": {k: v for k, v in resolution.wire().items() if v != ""}}}


def write_intent(
    kube: KubeClient,
    namespace: str,
    name: str,
    precheck: Callable[[Incident], None],
    patch: Obj,
) -> Incident:
    """Read, check, patch guarded by the read's resourceVersion; on Conflict start over."""
    for _ in range(CONFLICT_ATTEMPTS):
        incident = Incident.of(kube.get(INCIDENT, namespace, name))
        precheck(incident)
        try:
            return Incident.of(kube.patch_spec(INCIDENT, namespace, name, patch, incident.resource_version))
        except Conflict:
            continue
    raise Conflict(f'incident "{name}" kept changing while we wrote it; try again')


def acknowledgement_recorded(incident: Incident) -> bool:
    """Whether the operator mirrored the acknowledgement; Refused if it rejected it as too late."""
    if incident.status.acknowledged_at is not None:
        return True
    condition = find_condition(incident.status.conditions, "Acknowledged")
    if condition is not None and condition.reason == "AcknowledgedTooLate":
        raise Refused(f'the operator ignored the acknowledgement of "{incident.name}": {condition.message}')
    return False


def resolution_recorded(incident: Incident, by: str) -> bool:
    """Whether the operator recorded our resolution (state Resolved, resolved by us)."""
    return incident.status.state in (IncidentState.RESOLVED, IncidentState.CLOSED) and (
        incident.status.resolved_by == by
    )
