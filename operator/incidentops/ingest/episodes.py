"""Which episode of each correlation key exists, as the watch has seen it: a new key's first alert needs no LIST.

Without it, the first alert of every key read its earlier episodes with a LIST by correlation label,
and the apiserver filters a label LIST over every Incident of the namespace: at 10,000 incidents each
new key cost a scan and the webhook's rate fell with the count. The index is fed by every Incident
version the feed sees (the start-up LIST, then the watch) and by the writer's own writes; the writer
trusts it for a namespace only while that namespace's watch is live (listed, and not broken since),
and reads the apiserver otherwise.

What it may miss is the watch's last few milliseconds (another replica's create): the writer's create
then fails with 409 on the deterministic name and joins what is there, as two replicas always did in
the window between a LIST and a create. Episode numbers come from the cluster's objects only, never
from what one process remembers, so two replicas always number a key's next episode alike.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from incidentops.ingest.correlation import CORRELATION_KEY_ANNOTATION, episode_of


@dataclass(frozen=True, slots=True)
class Known:
    """A key's latest living episode."""

    name: str
    episode: int


class EpisodeIndex:
    """(namespace, correlation key) -> its latest living episode; a few hundred bytes per key."""

    def __init__(self, namespaces: Collection[str] = ()) -> None:
        self._namespaces = frozenset(namespaces)  # the watched ones; empty: all
        self._keys: dict[tuple[str, str], Known] = {}
        self._key_of: dict[tuple[str, str], str] = {}  # (namespace, name) -> correlation key, for deletions
        self._live: set[str | None] = set()  # namespaces (None: the cluster) whose watch is live

    def live(self, namespace: str | None, is_live: bool) -> None:
        """The feed says whether it follows the namespace (or the cluster) right now."""
        if is_live:
            self._live.add(namespace)
        else:
            self._live.discard(namespace)

    def covers(self, namespace: str) -> bool:
        """Whether the index knows every Incident of the namespace (it is watched, and the watch is live)."""
        if self._namespaces and namespace not in self._namespaces:
            return False
        return (namespace if self._namespaces else None) in self._live

    def lookup(self, namespace: str, correlation: str) -> Known | None:
        """The key's latest living episode (only meaningful where `covers`); None: none."""
        return self._keys.get((namespace, correlation))

    def seen(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        correlation = (meta.get("annotations") or {}).get(CORRELATION_KEY_ANNOTATION)
        if not correlation:
            return  # not opened by alerts (a human's kubectl apply): no key to find it by
        namespace, name = sys.intern(str(meta.get("namespace"))), str(meta.get("name"))
        episode = episode_of(dict(body))
        key = (namespace, str(correlation))
        known = self._keys.get(key)
        if known is None or episode >= known.episode:
            self._keys[key] = Known(name, episode)
            self._key_of[(namespace, name)] = key[1]

    def gone(self, namespace: str, name: str) -> None:
        correlation = self._key_of.pop((namespace, name), None)
        if correlation is None:
            return
        key = (namespace, correlation)
        known = self._keys.get(key)
        if known is not None and known.name == name:
            del self._keys[key]  # an older living episode, if any, is found by the 409 on its name
