"""What every channel gets to send one notification, and how HTTP answers become outcomes."""

from __future__ import annotations

import asyncio
import email.utils
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from incidentops.api.v1alpha1.escalationpolicy import Channel
from incidentops.api.v1alpha1.incident import NotificationDelivery
from incidentops.egress import EgressPolicy, Refused, ServiceLookup
from incidentops.escalation.outbox import Outcome
from incidentops.escalation.templates import Rendered
from incidentops.redaction import excerpt


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    starttls: bool = False
    sender: str = "incidentops@localhost"


@dataclass(frozen=True)
class Envelope:
    """One notification, ready to go: the delivery, its channel, the rendered text and the credentials."""

    delivery: NotificationDelivery
    channel: Channel
    namespace: str
    name: str
    uid: str
    severity: str
    state: str
    rendered: Rendered
    document: dict[str, Any]
    credential: str | None = None
    signing_key: str | None = None
    addresses: list[str] = field(default_factory=list)
    thread: str | None = None
    timeout: float = 10.0
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    egress: EgressPolicy | None = None  # None only in unit tests of the wire formats: nothing is checked
    services: ServiceLookup | None = None
    policy_namespace: str = ""

    @property
    def dedup_key(self) -> str:
        """PagerDuty's dedup_key: one PagerDuty incident per Incident, and the way back from its webhook."""
        return f"incidentops/{self.namespace}/{self.name}/{self.uid}"[:255]


class Sender(Protocol):
    async def send(self, envelope: Envelope, http: httpx.AsyncClient) -> Outcome: ...


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), if the answer has one."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def outcome_of(response: httpx.Response, what: str, ref: str | None = None) -> Outcome:
    """2xx delivered; 429 and 5xx retried (honouring Retry-After); any other answer is final."""
    body = excerpt(response.text, 200)
    said = f"{what}: HTTP {response.status_code}" + (f" {body}" if body else "")
    if response.is_success:
        return Outcome("delivered", said, ref)
    if response.status_code == 429 or response.status_code >= 500:
        return Outcome("retry", said, retry_after=retry_after(response))
    return Outcome("failed", said)


async def post(
    envelope: Envelope, http: httpx.AsyncClient, what: str, method: str, url: str, **kwargs: Any
) -> httpx.Response | Outcome:
    """The response, or an Outcome: failed when the destination is not allowed, retry when unreachable in time.

    The destination is checked against the operator's egress settings (incidentops.egress) and the
    connection goes to the address that was checked. No part of the URL is logged or recorded:
    for a Slack webhook the path is the credential.
    """
    seconds = envelope.timeout
    extensions: dict[str, Any] = {}
    if envelope.egress is not None:
        namespace = envelope.policy_namespace or envelope.namespace
        try:
            destination = await asyncio.to_thread(envelope.egress.resolve, url, namespace, envelope.services)
        except Refused as refused:
            return Outcome("failed", f"{what}: destination refused ({refused.reason}): {refused}"[:500])
        url, host, extensions = destination.request(url)
        kwargs["headers"] = {**(kwargs.get("headers") or {}), **host}
    try:
        return await http.request(method, url, timeout=seconds, extensions=extensions or None, **kwargs)
    except httpx.TimeoutException:
        return Outcome("retry", f"{what}: no answer within {seconds:.0f}s")
    except httpx.HTTPError as error:
        return Outcome("retry", f"{what}: {type(error).__name__}: {excerpt(str(error), 200)}")


def missing(what: str) -> Outcome:
    return Outcome("failed", what)
