"""Every Incident of the watched namespaces into the scheduler: one paged LIST, then a watch from where it ended.

Kopf watched Incidents until the 10,000-incident measurements showed its cost: its start-up listing is
one response holding every Incident at once (memory the allocator then keeps), it keeps a record per
object for its handler machinery, and the scheduler listed every Incident again on top. Only an
event handler was ever registered for Incidents, so a paged LIST and a plain watch do the same job
with none of that. Kopf still serves the other kinds (rules, runbooks, policies, postmortems).

A watch that ends or breaks resumes from the last resourceVersion it saw (bookmarks keep that fresh
while nothing changes); one too old to resume from (410) lists again, and an Incident that the new
listing lacks was deleted meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.incidents.scheduler import IncidentScheduler
from incidentops.incidents.turn import Key
from incidentops.kube import AsyncKube, Gone, KubeError
from incidentops.logs import Throttle, waiting_level
from incidentops.metrics import OPEN_INCIDENTS

log = logging.getLogger(__name__)
PAGE = 500  # incidents per page of a LIST
WATCH_SECONDS = 300  # the server ends each watch after this; it is resumed where it was
RETRY = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds before trying again after an apiserver failure, growing
MIN_WATCH_GAP = 0.2  # seconds between a watch the server ended and the next


class IncidentFeed:
    def __init__(self, kube: AsyncKube, scheduler: IncidentScheduler, namespaces: Sequence[str] = ()) -> None:
        self.kube = kube
        self.scheduler = scheduler
        self.namespaces = list(namespaces)
        self._known: dict[Key, str] = {}  # every Incident seen, with its uid: what a new listing may lack
        self._broken = Throttle()

    async def run(self, listed: asyncio.Event) -> None:
        """Follow every watched namespace (or the cluster) until cancelled; `listed` is set once each was listed."""
        wanted: list[str | None] = list(self.namespaces) or [None]
        firsts = [asyncio.Event() for _ in wanted]
        began = time.monotonic()
        tasks = [asyncio.create_task(self._follow(ns, first)) for ns, first in zip(wanted, firsts, strict=True)]
        try:
            await asyncio.gather(*(first.wait() for first in firsts))
            pending = self.scheduler.listed()
            listed.set()
            log.info("listed %d incidents in %.1fs; %d have work, looked at from now on while alerts are taken",
                     len(self._known), time.monotonic() - began, pending)  # fmt: skip
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, namespace: str | None, listed: asyncio.Event) -> None:
        version: str | None = None
        failures = 0
        where = f"namespace {namespace}" if namespace else "the cluster"
        while True:
            try:
                if version is None:
                    version = await self._list(namespace)
                    listed.set()
                self.scheduler.following(namespace, True)
                async for event in self.kube.watch(INCIDENT, namespace, version, WATCH_SECONDS):
                    version = self._take(event) or version
                    failures = 0
            except asyncio.CancelledError:
                raise
            except Gone:
                self.scheduler.following(namespace, False)
                log.info("the watch of incidents in %s is too far behind to resume: listing them again", where)
                version = None
                continue
            except Exception as error:  # the feed never stops: without it no incident gets a first look
                self.scheduler.following(namespace, False)
                delay = RETRY[min(failures, len(RETRY) - 1)]
                failures += 1
                if failures > len(RETRY):
                    version = None  # the same failure again and again: start over from a listing
                if isinstance(error, KubeError):
                    log.log(waiting_level(error), "incidents in %s cannot be %s (%s); trying again in %.0fs", where,
                            "watched" if version else "listed", error, delay)  # fmt: skip
                else:
                    log.error("the feed of incidents in %s failed (a bug); trying again in %.0fs", where, delay,
                              exc_info=True)  # fmt: skip
                await asyncio.sleep(delay)
                continue
            await asyncio.sleep(MIN_WATCH_GAP)  # the server ended the watch: resume (never in a tight loop)

    async def _list(self, namespace: str | None) -> str:
        """Feed a paged LIST to the scheduler; what it lacks of what was known is gone. Its resourceVersion."""
        found: set[Key] = set()
        version = ""
        async for page in self.kube.pages(INCIDENT, namespace, PAGE):
            for obj in page.items:
                found.add(self._observe(obj))
            version = page.resource_version
        for key in [k for k in self._known if (namespace is None or k[0] == namespace) and k not in found]:
            self._forget(key)
        return version

    def _take(self, event: Mapping[str, Any]) -> str | None:
        """One watch event; the resourceVersion it brings."""
        obj: Mapping[str, Any] = event.get("object") or {}
        meta = obj.get("metadata") or {}
        if event.get("type") == "DELETED":
            self._forget((str(meta.get("namespace")), str(meta.get("name"))))
        elif event.get("type") in ("ADDED", "MODIFIED"):
            self._observe(obj)
        return meta.get("resourceVersion") or None

    def _observe(self, obj: Mapping[str, Any]) -> Key:
        meta = obj.get("metadata") or {}
        key: Key = (sys.intern(str(meta.get("namespace"))), str(meta.get("name")))
        uid = str(meta.get("uid", ""))
        if self._known.get(key, uid) != uid:
            self._forget(key)  # deleted and created again under its name while no watch ran
        self._known[key] = uid
        try:
            self.scheduler.observe(obj)
            status = obj.get("status") or {}
            severity = status.get("severity") or (obj.get("spec") or {}).get("severity", "")
            OPEN_INCIDENTS.observe(key[0], key[1], severity, status.get("state", "Detected"))
        except Exception:  # a bug for one incident never stops the feed for all the others
            self._bug(key)
        return key

    def _forget(self, key: Key) -> None:
        uid = self._known.pop(key, "")
        try:
            OPEN_INCIDENTS.forget(*key)
            self.scheduler.forget(key[0], key[1], uid)
        except Exception:
            self._bug(key)

    def _bug(self, key: Key) -> None:
        if self._broken.log(log, logging.ERROR, "observe", "incident %s/%s could not be scheduled (a bug)", *key):
            log.error("the failure above, for the bug report", exc_info=True)
