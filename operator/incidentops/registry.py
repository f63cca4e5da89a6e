"""The concerns of an Incident, in the order a turn runs them. Adding one is a module and a line here.

Order matters within a turn: the lifecycle applies human intents first (an acknowledgement stops
the chain in the same write), triage chooses the runbook remediation then reads, and escalation
comes last, seeing what remediation decided (a failed run pages at once).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from incidentops.concern import WatchedConcern
from incidentops.config import Config
from incidentops.escalation.concern import Escalation
from incidentops.kube import AsyncKube
from incidentops.lifecycle.concern import Lifecycle
from incidentops.prometheus import Prometheus
from incidentops.remediation.concern import Remediation
from incidentops.triage.concern import Triage


def concerns(
    kube: AsyncKube, config: Config, clock: Callable[[], datetime], prometheus: Prometheus | None
) -> list[WatchedConcern]:
    found: list[WatchedConcern] = [Lifecycle(kube), Triage(kube)]
    if config.remediation:
        found.append(Remediation(kube, config, clock, prometheus))
    if config.escalation:
        found.append(Escalation(kube, config, clock))
    return found
