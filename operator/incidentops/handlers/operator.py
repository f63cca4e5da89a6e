"""Kopf's settings and run loop; the only place that starts Kopf."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator
from typing import Any

import kopf

from incidentops.api.v1alpha1.common import GROUP
from incidentops.handlers import detection, escalation, postmortems, readiness
from incidentops.handlers.deps import Deps

log = logging.getLogger(__name__)


class PatientBackoffs:
    """Kopf's retry delays for apiserver calls, without end.

    Kopf escalates once its backoffs run out, and an escalated watch ends the whole operator:
    an apiserver outage of a minute would take incident response down with it. Never giving up
    means the operator waits the outage out and carries on from object status.
    """

    def __iter__(self) -> Iterator[float]:
        yield from (1, 1, 2, 3, 5, 8, 13)
        yield from itertools.repeat(30.0)


def build_registry(deps: Deps) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        # Only Kopf's warnings become Events; the operator posts its own, meaningful ones.
        settings.posting.level = logging.WARNING
        settings.posting.reporting_component = "incidentops"
        settings.peering.standalone = deps.config.peering == "standalone"
        settings.peering.name = deps.config.peering
        settings.peering.priority = deps.config.priority
        settings.peering.mandatory = False
        settings.watching.server_timeout = 300
        # No cluster-wide listing of Namespaces and CRDs: the watched namespaces are named, the CRDs are
        # installed before the operator (the chart does both), and least privilege grants neither.
        settings.scanning.disabled = True
        settings.networking.request_timeout = 60
        settings.networking.error_backoffs = PatientBackoffs()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    readiness.register(registry, deps)
    detection.register(registry, deps)
    escalation.register(registry, deps)
    postmortems.register(registry, deps)
    return registry


async def run_operator(deps: Deps, ready: asyncio.Event, stop: asyncio.Event) -> None:
    """Run Kopf until `stop` is set; `ready` is set once Kopf has started watching."""
    namespaces = deps.config.namespaces
    await kopf.operator(
        registry=build_registry(deps),
        clusterwide=not namespaces,
        namespaces=namespaces,
        ready_flag=ready,
        stop_flag=stop,
        standalone=deps.config.peering == "standalone",
        peering_name=None if deps.config.peering == "standalone" else deps.config.peering,
    )
