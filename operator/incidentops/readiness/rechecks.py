"""Every Runbook and EscalationPolicy validated again now and then: a referenced Secret may appear later.

Not a Kopf timer: Kopf puts a finalizer on every object a timer runs for, and an object with a
finalizer cannot be deleted while the operator is down or uninstalled (its namespace hangs in
Terminating). A LIST every RECHECK seconds, on the process's deadline queue, needs none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.resources import Kind
from incidentops.deadlines import Deadlines
from incidentops.kube import AsyncKube, Conflict, KubeError, NotFound
from incidentops.readiness.lookup import ClusterLookup
from incidentops.readiness.verdicts import Checker, evaluate

log = logging.getLogger(__name__)
RECHECK = timedelta(seconds=30)


class Rechecks:
    def __init__(
        self,
        kube: AsyncKube,
        checked: Sequence[tuple[Kind, Checker]],
        deadlines: Deadlines,
        clock: Callable[[], datetime],
        namespaces: Sequence[str] = (),
    ) -> None:
        self.kube = kube
        self.checked = list(checked)
        self.clock = clock
        self.namespaces = list(namespaces)
        self.lookup = ClusterLookup(kube)
        self.lane = deadlines.lane("readiness", self._work)

    async def start_when(self, ready: asyncio.Event) -> None:
        """The first recheck RECHECK after Kopf watches (Kopf validates each object as it arrives)."""
        await ready.wait()
        self.lane.schedule("all", self.clock() + RECHECK)

    async def _work(self, _: Hashable) -> datetime | None:
        wanted: list[str | None] = list(self.namespaces) or [None]
        for kind, checker in self.checked:
            for namespace in wanted:
                try:
                    found = await self.kube.list(kind, namespace)
                except KubeError as error:
                    log.warning("could not re-validate %s: %s", kind.plural, error)
                    continue
                for obj in found:
                    try:  # one object's trouble must not keep the others from being checked
                        await self.recheck(kind, checker, obj)
                    except KubeError as error:
                        meta = obj.get("metadata") or {}
                        log.warning(
                            "could not re-validate %s %s/%s: %s",
                            kind.kind,
                            meta.get("namespace"),
                            meta.get("name"),
                            error,
                        )
        return self.clock() + RECHECK

    async def recheck(self, kind: Kind, checker: Checker, obj: dict[str, Any]) -> None:
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            return
        changes, event = await evaluate(kind, checker, self.lookup, obj, self.clock())
        meta = obj["metadata"]
        if changes:
            try:
                await self.kube.run(
                    self.kube.client.patch_status,
                    kind,
                    meta["namespace"],
                    meta["name"],
                    {"status": changes},
                    meta.get("resourceVersion"),
                )
            except (Conflict, NotFound):
                return  # changed or gone meanwhile: its own event validates it again
        if event is not None:
            await self.kube.post_event(obj, event[1], event[2], type_=event[0])
