"""What every concern of an Incident is: the part of status it owns, its decision, what it tells humans.

The shell that runs concerns (incidentops.incidents) and the concerns themselves (lifecycle,
alerts, triage, remediation, escalation) share these types and nothing else; they are pure.

Each concern writes only its part: top-level status fields and condition types it owns, plus
timeline entries. A concern that wants the incident's state moved asks for it (a Move) and the
lifecycle's state machine applies it, so every state change obeys the same rules. Fields that no
concern here knows (a newer operator's) are never touched: they ride along in the models' extras.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from incidentops.api.v1alpha1.conditions import Condition
from incidentops.api.v1alpha1.incident import MAX_TIMELINE, IncidentSpec, IncidentState, IncidentStatus, TimelineEntry

Obj = dict[str, Any]


@dataclass(frozen=True)
class Notice:
    """A log line and a Kubernetes Event (a warning Event when `warning`)."""

    reason: str
    message: str
    warning: bool = False


# The fields the lifecycle (alerts, severity, states and their times, human intents) keeps.
LIFECYCLE_FIELDS = frozenset(
    {
        "state",
        "severity",
        "severity_source",
        "spec_severity",
        "severity_set_seen",
        "state_request_seen",
        "notes_seen",
        "observed_generation",
        "alerts",
        "started_at",
        "detected_at",
        "acknowledged_at",
        "acknowledged_by",
        "identified_at",
        "mitigated_at",
        "resolved_at",
        "resolved_by",
        "closed_at",
        "assignee",
        "metrics",
        "recurred_as",
    }
)


@dataclass(frozen=True)
class Ownership:
    """What one concern may write: top-level status fields (python names) and condition types."""

    fields: frozenset[str] = frozenset()
    conditions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Move:
    """A concern asks the lifecycle to move the incident to `target` (applied only where the machine allows)."""

    target: IncidentState
    reason: str
    actor: str = "incidentops"
    only_from: frozenset[IncidentState] | None = None  # None: from any state the machine allows


@dataclass
class Merged:
    status: IncidentStatus
    trespassed: list[str] = field(default_factory=list)  # fields a concern changed outside its part (dropped)


def _conditions(base: list[Condition], decided: list[Condition], owned: frozenset[str]) -> list[Condition]:
    """Base's conditions, with those of owned types taken from the decision (added, changed or removed)."""
    mine = {c.type: c for c in decided if c.type in owned}
    out = [mine.pop(c.type) if c.type in mine else c for c in base if c.type not in owned or c.type in mine]
    return out + list(mine.values())


def merge(base: IncidentStatus, decided: IncidentStatus, owns: Ownership) -> Merged:
    """`base` with the concern's part taken from `decided`; whatever else it changed is dropped and named."""
    update: dict[str, object] = {}
    trespassed: list[str] = []
    for name in IncidentStatus.model_fields:
        before, after = getattr(base, name), getattr(decided, name)
        if before == after or name in ("conditions", "timeline"):
            continue
        if name in owns.fields:
            update[name] = after
        else:
            trespassed.append(name)
    update["timeline"] = decided.timeline  # entries are every concern's to add (a turn runs them in order)
    update["conditions"] = _conditions(base.conditions, decided.conditions, owns.conditions)
    was, now = {c.type: c for c in base.conditions}, {c.type: c for c in decided.conditions}
    changed = {t for t in was.keys() | now.keys() if was.get(t) != now.get(t)}
    trespassed += sorted(f"condition {t}" for t in changed - owns.conditions)
    merged = base.model_copy(update=update)
    for key, value in (decided.model_extra or {}).items():  # a newer field the concern carried over unchanged
        if (base.model_extra or {}).get(key) != value:
            trespassed.append(key)
    return Merged(merged, trespassed)


