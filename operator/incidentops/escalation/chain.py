"""The escalation decision: pure, over (spec, status, policy, directory, now).

It returns the next status and what humans should see. Level `i` of round `r` falls due at
round_started_at + levels[i].after; the next round starts `repeat.interval` after the last
level's delay. Firing a level puts its notifications in the outbox (status.escalation.deliveries)
as Pending, each with a key that can only be created once; sending them is the shell's job.
Acknowledgement and resolution stop the chain; what happened afterwards (acknowledged,
remediated, resolved) is announced once to the channels that were paged.

One module because it is one pure decision: due levels, repeats, stops and announcements read
and write the same chain state, and its unit tests follow it from top to bottom.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from incidentops.api.v1alpha1.common import Severity, format_time, parse_duration
from incidentops.api.v1alpha1.conditions import find_condition, set_condition
from incidentops.api.v1alpha1.escalationpolicy import PER_PERSON, Channel, EscalationPolicySpec
from incidentops.api.v1alpha1.incident import (
    ENDED_STATES,
    MAX_DELIVERIES,
    EscalationStatus,
    IncidentSpec,
    IncidentStatus,
    NotificationDelivery,
    NotificationEvent,
    current_severity,
)
from incidentops.concern import Notice
from incidentops.escalation.contacts import Directory
from incidentops.escalation.schedules import on_call
from incidentops.lifecycle.machine import append_timeline

ACTOR = "incidentops"
REHEARSAL = "rehearsal (kubectl incident simulate): not sent"
MILESTONES = ("acknowledged", "remediated", "remediation-failed", "resolved")
# Which channel types hear about which milestone: nobody is woken by SMS to learn that a colleague
# acknowledged, but everyone paged hears that it is over.
ANNOUNCE: dict[str, frozenset[str]] = {
    "acknowledged": frozenset({"pagerduty", "slack", "webhook"}),
    "remediated": frozenset({"slack", "webhook", "statuspage"}),
    "remediation-failed": frozenset({"slack", "webhook"}),
    "resolved": frozenset({"pagerduty", "slack", "webhook", "statuspage", "email", "sms", "phone"}),
}
EVENT_OF: dict[str, NotificationEvent] = {
    "acknowledged": "acknowledged",
    "remediated": "update",
    "remediation-failed": "update",
    "resolved": "resolved",
}


@dataclass(frozen=True)
class Situation:
    """Everything the decision reads."""

    uid: str
    spec: IncidentSpec
    status: IncidentStatus
    policy_name: str | None
    policy: EscalationPolicySpec | None
    policy_reason: str
    now: datetime
    directory: Directory = field(default_factory=Directory)
    policy_generation: int | None = None
    generation: int | None = None
    rehearsal: bool = False  # a simulation that must page nobody: deliveries are Simulated, never sent
    policy_warning: str | None = None  # a broken policy passed over for this one
    deferred_to: str | None = None  # a symptom: the root incident whose escalation pages instead
    hold_until: datetime | None = None  # the first page waits until then (an upstream incident may show up)


@dataclass(frozen=True)
class Fired:
    """A level that was notified, and when it was due (for the lateness metric)."""

    level: int
    round: int
    due: datetime
    manual: bool = False


@dataclass
class Decision:
    status: IncidentStatus
    notices: list[Notice]
    fired: list[Fired]


def deadline(policy: EscalationPolicySpec, esc: EscalationStatus) -> datetime | None:
    """When esc.next_level falls due."""
    if esc.next_level is None or esc.round_started_at is None or esc.next_level > len(policy.levels):
        return None
    return esc.round_started_at + parse_duration(policy.levels[esc.next_level - 1].after)


def answer_time(policy: EscalationPolicySpec) -> timedelta:
    """How long the last level has to answer before the chain is exhausted.

    As long as it waited after the level before it (a one-level policy: its own delay); when
    that is zero, the repeat interval.
    """
    levels = policy.levels
    last = parse_duration(levels[-1].after)
    step = last - parse_duration(levels[-2].after) if len(levels) > 1 else last
    return step if step > timedelta(0) else parse_duration(policy.repeat.interval)


def _advance(policy: EscalationPolicySpec, esc: EscalationStatus, fired_level: int) -> EscalationStatus:
    """The cursor after `fired_level`: the next level, the next round, or the last level's time to answer."""
    levels = policy.levels
    if fired_level < len(levels):
        return esc.model_copy(update={"next_level": fired_level + 1, "exhausts_at": None})
    if esc.round < policy.repeat.times and esc.round_started_at is not None:
        period = parse_duration(levels[-1].after) + parse_duration(policy.repeat.interval)
        return esc.model_copy(
            update={
                "round": esc.round + 1,
                "next_level": 1,
                "round_started_at": esc.round_started_at + period,
                "exhausts_at": None,
            }
        )
    fired_at = (esc.round_started_at or datetime.min.replace(tzinfo=UTC)) + parse_duration(levels[-1].after)
    return esc.model_copy(update={"next_level": None, "exhausts_at": fired_at + answer_time(policy)})


