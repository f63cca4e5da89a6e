"""One deadline queue per process: wake the responder for an incident when its next deadline falls due.

Deadlines themselves live in status (a step's start and timeout, a verification's window); the
queue only remembers when to look again, so it is rebuilt from a LIST at start and fed by the
watch. One turn per incident at a time; a wake-up that arrives during a turn runs it once more
afterwards, so nothing the watch reported is missed and nothing runs twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime, timedelta

log = logging.getLogger(__name__)
Work = Callable[[Hashable], Awaitable[datetime | None]]
RETRY_AFTER_ERROR = timedelta(seconds=5)


class DeadlineQueue:
    def __init__(self, work: Work, clock: Callable[[], datetime], concurrency: int = 4, name: str = "incident") -> None:
        self._work = work
        self._name = name
        self._clock = clock
        self._heap: list[tuple[datetime, int, Hashable]] = []
        self._due: dict[Hashable, datetime] = {}
        self._running: set[Hashable] = set()
        self._again: set[Hashable] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._seq = 0
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._runner: asyncio.Task[None] | None = None

    def schedule(self, key: Hashable, at: datetime | None = None) -> None:
        """Look at `key` at `at` (now when None); an earlier deadline already queued wins."""
        at = at or self._clock()
        if key in self._running and at <= self._clock():
            self._again.add(key)
            return
        if key in self._due and self._due[key] <= at:
            return
        self._due[key] = at
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, key))
        self._wake.set()

    def forget(self, key: Hashable) -> None:
        self._due.pop(key, None)
        self._again.discard(key)

    def pending(self) -> int:
        return len(self._due)

    def due_keys(self) -> list[Hashable]:
        return list(self._due)

    async def run(self) -> None:
        """Until cancelled: start each key's turn when it falls due."""
        while True:
            self._wake.clear()
            now = self._clock()
            while self._heap and self._heap[0][0] <= now:
                at, _, key = heapq.heappop(self._heap)
                if self._due.get(key) != at:
                    continue  # superseded by an earlier deadline, or forgotten
                del self._due[key]
                if key in self._running:
                    self._again.add(key)
                    continue
                self._running.add(key)
                task = asyncio.create_task(self._turn(key))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            delay = (self._heap[0][0] - now).total_seconds() if self._heap else 3600.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, delay))

    async def _turn(self, key: Hashable) -> None:
        nxt: datetime | None = None
        try:
            async with self._slots:
                nxt = await self._work(key)
        except asyncio.CancelledError:
            raise
        except Exception:  # one incident's failure must not stop the others: try it again later
            log.exception("turn for %s failed; trying again in %s", _shown(key), RETRY_AFTER_ERROR)
            nxt = self._clock() + RETRY_AFTER_ERROR
        finally:
            self._running.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.schedule(key)
        elif nxt is not None:
            self.schedule(key, nxt)

    def start(self) -> None:
        """Run in the background until stop()."""
        self._runner = asyncio.create_task(self.run())

    async def stop(self) -> None:
        """Stop waking keys and cancel the turns under way."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        await self.close()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _shown(key: Hashable) -> str:
    """("incident", (namespace, name)) as "incident namespace/name"."""
    if isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], tuple):
        return f"{key[0]} " + "/".join(str(part) for part in key[1])
    return "/".join(str(part) for part in key) if isinstance(key, tuple) else str(key)


class Lane:
    """One user's keys on the process's deadline queue (incident concerns, rule evaluations, rechecks)."""

    def __init__(self, queue: DeadlineQueue, name: str) -> None:
        self._queue = queue
        self.name = name

    def schedule(self, key: Hashable, at: datetime | None = None) -> None:
        self._queue.schedule((self.name, key), at)

    def forget(self, key: Hashable) -> None:
        self._queue.forget((self.name, key))

    def pending(self) -> int:
        return sum(1 for k in self._queue.due_keys() if isinstance(k, tuple) and k and k[0] == self.name)


class Deadlines:
    """The one deadline queue of a process: every concern wakes through it, each on a lane of its own.

    One heap, one runner, one pool of turn slots: a thousand rules and ten thousand incidents are
    one queue, and a turn of one key never runs twice at once, whatever lane scheduled it.
    """

    def __init__(self, clock: Callable[[], datetime], concurrency: int = 16) -> None:
        self._work: dict[str, Work] = {}
        self.queue = DeadlineQueue(self._dispatch, clock, concurrency, name="deadline")

    def lane(self, name: str, work: Work) -> Lane:
        if name in self._work:
            raise ValueError(f"lane {name} exists already")
        self._work[name] = work
        return Lane(self.queue, name)

    async def _dispatch(self, key: Hashable) -> datetime | None:
        assert isinstance(key, tuple)
        lane, inner = key
        return await self._work[str(lane)](inner)

    def start(self) -> None:
        self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()
