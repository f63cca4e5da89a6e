"""PagerDuty Events API v2: trigger when a level fires, acknowledge and resolve after.

The dedup_key is derived from the Incident, so PagerDuty itself folds repeats into one
PagerDuty incident, and its webhook leads back to the Incident.
"""

from __future__ import annotations

import httpx

from incidentops.escalation.channels.base import Envelope, missing, outcome_of, post
from incidentops.escalation.outbox import Outcome

DEFAULT_BASE = "https://events.pagerduty.com"
SEVERITY = {"SEV1": "critical", "SEV2": "error", "SEV3": "warning", "SEV4": "info", "SEV5": "info"}
ACTION = {"page": "trigger", "acknowledged": "acknowledge", "resolved": "resolve"}


def event_of(envelope: Envelope) -> dict[str, object]:
    action = ACTION[envelope.delivery.event]
    event: dict[str, object] = {
        "routing_key": envelope.credential,
        "event_action": action,
        "dedup_key": envelope.dedup_key,
    }
    if action == "trigger":
        incident = envelope.document.get("incident", {})
        payload: dict[str, object] = {
            "summary": envelope.rendered.subject[:1024],
            "source": f"{envelope.namespace}/{incident.get('service') or envelope.name}"[:255],
            "severity": SEVERITY.get(envelope.severity, "warning"),
            "component": str(incident.get("service") or "")[:255] or None,
            "group": envelope.namespace,
            "class": str(incident.get("category") or "")[:255] or None,
            "custom_details": {
                "incident": f"{envelope.namespace}/{envelope.name}",
                "level": envelope.delivery.level,
                "targets": envelope.delivery.target,
                "details": envelope.rendered.text[:4000],
            },
        }
        event["payload"] = {k: v for k, v in payload.items() if v is not None}
    return event


class PagerDuty:
    async def send(self, envelope: Envelope, http: httpx.AsyncClient) -> Outcome:
        if envelope.delivery.event not in ACTION:
            return Outcome("delivered", "pagerduty: nothing to send for an update")
        if not envelope.credential:
            return missing("pagerduty: the Secret holds no routing key")
        base = (envelope.channel.url or DEFAULT_BASE).rstrip("/")
        answer = await post(envelope, http, "pagerduty", "POST", f"{base}/v2/enqueue", json=event_of(envelope))
        if isinstance(answer, Outcome):
            return answer
        return outcome_of(answer, f"pagerduty {ACTION[envelope.delivery.event]}", envelope.dedup_key)


SENDER = PagerDuty()
