"""The lifecycle as a concern of the Incident turn: human intents from spec into status, and the label.

It owns the alerts-and-lifecycle part of status (state and its times, severity, assignee,
metrics...) and the Acknowledged and Resolved conditions; it is also the state machine other
concerns' Moves go through (`move`). Woken when spec changed (generation ahead of
observedGeneration), when the severity label lags, and when an Incident the ingester opened is
still without status after the ingester's grace (the ingester was killed between create and
status: the lifecycle initializes it, so an Incident never stays without status).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.common import MANAGED_BY, MANAGED_BY_LABEL, parse_time
from incidentops.api.v1alpha1.conditions import ACKNOWLEDGED, RESOLVED
from incidentops.api.v1alpha1.incident import (
    SEVERITY_LABEL,
    IncidentSpec,
    IncidentState,
    IncidentStatus,
    current_severity,
)
from incidentops.api.v1alpha1.resources import INCIDENT, POSTMORTEM
from incidentops.concern import LIFECYCLE_FIELDS, Decision, Move, Ownership, WatchedConcern
from incidentops.kube import AsyncKube, NotFound, Obj
from incidentops.lifecycle.intents import reconcile_intents
from incidentops.lifecycle.machine import ALLOWED, transition
from incidentops.metrics import TIME_TO_ACKNOWLEDGE, TIME_TO_RESOLVE

LIFECYCLE = Ownership(LIFECYCLE_FIELDS, frozenset({ACKNOWLEDGED, RESOLVED}))
INGESTER_GRACE = timedelta(seconds=30)


def created_at(obj: Mapping[str, Any]) -> datetime | None:
    try:
        return parse_time(str((obj.get("metadata") or {}).get("creationTimestamp")))
    except ValueError:
        return None


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
    at = created_at(obj)
    return at is None or now - at < INGESTER_GRACE


def needs_reconcile(body: Mapping[str, Any], now: datetime) -> bool:
    """Whether spec holds something status does not reflect yet."""
    if awaits_ingester(body, now):
        return False
    status = body.get("status") or {}
    return not status or bool(status.get("observedGeneration") != (body.get("metadata") or {}).get("generation"))


def severity_label_patch(obj: Mapping[str, Any]) -> dict[str, str] | None:
    """The label change that makes `-l incidentops.dev/severity=SEV1` find what is SEV1 now, if any."""
    severity = (obj.get("status") or {}).get("severity")
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if not severity or labels.get(SEVERITY_LABEL) == severity:
        return None
    return {SEVERITY_LABEL: str(severity)}


def move(status: IncidentStatus, requested: Move, now: datetime, generation: int | None) -> IncidentStatus:
    """Another concern's state change, where the state machine allows it (otherwise nothing happens)."""
    if requested.target == status.state or requested.target not in ALLOWED[status.state]:
        return status
    if requested.only_from is not None and status.state not in requested.only_from:
        return status
    return transition(
        status, requested.target, now=now, actor=requested.actor, reason=requested.reason, generation=generation
    )


class Lifecycle(WatchedConcern):
    name = "lifecycle"
    owns = LIFECYCLE

    def __init__(self, kube: AsyncKube, postmortem_severities: frozenset[str] = frozenset({"SEV1", "SEV2"})) -> None:
        self.kube = kube
        self.postmortem_severities = postmortem_severities

    async def observe(self, obj: Obj, status: IncidentStatus, now: datetime, carried: Any) -> Any:
        """Whether a pending request to close must be refused: a required postmortem not yet Published."""
        spec = IncidentSpec.model_validate(obj.get("spec") or {})
        request = spec.requested_state
        if request is None or str(request.state) != IncidentState.CLOSED or status.state != IncidentState.RESOLVED:
            return None
        link = status.postmortem
        required = link.required if link is not None else (
            not spec.drill and str(current_severity(spec, status)) in self.postmortem_severities
        )  # fmt: skip
        if not required:
            return None
        name = (link.name if link else None) or obj["metadata"]["name"]
        try:
            written = await self.kube.get(POSTMORTEM, obj["metadata"]["namespace"], name)
        except NotFound:
            return f"its postmortem is required ({current_severity(spec, status)}) and not written yet"
        state = (written.get("spec") or {}).get("state") or "Draft"
        if state == "Published":
            return None
        return (
            f"its postmortem {name} is {state}; publish it first "
            f'(kubectl patch pm {name} --type merge -p \'{{"spec":{{"state":"Published"}}}}\')'
        )

    def wake(self, body: Mapping[str, Any], now: datetime) -> datetime | None:
        if awaits_ingester(body, now):
            at = created_at(body)
            return at + INGESTER_GRACE if at is not None else now
        if needs_reconcile(body, now) or severity_label_patch(body) is not None:
            return now
        return None

    def decide(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Any, now: datetime
    ) -> Decision | None:
        if awaits_ingester(obj, now):
            at = created_at(obj)
            return Decision(status, next_at=at + INGESTER_GRACE if at is not None else None)
        meta = obj["metadata"]
        label = severity_label_patch(obj)
        if not needs_reconcile(obj, now):
            return Decision(status, effects=[label]) if label else None
        result = reconcile_intents(
            spec,
            status if obj.get("status") else None,
            now=now,
            generation=meta.get("generation"),
            close_refusal=observed if isinstance(observed, str) else None,
        )
        severity = current_severity(spec, result.status)
        metrics = result.status.metrics

        async def counted(_: Obj) -> None:
            if spec.drill:
                return  # a simulation is no real incident's time to acknowledge or resolve
            if result.acknowledged and metrics.time_to_acknowledge_seconds is not None:
                TIME_TO_ACKNOWLEDGE.labels(severity).observe(metrics.time_to_acknowledge_seconds)
            if result.resolved and metrics.time_to_resolve_seconds is not None:
                TIME_TO_RESOLVE.labels(severity).observe(metrics.time_to_resolve_seconds)

        relabel = ["label"] if result.status.severity != (meta.get("labels") or {}).get(SEVERITY_LABEL) else []
        return Decision(result.status, notices=list(result.notices), written=counted, effects=relabel)

    async def act(self, written: Obj, decision: Decision) -> Any:
        """Keep the severity label in step with status.severity (raised by alerts, or set by a human)."""
        patch = severity_label_patch(written)
        if patch is not None:
            meta = written["metadata"]
            try:
                await self.kube.patch_labels(INCIDENT, meta["namespace"], meta["name"], patch)
            except NotFound:
                return None
        return None
