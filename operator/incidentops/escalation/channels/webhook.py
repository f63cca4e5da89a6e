"""Generic webhook: a JSON document describing the incident and the event, signed when a key is set.

The signature is HMAC-SHA256 over "<timestamp>.<body>" (X-Incidentops-Timestamp, then
X-Incidentops-Signature: sha256=<hex>), so a receiver can refuse replays; Idempotency-Key
carries the delivery's key so a receiver can drop a retry it has already seen.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx

from incidentops.escalation.channels.base import Envelope, missing, outcome_of, post
from incidentops.escalation.outbox import Outcome


def signature(key: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class Webhook:
    async def send(self, envelope: Envelope, http: httpx.AsyncClient) -> Outcome:
        url = envelope.channel.url or envelope.credential
        if not url:
            return missing("webhook: no url, and the Secret holds none")
        body = json.dumps(envelope.document, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": envelope.delivery.idempotency_key,
            "User-Agent": "incidentops",
        }
        if envelope.channel.url and envelope.credential:
            headers["Authorization"] = f"Bearer {envelope.credential}"
        if envelope.signing_key:
            timestamp = str(int(time.time()))
            headers["X-Incidentops-Timestamp"] = timestamp
            headers["X-Incidentops-Signature"] = signature(envelope.signing_key, timestamp, body)
        answer = await post(envelope, http, "webhook", "POST", url, content=body, headers=headers)
        return answer if isinstance(answer, Outcome) else outcome_of(answer, "webhook")


SENDER = Webhook()