def recipients(
    policy: EscalationPolicySpec, level: int, at: datetime, channel: Channel, directory: Directory
) -> list[str]:
    """Who a level reaches over a channel: schedules resolved to whoever is on call at `at`, teams expanded."""
    names: list[str] = []
    schedules = {s.name: s for s in policy.schedules}
    for target in policy.levels[level - 1].targets:
        if target.type == "schedule":
            schedule = schedules.get(target.name)
            names.append(on_call(schedule, at).user if schedule else f"schedule:{target.name}")
        elif target.type == "team" and channel.type in PER_PERSON:
            names.extend(directory.expand(target.name, channel.type))
        else:
            names.append(target.name)
    return list(dict.fromkeys(names))


def _key(uid: str, event: str, round_: str, level: int, index: int, target: str) -> str:
    return f"{uid}/{event}/{round_}/{level}/{index}/{target}"[:512]


def page_deliveries(
    sit: Situation, policy: EscalationPolicySpec, level: int, round_: int, tag: str
) -> list[NotificationDelivery]:
    """The outbox entries for notifying one level: per person for email, sms and phone; once otherwise."""
    out: list[NotificationDelivery] = []
    for index, channel in enumerate(policy.levels[level - 1].channels):
        people = recipients(policy, level, sit.now, channel, sit.directory)
        if channel.type in PER_PERSON:
            targets = list(people)
            if channel.type == "email" and channel.to:
                targets.append("to:" + ",".join(channel.to))
        else:
            targets = [",".join(people)[:253]]
        for target in targets:
            out.append(
                NotificationDelivery(
                    idempotency_key=_key(sit.uid, "page", tag, level, index, target),
                    event="page",
                    level=level,
                    round=round_,
                    channel=channel.type,
                    channel_index=index,
                    target=target[:253],
                    state="Simulated" if sit.rehearsal else "Pending",
                    created_at=sit.now,
                    next_attempt_at=None if sit.rehearsal else sit.now,
                    message=REHEARSAL if sit.rehearsal else None,
                )
            )
    return out


def announcements(
    sit: Situation, policy: EscalationPolicySpec, esc: EscalationStatus, milestone: str
) -> list[NotificationDelivery]:
    """One notice per channel already paged (and, for per-person channels, per person paged)."""
    wanted = ANNOUNCE[milestone]
    event = EVENT_OF[milestone]
    seen: set[tuple[str, str]] = set()
    out: list[NotificationDelivery] = []
    for page in esc.deliveries:
        if page.event != "page" or page.state == "Failed" or page.channel not in wanted:
            continue
        levels = policy.levels
        if page.level > len(levels) or page.channel_index >= len(levels[page.level - 1].channels):
            continue  # the policy was edited since: that channel no longer exists
        identity = levels[page.level - 1].channels[page.channel_index].identity()
        target = page.target if page.channel in PER_PERSON else ""
        if (identity, target) in seen:
            continue
        seen.add((identity, target))
        out.append(
            NotificationDelivery(
                idempotency_key=_key(sit.uid, milestone, "-", page.level, page.channel_index, target or "*"),
                event=event,
                level=page.level,
                round=page.round,
                channel=page.channel,
                channel_index=page.channel_index,
                target=page.target,
                state="Simulated" if sit.rehearsal else "Pending",
                created_at=sit.now,
                next_attempt_at=None if sit.rehearsal else sit.now,
                message=REHEARSAL if sit.rehearsal else None,
            )
        )
    return out


