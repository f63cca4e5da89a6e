"""From normalized alerts to persisted Incidents: namespace routing, grouping, concurrent writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

from incidentops.api.v1alpha1.common import is_dns_label
from incidentops.config import Config
from incidentops.incidents.turn import Turns
from incidentops.ingest.alerts import Alert
from incidentops.ingest.correlation import GroupKey, correlation_key
from incidentops.ingest.episodes import EpisodeIndex
from incidentops.ingest.writer import IncidentWriter, Persisted
from incidentops.kube import AsyncKube, KubeError, Unavailable

_MISSING_TTL = 60.0


class Ingestor:
    """The one entry point for every source: returns when every touched Incident is persisted."""

    def __init__(
        self,
        kube: AsyncKube,
        config: Config,
        clock: Callable[[], datetime],
        turns: Turns,
        episodes: EpisodeIndex | None = None,
    ) -> None:
        self._kube = kube
        self._config = config
        self.writer = IncidentWriter(kube, config, clock, turns, episodes)
        self._namespaces: dict[str, tuple[bool, float]] = {}

    async def ingest(self, alerts: list[Alert]) -> list[Persisted]:
        groups: dict[GroupKey, list[Alert]] = {}
        routes: dict[tuple[str | None, str], GroupKey] = {}  # one lookup per key and request, not per alert
        for alert in alerts:
            wanted = (alert.namespace, correlation_key(alert, self._config))
            if wanted not in routes:
                routes[wanted] = await self._route(alert)
            groups.setdefault(routes[wanted], []).append(alert)
        return list(await asyncio.gather(*(self.writer.submit(k, v) for k, v in groups.items())))

    async def _route(self, alert: Alert) -> GroupKey:
        """Where the alert's incident lives; an alert that belongs to an open incident keeps joining it.

        An alert goes to the home namespace while its own namespace does not exist (or is not
        watched); if that namespace appears later, the still-open incident in the home namespace
        keeps the alert, or one problem would become two incidents.
        """
        correlation = correlation_key(alert, self._config)
        namespace = await self._namespace_for(alert.namespace)
        home = self._config.home_namespace
        if namespace != home and await self.writer.accepts(GroupKey(home, correlation)):
            return GroupKey(home, correlation)
        return GroupKey(namespace, correlation)

    async def _namespace_for(self, wanted: str | None) -> str:
        """The alert's namespace when the operator watches it and it exists; the home one otherwise.

        A failed lookup raises (the webhook answers 503 and the sender retries): falling back to
        the home namespace on an apiserver blip would open a second incident there.
        """
        if not wanted or not is_dns_label(wanted) or not self._config.watches(wanted):
            return self._config.home_namespace
        if self._config.namespaces:
            return wanted
        known = self._namespaces.get(wanted)
        if known is None or (not known[0] and time.monotonic() - known[1] > _MISSING_TTL):
            try:
                exists = await self._kube.namespace_exists(wanted)
            except KubeError as error:
                raise Unavailable(f"cannot tell whether namespace {wanted} exists: {error}") from error
            known = (exists, time.monotonic())
            self._namespaces[wanted] = known
        return wanted if known[0] else self._config.home_namespace
