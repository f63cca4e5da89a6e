"""Kopf handler for Postmortems: keep their status (the Open column) and wake the incident they review.

The operator never writes a Postmortem's spec after creating it; a human's edit (the state, an
action item done) is mirrored here, and the incident's postmortem concern looks again (closing an
incident needs its postmortem Published).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from incidentops.api.v1alpha1.common import GROUP, VERSION
from incidentops.api.v1alpha1.resources import POSTMORTEM
from incidentops.handlers.deps import Deps
from incidentops.kube import KubeError, NotFound
from incidentops.postmortem.status import changed, status_of


def register(registry: kopf.OperatorRegistry, deps: Deps) -> None:
    @kopf.on.event(GROUP, VERSION, POSTMORTEM.plural, registry=registry, id="postmortem-status")
    async def postmortem_event(
        *, event: kopf.RawEvent, namespace: str | None, name: str, logger: Any, **_: Any
    ) -> None:
        body: Mapping[str, Any] = event.get("object") or {}
        if event.get("type") == "DELETED" or not namespace:
            incident = ((body.get("spec") or {}).get("incidentRef") or {}).get("name")
            if incident and namespace:
                deps.scheduler.wake((namespace, incident), "postmortem")
            return
        wanted = status_of(body, deps.clock())
        if changed(body, wanted):
            version = (body.get("metadata") or {}).get("resourceVersion")
            try:
                await deps.kube.patch_status(POSTMORTEM, namespace, name, {"status": wanted}, version)
            except NotFound:
                return
            except KubeError as error:  # a newer version is on its way: its own event writes it
                logger.debug("postmortem %s/%s status not written: %s", namespace, name, error)
        incident = ((body.get("spec") or {}).get("incidentRef") or {}).get("name")
        if incident:
            deps.scheduler.wake((namespace, incident), "postmortem")
