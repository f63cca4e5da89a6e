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


def test_nothing_is_trusted_before_the_listing_and_outside_the_watched_namespaces() -> None:
    index = EpisodeIndex(["ns"])
    index.seen(incident("a-1", 1))
    assert not index.covers("ns")  # the start-up listing has not gone through it yet
    index.complete = True
    assert index.covers("ns") and not index.covers("elsewhere")
    assert EpisodeIndex().covers("ns") is False
    everywhere = EpisodeIndex()
    everywhere.complete = True
    assert everywhere.covers("any")


def test_the_latest_episode_wins_whatever_the_order_it_is_seen_in() -> None:
    index = EpisodeIndex()
    index.complete = True
    index.seen(incident("a-2", 2))
    index.seen(incident("a-1", 1))  # an older page of the start-up LIST, after the watch said a-2
    known = index.lookup("ns", "svc/ns")
    assert (known.name, known.episode, known.highest) == ("a-2", 2, 2)
    assert index.lookup("ns", "other").highest == 0  # never seen
    assert index.lookup("other-ns", "svc/ns").highest == 0  # keys are per namespace


def test_a_deleted_episode_leaves_its_number_so_it_is_never_created_again() -> None:
    index = EpisodeIndex()
    index.complete = True
    index.seen(incident("a-1", 1))
    index.gone("ns", "a-1")
    known = index.lookup("ns", "svc/ns")
    assert known.name is None and known.highest == 1
    index.gone("ns", "never-seen")  # harmless
    index.seen(incident("a-2", 2))
    assert index.lookup("ns", "svc/ns").name == "a-2"


def test_incidents_no_alert_opened_are_not_indexed() -> None:
    index = EpisodeIndex()
    index.complete = True
    index.seen({"metadata": {"name": "by-hand", "namespace": "ns"}})
    assert index.lookup("ns", "").highest == 0
