"""The escalation shell: read, decide, claim, write, then send; one incident at a time, woken by deadlines.

A turn reads the Incident fresh, finds its policy and the contact directory, lets the chain
decide (levels due, milestones to announce), claims the outbox entries that are due, and writes
all that with the resourceVersion it read (a 409: read again, decide again). Only then are the
claimed notifications sent, and their outcomes recorded the same way. Of two replicas only one
wins a claim, so each notification goes out once; a sender that dies mid-call leaves a claim
that expires and is tried again (for PagerDuty and webhooks with the same key, which the
receiver deduplicates).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import httpx

from incidentops.api.v1alpha1.common import format_time, parse_time
from incidentops.api.v1alpha1.escalationpolicy import Channel, EscalationPolicySpec
from incidentops.api.v1alpha1.incident import (
    EscalationStatus,
    IncidentSpec,
    IncidentState,
    IncidentStatus,
    NotificationDelivery,
    current_severity,
)
from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.config import Config
from incidentops.egress import protected_endpoints
from incidentops.escalation import chain, outbox
from incidentops.escalation.channels import RATES, REGISTRY
from incidentops.escalation.channels.base import Envelope, SmtpSettings
from incidentops.escalation.contacts import Directory, DirectoryError, parse_directory
from incidentops.escalation.outbox import Outcome, Retries
from incidentops.escalation.pace import Pace
from incidentops.escalation.policies import PolicyChoice
from incidentops.escalation.policy_source import Chosen, PolicySource
from incidentops.escalation.templates import Templates, fields_of
from incidentops.kube import AsyncKube, Conflict, KubeError, NotFound, Obj, Unavailable
from incidentops.lifecycle.intents import Notice
from incidentops.lifecycle.machine import append_timeline
from incidentops.logs import waiting_level
from incidentops.metrics import ACKNOWLEDGEMENTS, ESCALATION_LATENESS, ESCALATION_LEVELS, NOTIFICATIONS, UNPAGED
from incidentops.redaction import redact

log = logging.getLogger(__name__)
V = TypeVar("V")
MAX_ROUNDS = 20
CACHE_SECONDS = 10.0
CLOSED = frozenset({IncidentState.RESOLVED, IncidentState.CLOSED})
NEWS = {
    "acknowledged": "acknowledged",
    "remediated": "remediation worked (verified); the service is being monitored",
    "remediation-failed": "automatic remediation failed; a human must take over",
    "resolved": "resolved",
}


def due_at(body: Mapping[str, Any], now: datetime) -> datetime | None:
    """When an Incident, as the watch delivered it, needs a look (cheap: no API call); None: not at all.

    A deadline or a retry in status gives its own time, so the operator's own writes do not wake
    the incident again before anything is due.
    """
    status = body.get("status") or {}
    if not status.get("detectedAt"):
        return None
    esc = status.get("escalation")
    is_open = status.get("state") not in CLOSED
    if esc is None:
        return now if is_open else None
    spec = body.get("spec") or {}
    ref = (spec.get("escalationPolicyRef") or {}).get("name")
    if ref and ref != esc.get("policy") and is_open:
        return now
    if esc.get("stopped") == "NoPolicy":
        return None  # a new policy in the namespace wakes it (policy_changed)
    request = spec.get("escalationRequest") or {}
    if request.get("at") and request.get("at") != esc.get("escalationRequestSeen") and is_open:
        return now
    if not is_open and (esc.get("stopped") != "Resolved" or "resolved" not in (esc.get("announced") or [])):
        return now
    if is_open and status.get("acknowledgedAt") and esc.get("stopped") != "Acknowledged":
        return now
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    announced = esc.get("announced") or []
    remediated = conditions.get("Remediated", {}).get("status") == "True"
    failed = conditions.get("Escalated", {}).get("reason") == "RemediationFailed"
    if (remediated and "remediated" not in announced) or (failed and "remediation-failed" not in announced):
        return now
    times: list[datetime] = []
    if is_open and esc.get("nextEscalationAt"):
        times.append(parse_time(esc["nextEscalationAt"]))
    for delivery in esc.get("deliveries") or []:
        if delivery.get("state") == "Pending":
            when = delivery.get("claimedUntil") or delivery.get("nextAttemptAt")
            times.append(parse_time(when) if when else now)
    return min(times) if times else None


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


class Escalator:
    """Pages people for every open Incident in this process."""

    def __init__(self, kube: AsyncKube, config: Config, clock: Callable[[], datetime]) -> None:
        from incidentops.deadlines import DeadlineQueue  # noqa: PLC0415

        self.kube = kube
        self.config = config
        self.clock = clock
        self.queue = DeadlineQueue(self._turn, clock, concurrency=8, name="escalation")
        self.poll = timedelta(seconds=config.seconds("remediation_poll"))
        self.timeout = config.seconds("notify_timeout")
        self.lease = timedelta(seconds=2 * self.timeout + 5)
        self.retries = Retries(
            config.notify_attempts,
            timedelta(seconds=config.seconds("notify_backoff")),
            timedelta(seconds=config.seconds("notify_backoff_max")),
        )
        self.smtp = SmtpSettings(config.smtp_host, config.smtp_port, config.smtp_starttls, config.smtp_from)
        self.pace = Pace(clock)
        self.policies = PolicySource(kube, config)
        self.egress = config.channel_egress(protected_endpoints(kube.client.apiserver_url, config.http_port))
        self.http: httpx.AsyncClient | None = None
        self._cache = _Cached()
        self._without_policy: dict[str, set[str]] = {}

    # -- feeding ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Rebuild the queue from a LIST (deadlines are in status), then start waking incidents."""
        self.http = httpx.AsyncClient(follow_redirects=False)
        namespaces: list[str | None] = list(self.config.namespaces) or [None]
        for namespace in namespaces:
            for obj in await self.kube.list(INCIDENT, namespace):
                self.observe(obj)
        self.queue.start()
        log.info("escalation started: %d incidents to look at", self.queue.pending())

    async def stop(self) -> None:
        await self.queue.stop()
        if self.http is not None:
            await self.http.aclose()

    def observe(self, body: Mapping[str, Any]) -> None:
        """Feed one Incident as the watch (or the start-up LIST) saw it."""
        meta = body.get("metadata") or {}
        key = (meta.get("namespace"), meta.get("name"))
        esc = (body.get("status") or {}).get("escalation") or {}
        waiting = self._without_policy.setdefault(str(key[0]), set())
        if esc.get("stopped") == "NoPolicy":
            waiting.add(str(key[1]))
        else:
            waiting.discard(str(key[1]))
        when = due_at(body, self.clock())
        if when is not None:
            self.queue.schedule(key, when)

    def forget(self, namespace: str, name: str) -> None:
        self._without_policy.get(namespace, set()).discard(name)
        self.queue.forget((namespace, name))

    def policy_changed(self, namespace: str) -> None:
        """A policy appeared or changed: incidents that had none may have one now."""
        for name in list(self._without_policy.get(namespace, set())):
            self.queue.schedule((namespace, name))

    # -- one incident ----------------------------------------------------------------------------

    async def _turn(self, key: Hashable) -> datetime | None:
        namespace, name = str(key[0]), str(key[1])  # type: ignore[index]
        sent: list[Sent] = []
        for _ in range(MAX_ROUNDS):
            try:
                obj = await self.kube.get(INCIDENT, namespace, name)
                if sent:
                    if await self._record(obj, sent):
                        sent = []
                    continue
                again, nxt, sent = await self._round(obj)
            except NotFound:
                return None
            except Unavailable as error:
                log.log(waiting_level(error), "escalation of %s/%s waits for the apiserver: %s", namespace, name, error)
                return self.clock() + self.poll
            if not again and not sent:
                return nxt
        log.warning("escalation of %s/%s kept changing for %d rounds; looking again later", namespace, name, MAX_ROUNDS)
        return self.clock() + self.poll

    async def _round(self, obj: Obj) -> tuple[bool, datetime | None, list[Sent]]:
        """Decide, claim, write, send: (look again now?, when to look next, what was sent)."""
        if not (obj.get("status") or {}).get("detectedAt"):
            return False, None, []
        meta = obj["metadata"]
        spec = IncidentSpec.model_validate(obj["spec"])
        status = IncidentStatus.model_validate(obj["status"])
        now = self.clock()
        chosen = await self._policy(meta["namespace"], spec, status)
        policy = chosen.policy
        directory = await self._directory()
        sit = chain.Situation(
            uid=meta["uid"],
            spec=spec,
            status=status,
            policy_name=_qualified(chosen.choice, meta["namespace"]),
            policy=policy,
            policy_reason=chosen.choice.reason,
            now=now,
            directory=directory,
            policy_generation=chosen.generation,
            generation=meta.get("generation"),
            rehearsal=spec.rehearsal,
            policy_warning=chosen.warning,
        )
        decision = chain.decide(sit)
        updated = decision.status
        esc = updated.escalation or EscalationStatus()
        wake: list[datetime] = []
        due: list[str] = []
        for delivery in esc.deliveries:
            if not outbox.claimable(delivery, now):
                continue
            rate, burst = RATES.get(delivery.channel, (10.0, 10))
            # A live drill has budgets of its own: its pages never delay a real incident's.
            bucket = ("drill:" if spec.drill else "") + self._destination(policy, delivery)
            later = self.pace.reserve(bucket, rate, burst)
            if later is None:
                due.append(delivery.idempotency_key)
            else:
                wake.append(later)
        esc, claimed = outbox.claim(esc, due, now, self.lease)
        updated = updated.model_copy(update={"escalation": esc})
        if updated.wire() != status.wire():
            try:
                written = await self.kube.replace_status(INCIDENT, {**obj, "status": updated.wire()})
            except Conflict:
                return True, None, []
            self._told(written, decision.notices, status, updated, decision.fired, drill=spec.drill)
        else:
            written = obj
        if claimed:
            return True, None, await self._send_all(written, spec, updated, policy, directory, claimed)
        times = [t for t in (esc.next_escalation_at, outbox.next_due(esc), *wake) if t is not None]
        return False, min(times) if times else None, []

    def _told(
        self,
        obj: Obj,
        notices: list[Notice],
        before: IncidentStatus,
        after: IncidentStatus,
        fired: list[chain.Fired],
        *,
        drill: bool = False,
    ) -> None:
        meta = obj["metadata"]
        for notice in notices:
            level_of = logging.WARNING if notice.warning else logging.INFO
            log.log(level_of, "incident %s/%s: %s", meta["namespace"], meta["name"], notice.message)
            self.kube.post_event_soon(
                obj, notice.reason, notice.message, type_="Warning" if notice.warning else "Normal"
            )
            if notice.reason == "NoEscalationPolicy" and not drill:
                UNPAGED.inc()
        if drill:
            return  # a simulation is no real incident's page, lateness or acknowledgement
        for level in fired:
            ESCALATION_LEVELS.labels(str(level.level)).inc()
            if not level.manual:
                ESCALATION_LATENESS.observe(max(0.0, (self.clock() - level.due).total_seconds()))
        was = before.escalation.announced if before.escalation else []
        now_told = after.escalation.announced if after.escalation else []
        if "acknowledged" in now_told and "acknowledged" not in was:
            ACKNOWLEDGEMENTS.labels(str((after.escalation.level if after.escalation else None) or 0)).inc()

    # -- sending ---------------------------------------------------------------------------------

    async def _send_all(
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
                envelope = await self._envelope(obj, spec, status, policy, directory, templates, delivery)
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

    async def _record(self, obj: Obj, sent: list[Sent]) -> bool:
        """Write the outcomes; False on a conflict (read again and retry)."""
        status = IncidentStatus.model_validate(obj["status"])
        esc = status.escalation or EscalationStatus()
        now = self.clock()
        failures: list[NotificationDelivery] = []
        delivered: list[NotificationDelivery] = []
        for item in sent:
            esc, recorded = outbox.record(esc, item.key, item.attempt, item.outcome, now, self.retries)
            if recorded is not None and recorded.state == "Failed":
                failures.append(recorded)
            elif recorded is not None and recorded.state == "Delivered":
                delivered.append(recorded)
        updated = status.model_copy(update={"escalation": esc})
        for entry in chain.delivered_entries(delivered):  # "Notified" means a channel confirmed it
            updated = append_timeline(updated, now, "Notified", entry[:2048], chain.ACTOR)
        for failed in failures:
            message = (
                f"{failed.event} over {failed.channel} to {failed.target or 'the channel'} failed: {failed.message}"
            )
            updated = append_timeline(updated, now, "NotificationFailed", message[:2048], chain.ACTOR)
        updated = chain.notified_condition(updated, esc, now, obj["metadata"].get("generation"))
        if updated.wire() == status.wire():
            return True
        try:
            written = await self.kube.replace_status(INCIDENT, {**obj, "status": updated.wire()})
        except Conflict:
            return False
        drill = bool((obj.get("spec") or {}).get("simulation"))
        for failed in failures:
            if not drill:
                NOTIFICATIONS.labels(failed.channel, "failed").inc()
            message = (
                f"{failed.event} over {failed.channel} to {failed.target or 'the channel'} failed: {failed.message}"
            )
            log.warning("incident %s/%s: %s", obj["metadata"]["namespace"], obj["metadata"]["name"], message)
            self.kube.post_event_soon(written, "NotificationFailed", message[:1024], type_="Warning")
        return True

    def _destination(self, policy: EscalationPolicySpec | None, delivery: NotificationDelivery) -> str:
        channel = _channel(policy, delivery)
        return channel.identity() if channel is not None else delivery.channel

    async def _envelope(
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
        where = _policy_namespace(esc.policy, meta["namespace"])
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

    # -- what the turn reads ---------------------------------------------------------------------

    async def _policy(self, namespace: str, spec: IncidentSpec, status: IncidentStatus) -> Chosen:
        """The incident's policy: the one it has (unless spec names another), else a fresh choice."""
        esc = status.escalation
        ref = spec.escalation_policy_ref.name if spec.escalation_policy_ref else None
        if esc is not None and esc.policy and (ref is None or ref == esc.policy):
            where = _policy_namespace(esc.policy, namespace)
            kept = await self.policies.current(where, esc.policy.rpartition("/")[2], esc.reason or "")
            if kept is not None:
                return kept
        return await self.policies.choose(namespace, spec, status)

    async def _directory(self) -> Directory:
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


def _qualified(choice: PolicyChoice, namespace: str) -> str | None:
    """The policy's name as status keeps it: namespace/name only when it lives elsewhere."""
    if choice.name is None:
        return None
    return choice.name if choice.namespace in (None, namespace) else f"{choice.namespace}/{choice.name}"


def _policy_namespace(policy: str | None, namespace: str) -> str:
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
