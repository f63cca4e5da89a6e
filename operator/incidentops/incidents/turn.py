"""One Incident turn: read, let each concern decide, merge their parts, write once, then act.

Every writer of an Incident (alerts, human intents, triage, remediation, escalation, notes) goes
through this shell, so there is one conflict policy, one log line and Event per notice, one
metric, and one way a write can fail:

    GET ──► for each concern, in order: observe (reads only) ──► decide (pure) ──► merge its part
        ──► PUT with the resourceVersion read (409: read again, decide again; at most ATTEMPTS
            times, with jittered backoff; past that the turn gives up, says so in the log and the
            metric, and the caller looks again later or answers 503)
        ──► notices (a log line and an Event each), bookkeeping ──► effects (actions, sends)
            whose results are carried into the next turn, which records them.

A concern writes only its part of status (incidents.parts): a decision that strays outside it is
dropped and logged, and a state change is asked of the lifecycle's state machine (a Move).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentStatus
from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.concern import Concern, Decision, Move, Notice, WatchedConcern, merge
from incidentops.kube import AsyncKube, Conflict, KubeError, NotFound, Obj, Unavailable
from incidentops.logs import Throttle
from incidentops.metrics import STATUS_WRITES

log = logging.getLogger(__name__)
Key = tuple[str, str]
ATTEMPTS = 10
BACKOFF = 0.02  # seconds; doubles per conflict, with jitter, up to MAX_BACKOFF
MAX_BACKOFF = 0.5
GAVE_UP_RETRY = timedelta(seconds=1)
EFFECT_RETRY = timedelta(seconds=5)  # a concern whose effects or bookkeeping failed looks again then
# (status, move, now, generation) -> status moved, or unchanged when the state machine refuses it
Mover = Callable[[IncidentStatus, Move, datetime, int | None], IncidentStatus]


class KeptChanging(Unavailable):
    """A turn hit its bound (every write lost a race): the caller answers 503 or looks again later."""


@dataclass
class Outcome:
    """What a turn came to."""

    written: Obj | None = None  # the Incident after the turn (the write's answer, or what was read)
    gone: bool = False  # the Incident does not exist
    gave_up: bool = False  # it kept changing: the bound was hit
    again: bool = False
    again_for: set[str] = field(default_factory=set)  # the concerns that want another turn at once
    next_at: dict[str, datetime | None] = field(default_factory=dict)
    carried: dict[str, Any] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)


@dataclass
class _Held:
    """One incident's turns in this process: one at a time, each starting from the last one's write."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    fresh: Obj | None = None


@dataclass
class _Written:
    obj: Obj | None  # None: the Incident is gone
    decided: list[tuple[Concern, Decision]]
    wrote: bool = False  # obj is the write's answer (not merely what was read)


def _never_moves(status: IncidentStatus, move: Move, now: datetime, generation: int | None) -> IncidentStatus:
    return status


