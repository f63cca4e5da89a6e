"""The deadline queue: due keys run, one turn per key at a time, wake-ups during a turn run it once more."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from datetime import UTC, datetime, timedelta

from incidentops.deadlines import DeadlineQueue


def now() -> datetime:
    return datetime.now(UTC)


async def test_keys_run_when_due_in_deadline_order_and_reschedule_themselves() -> None:
    ran: list[Hashable] = []
    done = asyncio.Event()

    async def work(key: Hashable) -> datetime | None:
        ran.append(key)
        if key == "again" and ran.count("again") < 2:
            return now()  # the turn asks to be woken again
        if len(ran) == 4:
            done.set()
        return None

    queue = DeadlineQueue(work, now)
    queue.schedule("late", now() + timedelta(milliseconds=200))
    queue.schedule("early")
    queue.schedule("again", now() + timedelta(milliseconds=50))
    queue.schedule("late", now() + timedelta(hours=1))  # a later deadline never delays an earlier one
    runner = asyncio.create_task(queue.run())
    await asyncio.wait_for(done.wait(), timeout=5)
    runner.cancel()
    await queue.close()
    assert ran == ["early", "again", "again", "late"]


async def test_a_wake_up_during_a_turn_runs_it_once_more_never_concurrently() -> None:
    active, most, calls = 0, 0, 0
    release, started, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def work(key: Hashable) -> datetime | None:
        nonlocal active, most, calls
        calls += 1
        started.set()
        active += 1
        most = max(most, active)
        if calls == 1:
            await release.wait()
        active -= 1
        if calls == 2:
            finished.set()
        return None

    queue = DeadlineQueue(work, now)
    runner = asyncio.create_task(queue.run())
    queue.schedule("incident")
    await asyncio.wait_for(started.wait(), timeout=5)
    for _ in range(5):  # the watch reports five changes while the first turn runs
        queue.schedule("incident")
    release.set()
    await asyncio.wait_for(finished.wait(), timeout=5)
    await asyncio.sleep(0.05)
    runner.cancel()
    await queue.close()
    assert (calls, most) == (2, 1)


async def test_a_failing_turn_is_retried_later_and_does_not_stop_the_others() -> None:
    seen: list[Hashable] = []
    ok = asyncio.Event()

    async def work(key: Hashable) -> datetime | None:
        seen.append(key)
        if key == "broken":
            raise RuntimeError("boom")
        ok.set()
        return None

    queue = DeadlineQueue(work, now)
    runner = asyncio.create_task(queue.run())
    queue.schedule("broken")
    queue.schedule("fine")
    await asyncio.wait_for(ok.wait(), timeout=5)
    assert queue.pending() == 1  # "broken" is queued again for later
    runner.cancel()
    await queue.close()