def append_timeline(
    status: IncidentStatus, at: datetime, type_: str, message: str, actor: str | None = None
) -> IncidentStatus:
    """Add an entry; past the bound the oldest go, but the first (how it began) always stays."""
    entries = [*status.timeline, TimelineEntry(at=at, type=type_, message=message[:2048], actor=actor)]
    if len(entries) > MAX_TIMELINE:
        entries = [entries[0], *entries[-(MAX_TIMELINE - 1) :]]
    return status.model_copy(update={"timeline": entries})


def changed_fields(before: IncidentStatus, after: IncidentStatus) -> Iterable[str]:
    return (name for name in IncidentStatus.model_fields if getattr(before, name) != getattr(after, name))


@dataclass
class Decision:
    """What one concern decided in a turn."""

    status: IncidentStatus  # the whole status as the concern would have it; only its part is kept
    notices: list[Notice] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    effects: list[Any] = field(default_factory=list)  # for the concern's act(), after the write
    next_at: datetime | None = None  # when it wants its next look (None: when something it reads changes)
    again: bool = False  # another turn at once (a result to record, a next step to take)
    written: Callable[[Obj], Awaitable[None]] | None = None  # bookkeeping once the write landed


class Concern:
    """One part of an Incident's handling. Subclasses say what they own and how they decide."""

    name = "concern"
    owns = Ownership()

    async def observe(self, obj: Obj, status: IncidentStatus, now: datetime, carried: Any) -> Any:
        """What the decision needs from outside status (reads only; no writes, no actions)."""
        return carried

    def decide(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Any, now: datetime
    ) -> Decision | None:
        """The concern's next status and effects; None when there is nothing to do. Pure."""
        raise NotImplementedError

    async def act(self, written: Obj, decision: Decision) -> Any:
        """Carry out the decision's effects after the write; the result is carried into the next turn."""
        return None

    def serial(self, obj: Obj, status: IncidentStatus) -> asyncio.Lock | None:
        """A lock held from observing to the write, when decisions must not interleave (a shared budget)."""
        return None


class Background:
    """Work a concern does off its turn (seconds of it: a model's investigation, writing a document).

    The turn that starts it has written a claim; the result goes to the scheduler (`deliver`), whose next
    turn of the concern records it. `live` says which incidents have such work running in this process,
    so the process never takes over its own claim while the work waits for a slot.
    """

    def __init__(self, concern: str) -> None:
        self.concern = concern
        self.live: set[tuple[str, str]] = set()
        self._deliver: Callable[[tuple[str, str], str, Any], None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def bind(self, deliver: Callable[[tuple[str, str], str, Any], None]) -> None:
        self._deliver = deliver

    def start(self, obj: Obj, work: Callable[[], Awaitable[Any]]) -> bool:
        """Run `work` for the incident; False when there is nobody to deliver the result to (not bound)."""
        deliver = self._deliver
        if deliver is None:
            return False
        meta = obj["metadata"]
        key = (str(meta["namespace"]), str(meta["name"]))

        async def run() -> None:
            self.live.add(key)
            try:
                result = await work()
            finally:
                self.live.discard(key)
            deliver(key, self.concern, result)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class WatchedConcern(Concern):
    """A concern the scheduler wakes: it reads the watched object to say when it has work."""

    def wake(self, body: Mapping[str, Any], now: datetime) -> datetime | None:
        """When this concern has work on the Incident as the watch delivered it; None: none. No API call."""
        return None

    def seen(self, body: Mapping[str, Any]) -> None:
        """Every version of every Incident passes here first (a concern's own index: the run ledger)."""

    def gone(self, namespace: str, name: str, uid: str) -> None:
        """The Incident was deleted."""

    def bind(
        self,
        wake: Callable[[tuple[str, str], str], None],
        deliver: Callable[[tuple[str, str], str, Any], None],
    ) -> None:
        """The scheduler's hands, for a concern that needs them: `wake` another incident's concern now;
        `deliver` a result of work done in the background (a long call that must not hold the incident's
        turn), which the concern's next turn records, as it would an effect's."""