def add(esc: EscalationStatus, new: Iterable[NotificationDelivery]) -> EscalationStatus:
    """Append deliveries whose key is not in the outbox yet; past the bound the oldest settled ones go."""
    known = {d.idempotency_key for d in esc.deliveries}
    added = [d for d in new if d.idempotency_key not in known]
    if not added:
        return esc
    deliveries = [*esc.deliveries, *added]
    while len(deliveries) > MAX_DELIVERIES:
        victim = next((d for d in deliveries if d.state == "Delivered"), None) or next(
            (d for d in deliveries if d.state == "Failed"), None
        )
        if victim is None:
            break
        deliveries.remove(victim)
    return esc.model_copy(update={"deliveries": deliveries})


def _reached(sit: Situation) -> set[str]:
    status = sit.status
    reached: set[str] = set()
    if status.acknowledged_at is not None:
        reached.add("acknowledged")
    remediated = find_condition(status.conditions, "Remediated")
    if remediated is not None and remediated.status == "True":
        reached.add("remediated")
    escalated = find_condition(status.conditions, "Escalated")
    if escalated is not None and escalated.status == "True" and escalated.reason == "RemediationFailed":
        reached.add("remediation-failed")
    if status.state in ENDED_STATES:
        reached.add("resolved")
    return reached


def _describe(policy: EscalationPolicySpec, level: int, deliveries: list[NotificationDelivery]) -> str:
    spec = policy.levels[level - 1]
    name = f"level {level}" + (f" ({spec.name})" if spec.name else "")
    who = sorted({t for d in deliveries for t in d.target.split(",") if t})
    over = sorted({d.channel for d in deliveries})
    return f"{name}: {', '.join(who) or 'nobody'} via {', '.join(over)}"


def delivered_entries(delivered: Iterable[NotificationDelivery]) -> list[str]:
    """One timeline line per event and level that channels confirmed: "level 1 notified: alice via pagerduty"."""
    grouped: dict[tuple[str, int], list[NotificationDelivery]] = {}
    for delivery in delivered:
        grouped.setdefault((delivery.event, delivery.level), []).append(delivery)
    lines = []
    for (event, level), items in grouped.items():
        who = sorted({t for d in items for t in d.target.split(",") if t})
        over = sorted({d.channel for d in items})
        what = f"level {level} notified" if event == "page" else f"{event} told to level {level}"
        lines.append(f"{what}: {', '.join(who) or 'the channel'} via {', '.join(over)} (delivered)")
    return lines


def summary_of(esc: EscalationStatus) -> str:
    """The Level column: the level notified last, or why there is none."""
    if esc.stopped == "NoPolicy":
        return "none"
    if esc.stopped == "Deferred":
        return "deferred"
    if esc.level is None:
        return "pending"
    latest = [d for d in esc.deliveries if d.event == "page" and d.level == esc.level]
    if latest and all(d.state == "Simulated" for d in latest):
        return f"{esc.level} (rehearsal)"
    if latest and all(d.state == "Failed" for d in latest):
        return f"{esc.level} (failed)"
    return str(esc.level)


def notified_condition(
    status: IncidentStatus, esc: EscalationStatus, now: datetime, generation: int | None
) -> IncidentStatus:
    """Notified, from the outbox: True only once a channel confirmed a delivery; and the Level column."""
    esc = esc.model_copy(update={"summary": summary_of(esc)})
    status = status.model_copy(update={"escalation": esc})
    failed = [d for d in esc.deliveries if d.state == "Failed"]
    if esc.stopped == "NoPolicy":
        return status
    if failed:
        last = failed[-1]
        message = (
            f"{len(failed)} notification(s) failed; last: {last.channel} to {last.target or 'channel'}: {last.message}"
        )
        cond = ("False", "NotificationFailed", message[:1024])
    elif any(d.state == "Delivered" for d in esc.deliveries):
        next_at = f"; next level at {format_time(esc.next_escalation_at)}" if esc.next_escalation_at else ""
        cond = ("True", "Delivered", f"level {esc.level} notified{next_at}")
    elif esc.stopped == "Deferred":
        root = status.cascade.root if status.cascade else None
        cond = ("False", "Deferred", f"a symptom of incident {root}: its escalation pages instead")
    elif esc.deliveries and all(d.state == "Simulated" for d in esc.deliveries):
        cond = ("False", "Rehearsal", f"rehearsal: level {esc.level} would have been paged; nothing is sent")
    elif esc.deliveries:
        cond = ("False", "Sending", "notifications are being sent")
    else:
        due = f" at {format_time(esc.next_escalation_at)}" if esc.next_escalation_at else ""
        cond = ("False", "AwaitingFirstLevel", f"policy {esc.policy}: level 1 is due{due}")
    existing = find_condition(status.conditions, "Notified")
    if existing is not None and (existing.status, existing.reason, existing.message) == cond:
        return status
    conditions = set_condition(status.conditions, "Notified", cond[0], cond[1], cond[2], now=now, generation=generation)  # type: ignore[arg-type]
    return status.model_copy(update={"conditions": conditions})


