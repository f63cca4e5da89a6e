"""Sending what the escalation decided: each claimed notification rendered and sent over its channel.

Credentials are read from the policy's Secrets (cached for a few seconds), the message rendered
from the templates, the destination checked against the egress settings, and the channel's
answer redacted of what it was sent before it is logged or recorded. A channel's bug never loses
the outbox entry: it is retried like an unreachable service.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar, cast

import httpx

from incidentops.api.v1alpha1.common import format_time
from incidentops.api.v1alpha1.escalationpolicy import Channel, EscalationPolicySpec
from incidentops.api.v1alpha1.incident import (
    EscalationStatus,
    IncidentSpec,
    IncidentStatus,
    NotificationDelivery,
    current_severity,
)
from incidentops.config import Config
from incidentops.egress import protected_endpoints
from incidentops.escalation.channels import REGISTRY
from incidentops.escalation.channels.base import Envelope, SmtpSettings
from incidentops.escalation.contacts import Directory, DirectoryError, parse_directory
from incidentops.escalation.outbox import Outcome
from incidentops.escalation.policies import PolicyChoice
from incidentops.escalation.templates import Templates, fields_of
from incidentops.kube import AsyncKube, KubeError, NotFound, Obj
from incidentops.metrics import NOTIFICATIONS
from incidentops.redaction import redact

log = logging.getLogger(__name__)
V = TypeVar("V")
CACHE_SECONDS = 10.0
NEWS = {
    "acknowledged": "acknowledged",
    "remediated": "remediation worked (verified); the service is being monitored",
    "remediation-failed": "automatic remediation failed; a human must take over",
    "resolved": "resolved",
}


@dataclass
class Sent:
    key: str
    attempt: int
    channel: str
    outcome: Outcome


class _Cached:
    """Values read from the cluster, kept for a few seconds (the directory, templates, credentials)."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[float, Any]] = {}

    async def get_or_load(self, key: str, load: Callable[[], Awaitable[V]]) -> V:
        hit = self._values.get(key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return cast(V, hit[1])
        value = await load()
        self._values[key] = (time.monotonic(), value)
        return value

    def forget(self, key: str) -> None:
        self._values.pop(key, None)


class Dispatcher:
    """Renders and sends claimed notifications; reads the directory, templates and credentials it needs."""

    def __init__(self, kube: AsyncKube, config: Config, clock: Callable[[], datetime]) -> None:
        self.kube = kube
        self.config = config
        self.clock = clock
        self.timeout = config.seconds("notify_timeout")
        self.smtp = SmtpSettings(config.smtp_host, config.smtp_port, config.smtp_starttls, config.smtp_from)
        self.egress = config.channel_egress(protected_endpoints(kube.client.apiserver_url, config.http_port))
        self.http: httpx.AsyncClient | None = None
        self._cache = _Cached()

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    async def send_all(
        self,
        obj: Obj,
        spec: IncidentSpec,
        status: IncidentStatus,
        policy: EscalationPolicySpec | None,
        directory: Directory,
        claimed: list[NotificationDelivery],
    ) -> list[Sent]:
        sent: list[Sent] = []
        templates = await self._templates()
        for delivery in claimed:
            envelope: Envelope | Outcome | None = None
            try:
                envelope = await self.envelope(obj, spec, status, policy, directory, templates, delivery)
                outcome = (
                    envelope
                    if isinstance(envelope, Outcome)
                    else await REGISTRY[delivery.channel].send(envelope, self._client())
                )
            except Exception as error:  # a channel's bug must not lose the outbox entry: retry it
                log.error("sending %s failed unexpectedly: %s", delivery.idempotency_key, type(error).__name__)
                outcome = Outcome("retry", f"{type(error).__name__}: {error}"[:500])
            if isinstance(envelope, Envelope):  # the answer may echo what it was sent
                outcome = replace(outcome, message=redact(outcome.message, [envelope.credential, envelope.signing_key]))
            if outcome.result != "failed" and not spec.drill:  # a final failure is counted once, when recorded
                NOTIFICATIONS.labels(delivery.channel, outcome.result).inc()
            log.info(
                "incident %s/%s: %s %s to %s: %s (%s)",
                obj["metadata"]["namespace"],
                obj["metadata"]["name"],
                delivery.event,
                delivery.channel,
                delivery.target or "channel",
                outcome.result,
                outcome.message,
            )
            sent.append(Sent(delivery.idempotency_key, delivery.attempts, delivery.channel, outcome))
        return sent

    def _client(self) -> httpx.AsyncClient:
        if self.http is None:
            self.http = httpx.AsyncClient(follow_redirects=False)
        return self.http

    def destination(self, policy: EscalationPolicySpec | None, delivery: NotificationDelivery) -> str:
        channel = _channel(policy, delivery)
        return channel.identity() if channel is not None else delivery.channel

    async def envelope(
        self,
        obj: Obj,
        spec: IncidentSpec,
        status: IncidentStatus,
        policy: EscalationPolicySpec | None,
        directory: Directory,
        templates: Templates,
        delivery: NotificationDelivery,
    ) -> Envelope | Outcome:
        meta = obj["metadata"]
        channel = _channel(policy, delivery)
        if channel is None:
            return Outcome("failed", "the policy no longer has this level or channel")
        esc = status.escalation or EscalationStatus()
        where = policy_namespace(esc.policy, meta["namespace"])
        credential = (
            await self._secret(where, channel.secret_ref.name, channel.secret_ref.key) if channel.secret_ref else None
        )
        signing = (
            await self._secret(where, channel.signing_key_ref.name, channel.signing_key_ref.key)
            if channel.signing_key_ref
            else None
        )
        if isinstance(credential, Outcome):
            return credential
        if isinstance(signing, Outcome):
            return signing
        severity = str(current_severity(spec, status))
        milestone = delivery.idempotency_key.split("/")[1] if "/" in delivery.idempotency_key else delivery.event
        level_spec = policy.levels[delivery.level - 1] if policy and delivery.level <= len(policy.levels) else None
        remediation = status.remediation
        fields = fields_of(
            name=meta["name"],
            namespace=meta["namespace"],
            title=spec.title,
            severity=severity,
            state=str(status.state),
            now=self.clock(),
            detected_at=status.detected_at,
            resolved_at=status.resolved_at,
            service=spec.service or "",
            category=str(spec.category or ""),
            summary=spec.summary or "",
            alerts_firing=len(status.alerts.active),
            remediation=(
                f"{remediation.runbook}: {remediation.reason or remediation.phase}"
                if remediation and remediation.runbook
                else ""
            ),
            level=delivery.level,
            level_name=(level_spec.name if level_spec else None) or "",
            round=delivery.round,
            targets=delivery.target,
            news=NEWS.get(milestone, milestone),
            acknowledged_by=status.acknowledged_by or "",
            resolved_by=status.resolved_by or "",
            root_cause=spec.resolution.root_cause if spec.resolution else "",
            resolution_summary=spec.resolution.summary if spec.resolution else "",
        )
        rendered = templates.render(delivery.event, fields)
        for problem in rendered.problems:
            log.warning("incident %s/%s: %s", meta["namespace"], meta["name"], problem)
        document = {
            "version": "v1",
            "event": delivery.event,
            "news": fields["news"],
            "idempotencyKey": delivery.idempotency_key,
            "incident": {
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
                "title": fields["title"],
                "severity": severity,
                "state": str(status.state),
                "service": spec.service,
                "category": spec.category,
                "detectedAt": format_time(status.detected_at) if status.detected_at else None,
                "acknowledgedBy": status.acknowledged_by,
                "resolvedAt": format_time(status.resolved_at) if status.resolved_at else None,
            },
            "level": delivery.level,
            "levelName": fields["level_name"] or None,
            "round": delivery.round,
            "targets": [t for t in delivery.target.split(",") if t],
            "message": {"subject": rendered.subject, "text": rendered.text},
        }
        return Envelope(
            delivery=delivery,
            channel=channel,
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            severity=severity,
            state=str(status.state),
            rendered=rendered,
            document=document,
            credential=credential,
            signing_key=signing,
            addresses=_addresses(delivery, directory),
            thread=_thread(policy, esc, channel),
            timeout=self.timeout,
            smtp=self.smtp,
            egress=self.egress,
            services=self.kube.client.service,
            policy_namespace=where,
        )

    async def directory(self) -> Directory:
        source = self.config.contacts_secret
        if not source:
            return Directory()

        async def load() -> Directory:
            namespace, name, key = source.split("/")
            try:
                return parse_directory(await self.kube.secret_value(namespace, name, key))
            except (KubeError, DirectoryError) as error:
                log.error("cannot read the contact directory %s: %s", source, error)
                return Directory()

        return await self._cache.get_or_load("directory", load)

    async def _templates(self) -> Templates:
        source = self.config.templates_configmap
        if not source:
            return Templates()

        async def load() -> Templates:
            namespace, name = source.split("/")
            try:
                return Templates(await self.kube.configmap_data(namespace, name))
            except KubeError as error:
                log.error("cannot read the templates ConfigMap %s: %s; using the built-in ones", source, error)
                return Templates()

        return await self._cache.get_or_load("templates", load)

    async def _secret(self, namespace: str, name: str, key: str) -> str | Outcome:
        """A credential; a failed Outcome when it cannot be had (a read error is retried, not cached)."""
        cache_key = f"secret/{namespace}/{name}/{key}"

        async def load() -> str | Outcome:
            try:
                value = await self.kube.secret_value(namespace, name, key)
            except NotFound:
                return Outcome("failed", f"Secret {namespace}/{name} does not exist")
            except KubeError as error:
                return Outcome("retry", f"cannot read Secret {namespace}/{name}: {error}")
            if value is None:
                return Outcome("failed", f"Secret {namespace}/{name} has no key {key}")
            return value.strip()

        found = await self._cache.get_or_load(cache_key, load)
        if isinstance(found, Outcome):
            self._cache.forget(cache_key)  # a missing Secret may appear: look again next time
        return found


def qualified(choice: PolicyChoice, namespace: str) -> str | None:
    """The policy's name as status keeps it: namespace/name only when it lives elsewhere."""
    if choice.name is None:
        return None
    return choice.name if choice.namespace in (None, namespace) else f"{choice.namespace}/{choice.name}"


def policy_namespace(policy: str | None, namespace: str) -> str:
    return policy.partition("/")[0] if policy and "/" in policy else namespace


def _channel(policy: EscalationPolicySpec | None, delivery: NotificationDelivery) -> Channel | None:
    if policy is None or delivery.level > len(policy.levels):
        return None
    channels = policy.levels[delivery.level - 1].channels
    return channels[delivery.channel_index] if delivery.channel_index < len(channels) else None


def _addresses(delivery: NotificationDelivery, directory: Directory) -> list[str]:
    """Where a delivery goes: the person's address, the shared email list, or Slack member IDs to mention."""
    if delivery.target.startswith("to:"):
        return [a for a in delivery.target[3:].split(",") if a]
    if delivery.channel in ("email", "sms", "phone"):
        address = directory.address(delivery.target, delivery.channel)
        return [address] if address else []
    if delivery.channel == "slack":
        ids = [directory.address(t, "slack") for t in delivery.target.split(",") if t]
        return [i for i in ids if i]
    return []


def _thread(policy: EscalationPolicySpec | None, esc: EscalationStatus, channel: Channel) -> str | None:
    """The id of the first message this destination got for the incident, to reply under it."""
    if channel.type not in ("slack", "statuspage"):
        return None
    identity = channel.identity()
    for delivery in esc.deliveries:
        other = _channel(policy, delivery)
        if delivery.state == "Delivered" and delivery.ref and other is not None and other.identity() == identity:
            return delivery.ref
    return None