class Turns:
    """The shell. One instance per process; any number of turns run at once (on different incidents)."""

    def __init__(
        self,
        kube: AsyncKube,
        clock: Callable[[], datetime],
        mover: Mover = _never_moves,
        *,
        attempts: int = ATTEMPTS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.kube = kube
        self.clock = clock
        self.mover = mover
        self.attempts = attempts
        self._sleep = sleep
        self._trespass_told: set[tuple[str, str]] = set()
        self._broken_lines = Throttle()
        self._held: dict[Key, _Held] = {}

    async def run(
        self,
        key: Key,
        concerns: Sequence[Concern],
        *,
        obj: Obj | None = None,
        carried: Mapping[str, Any] | None = None,
        due: Collection[str] | None = None,
    ) -> Outcome:
        """One turn of `concerns` (in order) on the Incident `key`; `obj`, when given, saves the first read.

        With `due`, only the concerns named there (or with a result carried) are sure to run; each other
        watched concern joins when the status as it stands so far in the turn gives it work now (triage's
        choice waking remediation, say), so a first look is one write rather than one per concern.

        Turns on one incident in this process take turns: each reads, decides and writes while the
        others wait, and a waiter starts from what the one before it wrote. So the alert path and the
        concerns never lose races to each other, only to other processes (and humans). Effects run
        after the incident is let go: a slow page never holds up the next alert's write.
        """
        namespace, name = key
        carried = dict(carried or {})
        held = self._held.setdefault(key, _Held())
        held.users += 1
        try:
            async with held.lock:
                if held.fresh is not None:
                    obj = held.fresh  # written while this turn waited: newer than what its caller had
                written = await self._decide_and_write(key, obj, concerns, carried, due)
                if written is not None and written.wrote:
                    held.fresh = written.obj  # only a write's answer is known to be the newest
        finally:
            held.users -= 1
            if held.users == 0:
                del self._held[key]
        if written is None:
            for concern in concerns:
                STATUS_WRITES.labels(concern.name, "gave_up").inc()
            names = ", ".join(c.name for c in concerns)
            log.warning(
                "incident %s/%s kept changing: %d writes of %s lost a race in a row; looking again in %s",
                namespace, name, self.attempts, names, GAVE_UP_RETRY,
            )  # fmt: skip
            retry = self.clock() + GAVE_UP_RETRY
            return Outcome(gave_up=True, again=False, next_at={c.name: retry for c in concerns}, carried=carried)
        if written.obj is None:
            return Outcome(gone=True)
        return await self._after(written.obj, written.decided)

    async def _decide_and_write(
        self,
        key: Key,
        obj: Obj | None,
        concerns: Sequence[Concern],
        carried: dict[str, Any],
        due: Collection[str] | None,
    ) -> _Written | None:
        """Read (unless given), decide, write; again on a lost race. None when the bound was hit."""
        for attempt in range(self.attempts):
            if obj is None:
                try:
                    obj = await self.kube.get(INCIDENT, *key)
                except NotFound:
                    return _Written(None, [])
            written = await self._attempt(obj, concerns, carried, due)
            if written is not None:
                return written
            obj = None  # lost a race: read again, decide again
            delay = min(MAX_BACKOFF, BACKOFF * 2**attempt)
            await self._sleep(random.uniform(delay / 2, delay))
        return None

    async def _attempt(
        self, obj: Obj, concerns: Sequence[Concern], carried: dict[str, Any], due: Collection[str] | None
    ) -> _Written | None:
        """Decide and write once; None when the write lost a race."""
        meta = obj["metadata"]
        spec = IncidentSpec.model_validate(obj.get("spec") or {})
        base = IncidentStatus.model_validate(obj.get("status") or {})
        generation = meta.get("generation")
        now = self.clock()
        current = base
        decided: list[tuple[Concern, Decision]] = []
        async with contextlib.AsyncExitStack() as held:
            for concern in concerns:
                if due is not None and not self._joins(concern, obj, current, base, carried, due, now):
                    continue
                lock = concern.serial(obj, current)
                if lock is not None:
                    await held.enter_async_context(lock)
                try:
                    observed = await concern.observe(obj, current, now, carried.get(concern.name))
                    decision = concern.decide(obj, spec, current, observed, now)
                except KubeError:
                    raise  # the apiserver: the caller's policy (503, looking again)
                except Exception:  # a bug in one concern never stops the others (a page, above all)
                    self._broken(obj, concern)
                    continue
                if decision is None:
                    continue
                merged = merge(current, decision.status, concern.owns)
                self._trespassed(concern, merged.trespassed)
                current = merged.status
                for move in decision.moves:
                    current = self.mover(current, move, now, generation)
                decided.append((concern, decision))
            if current.wire() == base.wire() and (obj.get("status") or not decided):
                for concern, _ in decided:
                    STATUS_WRITES.labels(concern.name, "unchanged").inc()
                return _Written(obj, decided)
            try:
                written = await self.kube.replace_status(INCIDENT, {**obj, "status": current.wire()})
            except (Conflict, NotFound):
                for concern, _ in decided:
                    STATUS_WRITES.labels(concern.name, "conflict").inc()
                return None
            for concern, _ in decided:
                STATUS_WRITES.labels(concern.name, "ok").inc()
            return _Written(written, decided, wrote=True)

    async def _after(self, written: Obj, decided: list[tuple[Concern, Decision]]) -> Outcome:
        """What follows a write: notices, bookkeeping, then effects, whose results the next turn records."""
        outcome = Outcome(written=written)
        for concern, decision in decided:
            self._tell(written, decision.notices)
            outcome.decisions[concern.name] = decision
            outcome.next_at[concern.name] = decision.next_at
            if decision.written is not None:
                try:
                    await decision.written(written)
                except Exception as error:  # one concern's bookkeeping never stops another's effects
                    self._failed(written, concern, "bookkeeping", error, outcome)
        for concern, decision in decided:
            if decision.effects:
                try:
                    result = await concern.act(written, decision)
                except Exception as error:  # nor does one concern's failed effect
                    self._failed(written, concern, "effects", error, outcome)
                    continue  # what it wrote before acting says what is in doubt; its next turn checks
                if result is not None:  # something to record: the next turn does
                    outcome.carried[concern.name] = result
                    outcome.again_for.add(concern.name)
            if decision.again:
                outcome.again_for.add(concern.name)
        outcome.again = bool(outcome.again_for)
        return outcome

    def _failed(self, obj: Obj, concern: Concern, what: str, error: Exception, outcome: Outcome) -> None:
        meta = obj["metadata"]
        known = isinstance(error, KubeError)
        log.warning(
            "incident %s/%s: the %s concern's %s failed (%s); it looks again in %s",
            meta["namespace"], meta["name"], concern.name, what,
            error if known else type(error).__name__, EFFECT_RETRY, exc_info=not known,
        )  # fmt: skip
        retry = self.clock() + EFFECT_RETRY
        planned = outcome.next_at.get(concern.name)
        outcome.next_at[concern.name] = retry if planned is None else min(planned, retry)

    @staticmethod
    def _joins(
        concern: Concern,
        obj: Obj,
        current: IncidentStatus,
        base: IncidentStatus,
        carried: Mapping[str, Any],
        due: Collection[str],
        now: datetime,
    ) -> bool:
        if concern.name in due or concern.name in carried:
            return True
        if not isinstance(concern, WatchedConcern) or current is base:
            return False  # nothing changed in this turn that could give it work
        when = concern.wake({**obj, "status": current.wire()}, now)
        return when is not None and when <= now

    def _tell(self, obj: Obj, notices: Sequence[Notice]) -> None:
        """The one path for what humans should see: a log line and an Event (posted in the background)."""
        meta = obj["metadata"]
        for notice in notices:
            level = logging.WARNING if notice.warning else logging.INFO
            log.log(level, "incident %s/%s: %s", meta["namespace"], meta["name"], notice.message)
            kind = "Warning" if notice.warning else "Normal"
            self.kube.post_event_soon(obj, notice.reason, notice.message, type_=kind)

    def _broken(self, obj: Obj, concern: Concern) -> None:
        meta = obj["metadata"]
        if self._broken_lines.log(
            log, logging.ERROR, concern.name,
            "incident %s/%s: the %s concern failed to decide (a bug); the other concerns go on without it",
            meta.get("namespace"), meta.get("name"), concern.name,
        ):  # fmt: skip
            log.error("the failure above, for the bug report", exc_info=True)
        STATUS_WRITES.labels(concern.name, "error").inc()

    def _trespassed(self, concern: Concern, fields: Sequence[str]) -> None:
        for name in fields:
            if (concern.name, name) not in self._trespass_told:
                self._trespass_told.add((concern.name, name))
                log.error(
                    "the %s concern changed %s, which it does not own: the change was dropped", concern.name, name
                )
