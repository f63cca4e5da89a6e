"""PagerDuty's v3 webhook, read back into human intents: acknowledged or resolved from a phone.

The signature (X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw body>, several during a
secret rotation) is checked before anything is parsed. The incident is found through the
dedup_key the operator sent (incidentops/<namespace>/<name>/<uid>), which PagerDuty returns as
the incident's incident_key; the uid guards against a later incident of the same name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from incidentops.api.v1alpha1.common import format_time, parse_time

EVENTS: dict[str, Literal["acknowledge", "resolve"]] = {
    "incident.acknowledged": "acknowledge",
    "incident.resolved": "resolve",
}


class Refused(ValueError):
    """The webhook cannot be acted on; `status` is the HTTP answer (401 signature, 400 body)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Intent:
    action: Literal["acknowledge", "resolve"] | None  # None: an event we do not act on
    namespace: str = ""
    name: str = ""
    uid: str = ""
    by: str = "pagerduty"
    at: datetime | None = None
    event_type: str = ""

    def patch(self) -> dict[str, Any]:
        """The merge patch of spec that expresses the intent."""
        who = {"by": self.by[:253], **({"at": format_time(self.at)} if self.at else {})}
        if self.action == "acknowledge":
            return {"spec": {"acknowledgement": who}}
        return {"spec": {"resolution": {**who, "summary": "resolved in PagerDuty"}}}


def verify(secret: str, body: bytes, header: str | None) -> None:
    if not secret:
        raise Refused(503, "not_configured", "no PagerDuty webhook secret is configured")
    expected = "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    given = [part.strip() for part in (header or "").split(",")]
    if not any(hmac.compare_digest(expected, candidate) for candidate in given if candidate):
        raise Refused(401, "bad_signature", "X-PagerDuty-Signature does not match the body")


def read(body: bytes) -> Intent:
    try:
        data = json.loads(body)
        event = data["event"]
        event_type = str(event["event_type"])
    except (ValueError, KeyError, TypeError):
        raise Refused(
            400, "invalid_payload", 'expected a PagerDuty v3 webhook: {"event": {"event_type": ...}}'
        ) from None
    action = EVENTS.get(event_type)
    if action is None:
        return Intent(None, event_type=event_type)
    incident = event.get("data") or {}
    key = str(incident.get("incident_key") or "")
    prefix, _, rest = key.partition("/")
    parts = rest.split("/")
    if prefix != "incidentops" or len(parts) != 3 or not all(parts):
        raise Refused(422, "unknown_incident", f"incident_key {key[:100]!r} was not sent by incidentops")
    agent = event.get("agent") or {}
    by = str(agent.get("summary") or agent.get("id") or "pagerduty")
    try:
        at = parse_time(str(event["occurred_at"])) if event.get("occurred_at") else None
    except ValueError:
        at = None
    return Intent(action, parts[0], parts[1], parts[2], f"{by} (PagerDuty)", at, event_type)


@dataclass(frozen=True)
class Answer:
    """What the webhook answers, and the spec patch to write (None: nothing to write)."""

    status: int
    body: dict[str, Any]
    patch: dict[str, Any] | None = None


def decide(intent: Intent, obj: dict[str, Any]) -> Answer:
    """Whether the intent changes the Incident, said plainly: applied, unchanged, or ignored and why."""
    where = f"{intent.namespace}/{intent.name}"
    if (obj.get("metadata") or {}).get("uid") != intent.uid:
        raise Refused(404, "unknown_incident", "that incident was deleted and its name reused")
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    field = "acknowledgement" if intent.action == "acknowledge" else "resolution"
    state = status.get("state")
    if intent.action == "acknowledge" and state in ("Resolved", "Closed"):
        return Answer(200, {"ignored": f"already {str(state).lower()}", "incident": where})
    if intent.action == "resolve" and state == "Closed":
        return Answer(200, {"ignored": "already closed", "incident": where})
    if spec.get(field):
        return Answer(200, {"unchanged": where, field: spec[field]})
    return Answer(200, {"applied": field, "incident": where}, intent.patch())
