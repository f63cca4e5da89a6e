"""A Statuspage-style API: one public incident per Incident, updated as it moves.

The first notification creates the status page incident (its id becomes the delivery's ref);
later ones PATCH it. The affected components' status follows severity until resolution.
"""

from __future__ import annotations

import httpx

from incidentops.escalation.channels.base import Envelope, missing, outcome_of, post
from incidentops.escalation.outbox import Outcome

DEFAULT_BASE = "https://api.statuspage.io"
STATUS = {
    "Detected": "investigating",
    "Acknowledged": "investigating",
    "Investigating": "investigating",
    "Identified": "identified",
    "Mitigating": "identified",
    "Monitoring": "monitoring",
    "Resolved": "resolved",
    "Closed": "resolved",
}
COMPONENT = {"SEV1": "major_outage", "SEV2": "partial_outage"}


def incident_of(envelope: Envelope) -> dict[str, object]:
    status = STATUS.get(envelope.state, "investigating")
    component = "operational" if status == "resolved" else COMPONENT.get(envelope.severity, "degraded_performance")
    ids = list(envelope.channel.component_ids)
    return {
        "incident": {
            "name": envelope.rendered.customer_name,
            "status": status,
            "body": envelope.rendered.customer_text,
            "component_ids": ids,
            "components": dict.fromkeys(ids, component),
        }
    }


class Statuspage:
    async def send(self, envelope: Envelope, http: httpx.AsyncClient) -> Outcome:
        if not envelope.credential:
            return missing("statuspage: the Secret holds no API key")
        base = (envelope.channel.url or DEFAULT_BASE).rstrip("/")
        pages = f"{base}/v1/pages/{envelope.channel.page_id}/incidents"
        headers = {"Authorization": f"OAuth {envelope.credential}"}
        body = incident_of(envelope)
        if envelope.thread:
            answer = await post(
                envelope, http, "statuspage", "PATCH", f"{pages}/{envelope.thread}", json=body, headers=headers
            )
            ref = envelope.thread
        else:
            answer = await post(envelope, http, "statuspage", "POST", pages, json=body, headers=headers)
            ref = None
        if isinstance(answer, Outcome):
            return answer
        if answer.is_success and ref is None:
            try:
                ref = str(answer.json().get("id") or "") or None
            except ValueError:
                ref = None
        status = body["incident"]["status"]  # type: ignore[index]
        return outcome_of(answer, f"statuspage {status}", ref)


SENDER = Statuspage()
