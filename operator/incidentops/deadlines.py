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
            log.exception("%s turn for %s failed; trying again in %s", self._name, _shown(key), RETRY_AFTER_ERROR)
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
    """(namespace, name) as namespace/name."""
    return "/".join(str(part) for part in key) if isinstance(key, tuple) else str(key)
