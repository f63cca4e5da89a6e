"""Which episode of each correlation key exists, as the watch has seen it: a new key's first alert needs no LIST.

Without it, the first alert of every key read its earlier episodes with a LIST by correlation label,
and the apiserver filters a label LIST over every Incident in the namespace: at 10,000 incidents each
new key cost a scan and the webhook's rate fell with the count. The index is fed by every Incident
version the scheduler sees (the start-up LIST, then the watch); the writer trusts it only once the
start-up listing is done, and reads the apiserver before that.

What it may miss is the last few milliseconds of the watch (another replica's create): the writer's
create then fails with 409 on the deterministic name and it joins what is there. So that a deleted
episode is never created again while a newer one exists unseen, the highest episode number ever seen
for a key stays after its incident is deleted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from incidentops.ingest.correlation import CORRELATION_KEY_ANNOTATION, episode_of


@dataclass(frozen=True, slots=True)
class Known:
    """A key's latest living episode (None: none is left) and the highest episode number ever seen."""

    name: str | None
    episode: int
    highest: int


class EpisodeIndex:
    """(namespace, correlation key) -> its latest living episode; a few hundred bytes per key."""

    def __init__(self, namespaces: Collection[str] = ()) -> None:
        self._namespaces = frozenset(namespaces)  # the watched ones; empty: all
        self._keys: dict[tuple[str, str], Known] = {}
        self._key_of: dict[tuple[str, str], str] = {}  # (namespace, name) -> correlation key, for deletions
        self.complete = False  # set once the start-up listing has gone through it

    def covers(self, namespace: str) -> bool:
        """Whether the index knows every Incident of the namespace (it is listed and watched)."""
        return self.complete and (not self._namespaces or namespace in self._namespaces)

    def lookup(self, namespace: str, correlation: str) -> Known:
        """What is known of the key (only meaningful where `covers`); no name: no living episode was seen."""
        return self._keys.get((namespace, correlation)) or Known(None, 0, 0)

    def seen(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        correlation = (meta.get("annotations") or {}).get(CORRELATION_KEY_ANNOTATION)
        if not correlation:
            return  # not opened by alerts (a human's kubectl apply): no key to find it by
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        episode = episode_of(dict(body))
        key = (namespace, str(correlation))
        known = self._keys.get(key)
        if known is None or known.name is None or episode >= known.episode:
            highest = max(episode, known.highest if known else 0)
            self._keys[key] = Known(name, episode, highest)
            self._key_of[(namespace, name)] = key[1]

    def gone(self, namespace: str, name: str) -> None:
        correlation = self._key_of.pop((namespace, name), None)
        if correlation is None:
            return
        key = (namespace, correlation)
        known = self._keys.get(key)
        if known is not None and known.name == name:
            self._keys[key] = Known(None, 0, known.highest)  # an older living episode is read by LIST if needed
