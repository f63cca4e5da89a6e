"""The ingester's episode index: what the watch saw of each correlation key, so a new key costs no LIST."""

from __future__ import annotations

from typing import Any

from incidentops.ingest.correlation import CORRELATION_KEY_ANNOTATION, EPISODE_LABEL
from incidentops.ingest.episodes import EpisodeIndex


def incident(name: str, episode: int, key: str = "svc/ns", namespace: str = "ns") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {EPISODE_LABEL: str(episode)},
            "annotations": {CORRELATION_KEY_ANNOTATION: key},
        }
    }


def test_nothing_is_trusted_unless_the_namespace_is_watched_and_its_watch_live() -> None:
    index = EpisodeIndex(["ns"])
    index.seen(incident("a-1", 1))
    assert not index.covers("ns")  # not listed yet
    index.live("ns", True)
    assert index.covers("ns") and not index.covers("elsewhere")
    index.live("ns", False)  # the watch broke: until it is back, the apiserver is asked
    assert not index.covers("ns")
    everywhere = EpisodeIndex()
    everywhere.live(None, True)  # one watch of the whole cluster
    assert everywhere.covers("any")


def test_the_latest_episode_wins_whatever_the_order_it_is_seen_in() -> None:
    index = EpisodeIndex()
    index.seen(incident("a-2", 2))
    index.seen(incident("a-1", 1))  # an older page of the listing, after the watch said a-2
    known = index.lookup("ns", "svc/ns")
    assert known is not None and (known.name, known.episode) == ("a-2", 2)
    assert index.lookup("ns", "other") is None  # never seen
    assert index.lookup("other-ns", "svc/ns") is None  # keys are per namespace


def test_a_deleted_latest_episode_is_forgotten_and_others_are_not() -> None:
    index = EpisodeIndex()
    index.seen(incident("a-1", 1))
    index.seen(incident("b-1", 1, key="other/ns"))
    index.gone("ns", "a-1")
    assert index.lookup("ns", "svc/ns") is None  # numbers come from the cluster: no memory of a-1 is kept
    index.gone("ns", "never-seen")  # harmless
    known = index.lookup("ns", "other/ns")
    assert known is not None and known.name == "b-1"


def test_incidents_no_alert_opened_are_not_indexed() -> None:
    index = EpisodeIndex()
    index.seen({"metadata": {"name": "by-hand", "namespace": "ns"}})
    assert index.lookup("ns", "") is None
