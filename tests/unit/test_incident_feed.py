"""The Incident feed: a paged LIST, a watch resumed where it was, a new listing when it is too far behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from incidentops.incidents.feed import IncidentFeed
from incidentops.kube import Gone, Page, Unavailable


def incident(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "uid": f"uid-{name}", "resourceVersion": version}}


class Recorder:
    """Stands in for the scheduler: what the feed told it, in order."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str]] = []
        self.listed_calls = 0

    def observe(self, body: Mapping[str, Any]) -> None:
        self.told.append(("seen", body["metadata"]["name"]))

    def forget(self, namespace: str, name: str, uid: str) -> None:
        self.told.append(("gone", f"{name}/{uid}"))

    def listed(self) -> int:
        self.listed_calls += 1
        return 0

    def following(self, namespace: str | None, is_live: bool) -> None:
        self.told.append(("live" if is_live else "not live", str(namespace)))


class ScriptedKube:
    """Listings and watches from a script; each watch records the resourceVersion it was asked to start at."""

    def __init__(self, listings: list[list[Page]], watches: list[list[dict[str, Any] | Exception]]) -> None:
        self.listings = listings
        self.watches = watches
        self.watched_from: list[str] = []
        self.done = asyncio.Event()

    async def pages(self, kind: Any, namespace: str | None, limit: int = 500) -> AsyncIterator[Page]:
        for page in self.listings.pop(0):
            yield page

    async def watch(self, kind: Any, namespace: str | None, version: str, seconds: int = 300) -> AsyncIterator[Any]:
        self.watched_from.append(version)
        if not self.watches:
            self.done.set()
            await asyncio.Event().wait()  # a quiet watch, until cancelled
        for item in self.watches.pop(0):
            if isinstance(item, Exception):
                raise item
            yield item


async def follow(kube: ScriptedKube, recorder: Recorder) -> asyncio.Event:
    listed = asyncio.Event()
    feed = IncidentFeed(kube, recorder)  # type: ignore[arg-type]
    task = asyncio.create_task(feed.run(listed))
    await asyncio.wait_for(kube.done.wait(), timeout=10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return listed


def test_paged_listing_then_a_watch_resumed_where_it_was_then_a_new_listing_after_410() -> None:
    kube = ScriptedKube(
        listings=[
            [Page([incident("a", "5")], "next", "10"), Page([incident("b", "6")], None, "10")],
            [Page([incident("b", "12")], None, "20")],  # a was deleted while the watch was behind
        ],
        watches=[
            [{"type": "MODIFIED", "object": incident("b", "11")}, Unavailable("connection reset")],
            [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}}, Gone("too old")],
        ],
    )
    recorder = Recorder()
    listed = asyncio.run(follow(kube, recorder))
    assert listed.is_set() and recorder.listed_calls == 1
    assert kube.watched_from == ["10", "11", "20"]  # from the listing, from the last event (resumed), relisted
    assert [t for t in recorder.told if t[0] in ("seen", "gone")] == [
        ("seen", "a"), ("seen", "b"), ("seen", "b"), ("seen", "b"), ("gone", "a/uid-a")
    ]  # fmt: skip
    # the episode index is trusted only while the watch is live: not between a break and the resume
    assert [t[0] for t in recorder.told if "live" in t[0]] == ["live", "not live", "live", "not live", "live"]


def test_a_deletion_from_the_watch_is_forgotten_with_its_uid() -> None:
    kube = ScriptedKube(
        listings=[[Page([incident("a", "5")], None, "10")]],
        watches=[[{"type": "DELETED", "object": incident("a", "11")}]],  # then the server ends the watch
    )
    recorder = Recorder()
    asyncio.run(follow(kube, recorder))
    assert [t for t in recorder.told if t[0] in ("seen", "gone")] == [("seen", "a"), ("gone", "a/uid-a")]
    assert kube.watched_from == ["10", "11"]


class BrokenFor(Recorder):
    """A scheduler with a bug for one incident."""

    def observe(self, body: Mapping[str, Any]) -> None:
        if body["metadata"]["name"] == "bad":
            raise KeyError("a bug")
        super().observe(body)


def test_a_bug_for_one_incident_never_stops_the_feed_for_the_others() -> None:
    kube = ScriptedKube(
        listings=[[Page([incident("bad", "5"), incident("a", "6")], None, "10")]],
        watches=[
            [{"type": "MODIFIED", "object": incident("bad", "11")}, {"type": "ADDED", "object": incident("b", "12")}]
        ],
    )
    recorder = BrokenFor()
    listed = asyncio.run(follow(kube, recorder))
    assert listed.is_set() and [t for t in recorder.told if t[0] == "seen"] == [("seen", "a"), ("seen", "b")]
    assert kube.watched_from == ["10", "12"]


def test_an_incident_deleted_and_created_again_under_its_name_is_forgotten_first() -> None:
    again = incident("a", "12")
    again["metadata"]["uid"] = "uid-a-again"
    kube = ScriptedKube(
        listings=[[Page([incident("a", "5")], None, "10")], [Page([again], None, "20")]],
        watches=[[Gone("too old")]],
    )
    recorder = Recorder()
    asyncio.run(follow(kube, recorder))
    assert [t for t in recorder.told if t[0] in ("seen", "gone")] == [("seen", "a"), ("gone", "a/uid-a"), ("seen", "a")]
