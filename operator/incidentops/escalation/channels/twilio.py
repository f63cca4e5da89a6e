"""SMS and phone calls through a Twilio-style API: form-encoded Messages and Calls, basic auth.

The Secret holds ACCOUNT_SID:AUTH_TOKEN; each person's number comes from the contact directory.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

import httpx

from incidentops.escalation.channels.base import Envelope, missing, outcome_of, post
from incidentops.escalation.outbox import Outcome

DEFAULT_BASE = "https://api.twilio.com"
SMS_LIMIT = 1600


class Twilio:
    def __init__(self, kind: str) -> None:
        self.kind = kind  # "sms" or "phone"

    async def send(self, envelope: Envelope, http: httpx.AsyncClient) -> Outcome:
        if not envelope.addresses:
            return missing(f"{self.kind}: no phone number for {envelope.delivery.target} in the contact directory")
        if not envelope.credential or ":" not in envelope.credential:
            return missing(f"{self.kind}: the Secret must hold ACCOUNT_SID:AUTH_TOKEN")
        sid, token = envelope.credential.split(":", 1)
        base = (envelope.channel.url or DEFAULT_BASE).rstrip("/")
        rendered = envelope.rendered
        form = {"To": envelope.addresses[0], "From": envelope.channel.sender or ""}
        if self.kind == "sms":
            resource = "Messages.json"
            form["Body"] = f"{rendered.subject}\n{rendered.text}"[:SMS_LIMIT]
        else:
            resource = "Calls.json"
            spoken = escape(f"{rendered.subject}. {rendered.text}"[:1000])
            form["Twiml"] = f'<Response><Say voice="alice" loop="2">{spoken}</Say></Response>'
        url = f"{base}/2010-04-01/Accounts/{sid}/{resource}"
        answer = await post(envelope, http, self.kind, "POST", url, data=form, auth=(sid, token))
        if isinstance(answer, Outcome):
            return answer
        ref = None
        if answer.is_success:
            try:
                ref = str(answer.json().get("sid") or "") or None
            except ValueError:
                ref = None
        return outcome_of(answer, f"{self.kind} to {envelope.delivery.target}", ref)


SMS = Twilio("sms")
PHONE = Twilio("phone")