def decide(sit: Situation) -> Decision:
    """The escalation status after `now`, the notices to post, and the levels fired."""
    status, now = sit.status, sit.now
    esc = status.escalation or EscalationStatus()
    notices: list[Notice] = []
    fired: list[Fired] = []
    is_open = status.state not in ENDED_STATES
    policy = sit.policy
    if policy is None or sit.policy_name is None:
        if esc.policy is None and esc.stopped != "NoPolicy" and is_open:
            esc = esc.model_copy(update={"stopped": "NoPolicy", "reason": sit.policy_reason[:1024], "summary": "none"})
            message = f"nobody is paged: {sit.policy_reason}"
            status = append_timeline(status, now, "NoEscalationPolicy", message, ACTOR)
            conditions = set_condition(
                status.conditions, "Notified", "False", "NoPolicy", message[:1024], now=now, generation=sit.generation
            )
            status = status.model_copy(update={"conditions": conditions})
            notices.append(Notice("NoEscalationPolicy", message, warning=True))
        elif status.escalation is None:
            return Decision(status, notices, fired)  # over before anyone looked: nothing to record, no write
        return Decision(status.model_copy(update={"escalation": esc}), notices, fired)
    severity = current_severity(sit.spec, status)
    if esc.policy != sit.policy_name:
        if not is_open and esc.policy is None:
            return Decision(status, notices, fired)  # over before anyone could be paged: nothing to start
        anchor = status.detected_at or now if esc.policy is None else now
        esc = esc.model_copy(
            update={
                "switches": esc.switches + (1 if esc.policy is not None else 0),
                "chosen_for": severity,
                "policy": sit.policy_name,
                "reason": sit.policy_reason[:1024],
                "policy_generation": sit.policy_generation,
                "round": 0,
                "next_level": 1,
                "round_started_at": anchor,
                "stopped": None,
                "exhausts_at": None,
            }
        )
        message = f"escalation policy {sit.policy_name}: {sit.policy_reason}"
        status = append_timeline(status, now, "EscalationPolicyChosen", message, ACTOR)
        if sit.policy_warning:
            notices.append(Notice("EscalationPolicyNotReady", sit.policy_warning[:1024], warning=True))
    elif esc.chosen_for is None or Severity(severity) < Severity(esc.chosen_for):
        esc = esc.model_copy(update={"chosen_for": severity})  # chosen again for the worse severity: kept
    acknowledged = status.acknowledged_at is not None
    levels = len(policy.levels)
    epoch = f"e{esc.switches}" if esc.switches else ""

    def fire(level: int, round_: int, tag: str, due: datetime, manual: bool = False) -> None:
        nonlocal esc, status
        new = page_deliveries(sit, policy, level, round_, tag)
        esc = add(esc, new)
        esc = esc.model_copy(update={"level": level, "level_name": policy.levels[level - 1].name})
        fired.append(Fired(level, round_, due, manual))
        # Paging is not notifying: the Notified entry comes when a channel confirms delivery.
        message = ("rehearsal: would page " if sit.rehearsal else "paging ") + _describe(policy, level, new)
        if round_:
            message += f" (repeat {round_} of {policy.repeat.times})"
        status = append_timeline(status, now, "Escalated", message, ACTOR)
        notices.append(Notice("Escalated", message))

    request = sit.spec.escalation_request
    if is_open and request is not None and request.at != esc.escalation_request_seen:
        target = min((esc.level or 0) + 1, levels)
        fire(target, esc.round, "m" + format_time(request.at) + epoch, now, manual=True)
        why = f"{request.by} asked to escalate" + (f": {request.reason}" if request.reason else "")
        status = append_timeline(status, now, "EscalationRequested", why, request.by)
        esc = esc.model_copy(update={"escalation_request_seen": request.at, "stopped": None})
        if not acknowledged:
            anchored = now - parse_duration(policy.levels[target - 1].after)
            esc = _advance(policy, esc.model_copy(update={"round_started_at": anchored}), target)
    reached = _reached(sit)
    deferred = is_open and not acknowledged and sit.deferred_to is not None
    if deferred and esc.stopped != "Deferred":
        waiting = f"level {esc.next_level} is not paged" if esc.next_level else "no level is paged"
        message = f"deferred to incident {sit.deferred_to}, of which this is a symptom: {waiting} while it is open"
        esc = esc.model_copy(update={"stopped": "Deferred", "exhausts_at": None})
        status = append_timeline(status, now, "EscalationDeferred", message, ACTOR)
        notices.append(Notice("EscalationDeferred", message))
    elif not deferred and esc.stopped == "Deferred":
        after = esc.next_level or 0
        gap = parse_duration(policy.levels[after - 2].after) if after > 1 else timedelta(0)
        esc = esc.model_copy(update={"stopped": None, "round_started_at": now - gap})
        if is_open and not acknowledged:
            message = "no longer a symptom of another incident: escalation resumes"
            status = append_timeline(status, now, "EscalationResumed", message, ACTOR)
            notices.append(Notice("EscalationResumed", message))
    paged_for_failure = False
    failed_first = "remediation-failed" in reached and esc.level is None and "remediation-failed" not in esc.announced
    if is_open and not acknowledged and not deferred and failed_first and esc.next_level is not None:
        paged_for_failure = True
        # Remediation gave up before anyone was paged: page the first level now rather than at its delay.
        level = esc.next_level
        fire(level, esc.round, f"r{esc.round}{epoch}", now)
        esc = esc.model_copy(update={"round_started_at": now - parse_duration(policy.levels[level - 1].after)})
        esc = _advance(policy, esc, level)
    for _ in range(levels * (policy.repeat.times + 1)):
        if not is_open or acknowledged or deferred:
            break
        due = _held(deadline(policy, esc), esc, sit)
        if due is None or due > now or esc.next_level is None:
            break
        level = esc.next_level
        fire(level, esc.round, f"r{esc.round}{epoch}", due)
        esc = _advance(policy, esc, level)
    if is_open and not acknowledged and esc.exhausts_at is not None and esc.exhausts_at <= now and not esc.stopped:
        waited = answer_time(policy)
        message = (
            f"every level of {esc.policy} was paged"
            + (f" {policy.repeat.times + 1} times" if policy.repeat.times else "")
            + f" and nobody acknowledged within {_duration(waited)} of the last page"
        )
        esc = esc.model_copy(update={"stopped": "Exhausted"})
        status = append_timeline(status, now, "EscalationExhausted", message, ACTOR)
        notices.append(Notice("EscalationExhausted", message, warning=True))
    if not is_open:
        esc = esc.model_copy(update={"next_level": None, "stopped": "Resolved"})
    elif acknowledged and esc.stopped != "Acknowledged":
        esc = esc.model_copy(update={"next_level": None, "stopped": "Acknowledged"})
    next_at = _held(deadline(policy, esc), esc, sit) if is_open and not acknowledged and not deferred else None
    if next_at is None and is_open and not acknowledged and esc.stopped is None:
        next_at = esc.exhausts_at
    esc = esc.model_copy(update={"next_escalation_at": next_at})
    # Milestones, each told once to whoever was paged (nothing to tell when nobody was). Once the
    # incident is over, only that is worth saying.
    new_milestones = [m for m in MILESTONES if m in reached and m not in esc.announced]
    if paged_for_failure:
        new_milestones = [m for m in new_milestones if m != "remediation-failed"]
    to_send = ["resolved"] if "resolved" in new_milestones else new_milestones
    for milestone in to_send:
        esc = add(esc, announcements(sit, policy, esc, milestone))
    if new_milestones or paged_for_failure:
        told = set(esc.announced) | set(new_milestones) | ({"remediation-failed"} if paged_for_failure else set())
        esc = esc.model_copy(update={"announced": [m for m in MILESTONES if m in told]})
    status = status.model_copy(update={"escalation": esc})
    status = notified_condition(status, esc, now, sit.generation)
    return Decision(status, notices, fired)


def _held(due: datetime | None, esc: EscalationStatus, sit: Situation) -> datetime | None:
    """A first page waits for the cascade hold (a service with dependencies: its upstream may be the root)."""
    if due is None or esc.level is not None or sit.hold_until is None:
        return due
    return max(due, sit.hold_until)


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds % 3600 == 0 and seconds:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds:
        return f"{seconds // 60}m"
    return f"{seconds}s"
