"""Retention as a concern of the Incident turn: an incident over for INCIDENTOPS_RETENTION is deleted.

Like a Job's ttlSecondsAfterFinished: the cluster keeps what is happening, not everything that ever
happened. Never while its postmortem is required and not yet written (the postmortem, which is not
owned by the incident, keeps its timeline afterwards); metrics and counters keep their history.
The deletion carries the incident's uid and resourceVersion as preconditions, so a change made
after the decision (a late note, a second resolution) stops it until the next look. Off by default.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.common import parse_time
from incidentops.api.v1alpha1.incident import ENDED_STATES, IncidentSpec, IncidentStatus
from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.concern import Decision, Ownership, WatchedConcern
from incidentops.kube import AsyncKube, Conflict, NotFound, Obj

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delete:
    uid: str
    resource_version: str


def expires_at(body: Mapping[str, Any], retention: timedelta, severities: frozenset[str]) -> datetime | None:
    """When the incident may be deleted; None: not while it is open, or its required postmortem is unwritten."""
    status = body.get("status") or {}
    if status.get("state") not in ENDED_STATES:
        return None
    ended = status.get("closedAt") or status.get("resolvedAt")
    if not ended:
        return None
    link = status.get("postmortem")
    spec = body.get("spec") or {}
    severity = str(status.get("severity") or spec.get("severity"))
    required = link.get("required") if link else (not spec.get("simulation") and severity in severities)
    if required and not (link and link.get("name") and link.get("state") not in (None, "Writing")):
        return None  # the postmortem's write (or its mirror) wakes it
    return parse_time(str(ended)) + retention


class Retention(WatchedConcern):
    name = "retention"
    owns = Ownership()

    def __init__(self, kube: AsyncKube, retention: timedelta, severities: frozenset[str]) -> None:
        self.kube = kube
        self.retention = retention
        self.severities = severities

    def wake(self, body: Mapping[str, Any], now: datetime) -> datetime | None:
        return expires_at(body, self.retention, self.severities)

    def decide(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Any, now: datetime
    ) -> Decision | None:
        when = expires_at(obj, self.retention, self.severities)
        if when is None:
            return None
        if when > now:
            return Decision(status, next_at=when)
        meta = obj["metadata"]
        return Decision(status, effects=[Delete(str(meta.get("uid")), str(meta.get("resourceVersion")))])

    async def act(self, written: Obj, decision: Decision) -> Any:
        meta = written["metadata"]
        for effect in decision.effects:
            if not isinstance(effect, Delete):
                continue
            try:
                await self.kube.delete(INCIDENT, meta["namespace"], meta["name"], effect.uid, effect.resource_version)
            except (NotFound, Conflict):
                return None  # gone already, or changed since: the next look decides again
            log.info("incident %s/%s deleted: over for %s (INCIDENTOPS_RETENTION)", meta["namespace"], meta["name"],
                     self.retention)  # fmt: skip
        return None
