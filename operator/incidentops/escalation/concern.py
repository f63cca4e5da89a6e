"""Escalation as a concern of the Incident turn: who is paged when, through an outbox in status.

It owns status.escalation and the Notified condition. A turn finds the incident's policy
(policy_source), lets the chain decide (levels due, milestones to announce), claims the outbox
entries that are due and within their destination's rate (a claim the shell writes with the
resourceVersion it read, so of two replicas only one wins it); only then are the claimed
notifications sent (sending), and their outcomes are carried into the next turn, which records
them. A sender that dies mid-call leaves a claim that expires and is tried again (for PagerDuty
and webhooks with the same key, which the receiver deduplicates).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.common import Severity, parse_time
from incidentops.api.v1alpha1.conditions import ESCALATED, NOTIFIED, REMEDIATED, REMEDIATION_FAILED
from incidentops.api.v1alpha1.incident import (
    ENDED_STATES,
    EscalationStatus,
    IncidentSpec,
    IncidentStatus,
    NotificationDelivery,
)
from incidentops.concern import Decision, Notice, Ownership, WatchedConcern
from incidentops.config import Config
from incidentops.escalation import chain, outbox
from incidentops.escalation.channels import RATES
from incidentops.escalation.contacts import Directory
from incidentops.escalation.outbox import Retries
from incidentops.escalation.pace import Pace
from incidentops.escalation.policy_source import Chosen, PolicySource
from incidentops.escalation.sending import Dispatcher, Sent, policy_namespace, qualified
from incidentops.kube import AsyncKube, Obj
from incidentops.lifecycle.machine import append_timeline
from incidentops.metrics import ACKNOWLEDGEMENTS, ESCALATION_LATENESS, ESCALATION_LEVELS, NOTIFICATIONS, UNPAGED


def due_at(body: Mapping[str, Any], now: datetime) -> datetime | None:
    """When an Incident, as the watch delivered it, needs a look (cheap: no API call); None: not at all.

    A deadline or a retry in status gives its own time, so the operator's own writes do not wake
    the incident again before anything is due.
    """
    status = body.get("status") or {}
    if not status.get("detectedAt"):
        return None
    esc = status.get("escalation")
    is_open = status.get("state") not in ENDED_STATES
    if esc is None:
        return now if is_open else None
    spec = body.get("spec") or {}
    ref = (spec.get("escalationPolicyRef") or {}).get("name")
    if ref and ref != esc.get("policy") and is_open:
        return now
    severity, chosen_for = status.get("severity"), esc.get("chosenFor")
    if is_open and severity and chosen_for and Severity(severity) < Severity(chosen_for):
        return now  # worse than the policy was chosen for: choose again
    if esc.get("stopped") == "NoPolicy":
        return None  # a new policy in the namespace wakes it (policy_changed)
    root = (status.get("cascade") or {}).get("root")
    if is_open and not status.get("acknowledgedAt") and bool(root) != (esc.get("stopped") == "Deferred"):
        return now  # became a symptom, or stopped being one
    request = spec.get("escalationRequest") or {}
    if request.get("at") and request.get("at") != esc.get("escalationRequestSeen") and is_open:
        return now
    if not is_open and (esc.get("stopped") != "Resolved" or "resolved" not in (esc.get("announced") or [])):
        return now
    if is_open and status.get("acknowledgedAt") and esc.get("stopped") != "Acknowledged":
        return now
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    announced = esc.get("announced") or []
    remediated = conditions.get(REMEDIATED, {}).get("status") == "True"
    failed = conditions.get(ESCALATED, {}).get("reason") == REMEDIATION_FAILED
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


@dataclass(frozen=True)
class Seen:
    """What a decision needs: the policy and directory, the outbox entries due and within their rate."""

    chosen: Chosen | None = None
    directory: Directory = field(default_factory=Directory)
    due: tuple[str, ...] = ()
    later: tuple[datetime, ...] = ()
    sent: tuple[Sent, ...] = ()  # outcomes of the last sends, to record


@dataclass(frozen=True)
class Claimed:
    """What act() sends: the claimed deliveries, with the policy and directory they were decided with."""

    deliveries: list[NotificationDelivery]
    chosen: Chosen
    directory: Directory


class Escalation(WatchedConcern):
    name = "escalation"
    owns = Ownership(frozenset({"escalation"}), frozenset({NOTIFIED}))

    def __init__(self, kube: AsyncKube, config: Config, clock: Any) -> None:
        self.kube = kube
        self.config = config
        self.clock = clock
        self.timeout = config.seconds("notify_timeout")
        self.lease = timedelta(seconds=2 * self.timeout + 5)
        self.retries = Retries(
            config.notify_attempts,
            timedelta(seconds=config.seconds("notify_backoff")),
            timedelta(seconds=config.seconds("notify_backoff_max")),
        )
        self.pace = Pace(clock)
        self.policies = PolicySource(kube, config)
        self.dispatcher = Dispatcher(kube, config, clock)
        self._without_policy: dict[str, set[str]] = {}

    async def close(self) -> None:
        await self.dispatcher.close()

    def wake(self, body: Mapping[str, Any], now: datetime) -> datetime | None:
        return due_at(body, now)

    def seen(self, body: Mapping[str, Any]) -> None:
        """Incidents nobody is paged for, by namespace: a policy created there later wakes them."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        esc = (body.get("status") or {}).get("escalation") or {}
        waiting = self._without_policy.setdefault(key[0], set())
        if esc.get("stopped") == "NoPolicy":
            waiting.add(key[1])
        else:
            waiting.discard(key[1])

    def gone(self, namespace: str, name: str, uid: str) -> None:
        self._without_policy.get(namespace, set()).discard(name)

    def without_policy(self, namespace: str) -> list[tuple[str, str]]:
        return [(namespace, name) for name in sorted(self._without_policy.get(namespace, set()))]

    # -- reading --------------------------------------------------------------------------------

    async def observe(self, obj: Obj, status: IncidentStatus, now: datetime, carried: Any) -> Any:
        if carried:
            return Seen(sent=tuple(carried))
        if status.detected_at is None:
            return None
        spec = IncidentSpec.model_validate(obj.get("spec") or {})
        chosen = await self._policy(obj["metadata"]["namespace"], spec, status)
        directory = await self.dispatcher.directory()
        decided = chain.decide(self._situation(obj, spec, status, chosen, directory, now))
        esc = decided.status.escalation or EscalationStatus()
        due: list[str] = []
        later: list[datetime] = []
        for delivery in esc.deliveries:
            if not outbox.claimable(delivery, now):
                continue
            rate, burst = RATES.get(delivery.channel, (10.0, 10))
            # A live drill has budgets of its own: its pages never delay a real incident's.
            bucket = ("drill:" if spec.drill else "") + self.dispatcher.destination(chosen.policy, delivery)
            wait = self.pace.reserve(bucket, rate, burst)
            if wait is None:
                due.append(delivery.idempotency_key)
            else:
                later.append(wait)
        return Seen(chosen, directory, tuple(due), tuple(later))

    async def _policy(self, namespace: str, spec: IncidentSpec, status: IncidentStatus) -> Chosen:
        """The incident's policy: the one it has (unless spec names another), else a fresh choice."""
        esc = status.escalation
        ref = spec.escalation_policy_ref.name if spec.escalation_policy_ref else None
        worse = (
            esc is not None
            and esc.chosen_for is not None
            and status.severity is not None
            and (Severity(status.severity) < Severity(esc.chosen_for))
        )
        if esc is not None and esc.policy and (ref is None or ref == esc.policy) and not worse:
            where = policy_namespace(esc.policy, namespace)
            kept = await self.policies.current(where, esc.policy.rpartition("/")[2], esc.reason or "")
            if kept is not None:
                return kept
        return await self.policies.choose(namespace, spec, status)

    def _situation(
        self,
        obj: Obj,
        spec: IncidentSpec,
        status: IncidentStatus,
        chosen: Chosen,
        directory: Directory,
        now: datetime,
    ) -> chain.Situation:
        meta = obj["metadata"]
        return chain.Situation(
            uid=meta["uid"],
            spec=spec,
            status=status,
            policy_name=qualified(chosen.choice, meta["namespace"]),
            policy=chosen.policy,
            policy_reason=chosen.choice.reason,
            now=now,
            directory=directory,
            policy_generation=chosen.generation,
            generation=meta.get("generation"),
            rehearsal=spec.rehearsal,
            policy_warning=chosen.warning,
            deferred_to=status.cascade.root if status.cascade else None,
            hold_until=status.cascade.hold_until if status.cascade and status.cascade.depends_on else None,
        )

    # -- deciding (pure) ------------------------------------------------------------------------

    def decide(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Any, now: datetime
    ) -> Decision | None:
        if not isinstance(observed, Seen):
            return None
        if observed.sent:
            return self._record(obj, spec, status, list(observed.sent), now)
        if observed.chosen is None:
            return None
        decided = chain.decide(self._situation(obj, spec, status, observed.chosen, observed.directory, now))
        esc = decided.status.escalation or EscalationStatus()
        esc, claimed = outbox.claim(esc, list(observed.due), now, self.lease)
        updated = decided.status.model_copy(update={"escalation": esc})
        times = [t for t in (esc.next_escalation_at, outbox.next_due(esc), *observed.later) if t is not None]
        effects: list[Any] = [Claimed(claimed, observed.chosen, observed.directory)] if claimed else []
        return Decision(
            updated,
            list(decided.notices),
            effects=effects,
            next_at=min(times) if times else None,
            written=self._told(spec, status, updated, decided.fired, decided.notices),
        )

    def _told(
        self,
        spec: IncidentSpec,
        before: IncidentStatus,
        after: IncidentStatus,
        fired: list[chain.Fired],
        notices: list[Notice],
    ) -> Any:
        """The metrics of a decision, counted once it is written (never a simulation's)."""

        async def counted(_: Obj) -> None:
            if spec.drill:
                return
            if any(n.reason == "NoEscalationPolicy" for n in notices):
                UNPAGED.inc()
            for level in fired:
                ESCALATION_LEVELS.labels(str(level.level)).inc()
                if not level.manual:
                    ESCALATION_LATENESS.observe(max(0.0, (self.clock() - level.due).total_seconds()))
            was = before.escalation.announced if before.escalation else []
            now_told = after.escalation.announced if after.escalation else []
            if "acknowledged" in now_told and "acknowledged" not in was:
                ACKNOWLEDGEMENTS.labels(str((after.escalation.level if after.escalation else None) or 0)).inc()

        return counted

    def _record(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, sent: list[Sent], now: datetime
    ) -> Decision:
        """The outcomes of the last sends: Delivered (a Notified entry), a retry, or Failed (visibly)."""
        esc = status.escalation or EscalationStatus()
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
        notices = []
        for failed in failures:
            message = (
                f"{failed.event} over {failed.channel} to {failed.target or 'the channel'} failed: {failed.message}"
            )
            updated = append_timeline(updated, now, "NotificationFailed", message[:2048], chain.ACTOR)
            notices.append(Notice("NotificationFailed", message[:1024], warning=True))
        updated = chain.notified_condition(updated, esc, now, obj["metadata"].get("generation"))
        channels = [f.channel for f in failures]
        drill = spec.drill

        async def counted(_: Obj) -> None:
            for channel in [] if drill else channels:
                NOTIFICATIONS.labels(channel, "failed").inc()

        times = [t for t in (esc.next_escalation_at, outbox.next_due(esc)) if t is not None]
        return Decision(updated, notices, next_at=min(times) if times else None, again=True, written=counted)

    # -- acting (after the write) ---------------------------------------------------------------

    async def act(self, written: Obj, decision: Decision) -> Any:
        spec = IncidentSpec.model_validate(written.get("spec") or {})
        status = IncidentStatus.model_validate(written.get("status") or {})
        sent: list[Sent] = []
        for effect in decision.effects:
            if isinstance(effect, Claimed):
                policy = effect.chosen.policy
                sent += await self.dispatcher.send_all(
                    written, spec, status, policy, effect.directory, effect.deliveries
                )
        return sent or None
