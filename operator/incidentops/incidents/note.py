"""A line in an Incident's timeline from outside its concerns (a DetectionRule deleted or disabled)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentStatus
from incidentops.concern import Concern, Decision
from incidentops.kube import Obj
from incidentops.lifecycle.machine import append_timeline


class Note(Concern):
    """Adds one timeline entry, once (an entry of that type and message already there is not repeated)."""

    name = "note"

    def __init__(self, type_: str, message: str, actor: str | None = None) -> None:
        self.type = type_
        self.message = message
        self.actor = actor

    def decide(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Any, now: datetime
    ) -> Decision | None:
        if not obj.get("status") or any(e.type == self.type and e.message == self.message for e in status.timeline):
            return None
        return Decision(append_timeline(status, now, self.type, self.message, self.actor))
