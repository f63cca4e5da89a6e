"""When each concern of each Incident looks next: woken by what it reads changing, or by its own deadline.

Fed by the feed (a paged LIST at start, then the watch): for every Incident, each concern says from the
object alone, cheaply, whether and when it has work (`wake`). The incident's key goes on the
process's deadline queue at the earliest of those times; when it falls due, one turn runs every
concern that is due, in the registry's order, and each decision says when that concern wants to
look again. A concern that acted gets another turn at once, to record what happened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from incidentops.concern import WatchedConcern
from incidentops.deadlines import Deadlines, Lane
from incidentops.incidents.turn import Key, Turns
from incidentops.kube import KubeError, Unavailable
from incidentops.logs import waiting_level

log = logging.getLogger(__name__)
MAX_CHAINED = 40  # turns in a row for one incident (act, record, act...) before it waits for its next wake-up
APISERVER_AWAY = timedelta(seconds=5)


class Watcher(Protocol):
    """An index fed by every Incident the scheduler sees (the ingester's episodes, say)."""

    def seen(self, body: Mapping[str, Any]) -> None: ...

    def gone(self, namespace: str, name: str) -> None: ...

    def live(self, namespace: str | None, is_live: bool) -> None:
        """Whether the feed follows the namespace (None: the cluster) right now: listed, and not broken since."""


class IncidentScheduler:
    def __init__(
        self,
        turns: Turns,
        concerns: Sequence[WatchedConcern],
        deadlines: Deadlines,
        clock: Callable[[], datetime],
        watchers: Sequence[Watcher] = (),
    ) -> None:
        self.watchers = list(watchers)
        self.turns = turns
        self.concerns = list(concerns)
        self.clock = clock
        self.lane: Lane = deadlines.lane("incident", self._work)
        self._due: dict[Key, dict[str, datetime]] = {}
        # results of effects not yet recorded (the recording turn failed): kept until a turn records them,
        # so an apiserver blip never turns a sent page into one sent again when its claim expires
        self._carried: dict[Key, dict[str, Any]] = {}
        for concern in self.concerns:
            concern.bind(self.wake, self.deliver)

    def listed(self) -> int:
        """The start-up listing has gone through `observe`. How many incidents have work."""
        return len(self._due)

    def following(self, namespace: str | None, is_live: bool) -> None:
        for watcher in self.watchers:
            watcher.live(namespace, is_live)

    def observe(self, body: Mapping[str, Any]) -> None:
        """An Incident as the watch (or the start-up LIST) saw it."""
        meta = body.get("metadata") or {}
        key: Key = (str(meta.get("namespace")), str(meta.get("name")))
        now = self.clock()
        due = self._due.get(key, {})
        for watcher in self.watchers:
            watcher.seen(body)
        for concern in self.concerns:
            concern.seen(body)
            when = concern.wake(body, now)
            if when is not None and (concern.name not in due or when < due[concern.name]):
                due[concern.name] = when
        if due:
            self._due[key] = due
            self.lane.schedule(key, min(due.values()))

    def forget(self, namespace: str, name: str, uid: str) -> None:
        key: Key = (namespace, name)
        self._due.pop(key, None)
        self._carried.pop(key, None)
        self.lane.forget(key)
        for watcher in self.watchers:
            watcher.gone(namespace, name)
        for concern in self.concerns:
            concern.gone(namespace, name, uid)

    def concern(self, name: str) -> WatchedConcern | None:
        return next((c for c in self.concerns if c.name == name), None)

    def wake(self, key: Key, concern: str) -> None:
        """A change outside the Incident that `concern` reads (a new EscalationPolicy, say): it looks now."""
        now = self.clock()
        due = self._due.setdefault(key, {})
        due[concern] = min(due.get(concern, now), now)
        self.lane.schedule(key, now)

    def deliver(self, key: Key, concern: str, result: Any) -> None:
        """A result of `concern`'s background work on `key`: its next turn (now) records it."""
        self._carried.setdefault(key, {})[concern] = result
        self.wake(key, concern)

    def _keep(self, key: Key, carried: dict[str, Any]) -> None:
        if carried:  # a result delivered while the turn ran is newer than the turn's own
            self._carried[key] = {**carried, **self._carried.get(key, {})}

    async def _work(self, raw: Hashable) -> datetime | None:
        key: Key = raw  # type: ignore[assignment]
        carried: dict[str, Any] = self._carried.pop(key, {})
        for _ in range(MAX_CHAINED):
            now = self.clock()
            due = self._due.get(key, {})
            running = [c for c in self.concerns if c.name in carried or (c.name in due and due[c.name] <= now)]
            if not running:
                break
            for concern in running:
                due.pop(concern.name, None)
            try:
                names = {c.name for c in running}
                outcome = await self.turns.run(key, self.concerns, carried=carried, due=names)
            except Unavailable as error:
                log.log(waiting_level(error), "incident %s/%s waits for the apiserver: %s", key[0], key[1], error)
                self._keep(key, carried)
                for concern in running:
                    due[concern.name] = now + APISERVER_AWAY
                self._due[key] = due
                return now + APISERVER_AWAY
            except KubeError as error:
                log.warning("incident %s/%s: %s; looking again in %s", key[0], key[1], error, APISERVER_AWAY)
                self._keep(key, carried)
                for concern in running:
                    due[concern.name] = now + APISERVER_AWAY
                self._due[key] = due
                return now + APISERVER_AWAY
            if outcome.gone:
                self._due.pop(key, None)
                return None  # its results die with it: nothing is left to record them on
            for name, at in outcome.next_at.items():
                if at is not None and (name not in due or at < due[name]):
                    due[name] = at  # a wake-up the watch brought meanwhile, if earlier, stands
            for name in outcome.again_for:
                due[name] = now
            self._due[key] = due
            carried = outcome.carried
            if not outcome.again:
                self._keep(key, carried)  # a turn that gave up hands back what it was to record
                break
            if outcome.written is not None:
                self.observe(outcome.written)  # what our own write changed may concern another concern
        else:
            log.warning("incident %s/%s kept asking for turns (%d in a row); looking again later", *key, MAX_CHAINED)
            self._keep(key, carried)
        due = self._due.get(key, {})
        if not due:
            self._due.pop(key, None)
            return None
        return min(due.values())
