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

from incidentops.api.v1alpha1.common import Severity
from incidentops.api.v1alpha1.conditions import find_condition
from incidentops.api.v1alpha1.incident import (
    MAX_NOTES,
    Acknowledgement,
    IncidentSpec,
    IncidentState,
    IncidentStatus,
    Note,
    Resolution,
    SeverityChoice,
    StateRequest,
    current_severity,
)
from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.cli.rest import RestClient
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


def check_state(incident: Incident, target: IncidentState) -> None:
    """Raise Refused unless the lifecycle allows moving the incident to `target` now."""
    state = IncidentState(incident.status.state)
    if state == target:
        raise Refused(f'incident "{incident.name}" is already {state}')
    try:
        check(state, target)
    except IllegalTransitionError as error:
        raise Refused(f'incident "{incident.name}": {error}') from None


def check_open(incident: Incident) -> None:
    """Raise Refused when the incident is Closed: nothing about it changes any more."""
    if incident.status.state == IncidentState.CLOSED:
        raise Refused(f'incident "{incident.name}" is Closed')


def check_escalate(incident: Incident) -> None:
    """Refuse what would page nobody: an incident over, or one that no policy pages."""
    check_open(incident)
    state = incident.status.state
    if state in (IncidentState.RESOLVED, IncidentState.CLOSED):
        raise Refused(f'incident "{incident.name}" is {state}: nobody is paged for it any more')
    esc = incident.status.escalation
    if esc is not None and esc.stopped == "NoPolicy":
        raise Refused(f'no escalation policy pages incident "{incident.name}": {esc.reason or "none matches"}')


def escalation_outcome(level: int, levels: int, policy: str) -> str:
    """What an escalate request does, in words: the next level, or the last one again."""
    if levels <= 0:
        return "the operator pages the next level of its policy"
    target = min(level + 1, levels)
    if level >= levels:
        return (
            f"level {target} is the last level of policy {policy}, so it is paged again (each escalate pages it once "
            "more; repeat in the policy reruns the whole chain only while nobody acknowledges)"
        )
    return f"level {target} of policy {policy} is paged now"


def check_note(incident: Incident) -> None:
    check_open(incident)
    if len(incident.spec.notes) >= MAX_NOTES:
        raise Refused(f'incident "{incident.name}" already has {MAX_NOTES} notes, the most it keeps')


def check_severity(incident: Incident, severity: Severity) -> None:
    check_open(incident)
    pinned = incident.status.severity_source == "human"
    if pinned and current_severity(incident.spec, incident.status) == severity:
        raise Refused(f'incident "{incident.name}" is already {severity}, as a responder set it')


def severity_patch(severity: Severity, by: str, now: datetime) -> Obj:
    """spec.severity and who chose it: the choice applies even when the value does not change."""
    return {"spec": {"severity": severity.value, "severitySet": SeverityChoice(by=by, at=now).wire()}}


def state_patch(state: IncidentState, by: str, now: datetime) -> Obj:
    """The merge patch that asks the operator to move the incident to `state`."""
    return {"spec": {"requestedState": StateRequest(state=state.value, by=by, at=now).wire()}}


def note_patch(incident: Incident, by: str, now: datetime, text: str) -> Obj:
    """The notes list with one more (a merge patch replaces lists whole; the write is resourceVersion-guarded)."""
    notes = [*incident.spec.notes, Note(by=by, at=now, text=text)]
    return {"spec": {"notes": [n.wire() for n in notes]}}


def still_firing(incident: Incident) -> int:
    return incident.status.alerts.firing


def acknowledgement_patch(by: str, now: datetime) -> Obj:
    """The merge patch that asks the operator to record an acknowledgement."""
    return {"spec": {"acknowledgement": Acknowledgement(by=by, at=now).wire()}}


def resolution_patch(by: str, now: datetime, summary: str, root_cause: str) -> Obj:
    """The merge patch that asks the operator to resolve; validated by the shared model (lengths)."""
    resolution = Resolution(by=by, at=now, summary=summary, root_cause=root_cause)
    return {"spec": {"resolution": {k: v for k, v in resolution.wire().items() if v != ""}}}


def write_intent(
    kube: KubeClient | RestClient,
    namespace: str,
    name: str,
    precheck: Callable[[Incident], None],
    patch: Obj | Callable[[Incident], Obj],
) -> Incident:
    """Read, check, patch guarded by the read's resourceVersion; on Conflict start over."""
    for _ in range(CONFLICT_ATTEMPTS):
        incident = Incident.of(kube.get(INCIDENT, namespace, name))
        precheck(incident)
        body = patch(incident) if callable(patch) else patch
        try:
            return Incident.of(kube.patch_spec(INCIDENT, namespace, name, body, incident.resource_version))
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


def state_recorded(incident: Incident, state: IncidentState) -> bool:
    """Whether the operator moved the incident to `state`; Refused if it refused the request."""
    if incident.status.state == state:
        return True
    refused = next((e for e in reversed(incident.status.timeline) if e.type == "StateChangeRefused"), None)
    request = incident.spec.requested_state
    if (
        refused is not None
        and request is not None
        and incident.status.state_request_seen
        and (incident.status.state_request_seen.startswith(f"{request.state}|{request.by}|"))
    ):
        raise Refused(f'the operator refused the change of "{incident.name}": {refused.message}')
    return False
