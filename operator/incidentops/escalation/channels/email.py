"""Email over SMTP (STARTTLS when configured): a readable text body with an HTML alternative.

smtplib is synchronous, so each message is sent on a worker thread. A 4xx reply or a lost
connection is retried; a 5xx reply (say, the recipient does not exist) is final.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

import httpx

from incidentops.escalation.channels.base import Envelope, missing
from incidentops.escalation.outbox import Outcome


def message_of(envelope: Envelope) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = envelope.rendered.subject
    message["From"] = envelope.smtp.sender
    message["To"] = ", ".join(envelope.addresses)
    message["Date"] = formatdate(localtime=False)
    digest = hashlib.sha256(envelope.delivery.idempotency_key.encode()).hexdigest()[:32]
    domain = envelope.smtp.sender.rpartition("@")[2] or "incidentops"
    message["Message-ID"] = f"<{digest}@{domain}>"
    message["X-Incidentops-Incident"] = f"{envelope.namespace}/{envelope.name}"
    message.set_content(envelope.rendered.text + "\n")
    message.add_alternative(envelope.rendered.html, subtype="html")
    return message


def _send(envelope: Envelope, message: EmailMessage) -> Outcome:
    smtp = envelope.smtp
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=envelope.timeout) as client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            if envelope.credential and ":" in envelope.credential:
                user, password = envelope.credential.split(":", 1)
                client.login(user, password)
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused as error:
        return Outcome("failed", f"email: recipients refused: {error.recipients}"[:500])
    except smtplib.SMTPResponseException as error:
        text = error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) else error.smtp_error
        said = f"email: SMTP {error.smtp_code} {text}"[:500]
        return Outcome("retry", said) if 400 <= error.smtp_code < 500 else Outcome("failed", said)
    except (OSError, smtplib.SMTPException) as error:
        return Outcome("retry", f"email: {smtp.host}:{smtp.port}: {type(error).__name__}: {error}"[:500])
    return Outcome("delivered", f"email to {', '.join(envelope.addresses)} accepted by {smtp.host}:{smtp.port}")


class Email:
    async def send(self, envelope: Envelope, http: httpx.AsyncClient) -> Outcome:
        if not envelope.addresses:
            return missing(f"email: no address for {envelope.delivery.target} in the contact directory")
        return await asyncio.to_thread(_send, envelope, message_of(envelope))


SENDER = Email()
