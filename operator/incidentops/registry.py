"""The concerns of an Incident, in the order a turn runs them. Adding one is a module and a line here.

Order matters within a turn: the lifecycle applies human intents first (an acknowledgement stops
the chain in the same write), triage classifies (and may raise the severity) before cascade finds
the root, remediation then reads triage's choice, escalation comes after them, seeing what
remediation decided (a failed run pages at once) and whether the incident is a symptom, and the
postmortem comes after them, once the incident is over, and retention (deleting what is long over) last.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from incidentops.concern import WatchedConcern
from incidentops.config import Config
from incidentops.escalation.concern import Escalation
from incidentops.kube import AsyncKube
from incidentops.lifecycle.concern import Lifecycle
from incidentops.lifecycle.retention import Retention
from incidentops.llm import Llm
from incidentops.postmortem.concern import Postmortems
from incidentops.prometheus import Prometheus
from incidentops.remediation.concern import Remediation
from incidentops.triage.cascade import Cascade
from incidentops.triage.concern import Triage
from incidentops.triage.dependencies import Dependencies
from incidentops.triage.runner import Investigator, investigator_settings
from incidentops.triage.settings import SettingsSource


def concerns(
    kube: AsyncKube,
    config: Config,
    clock: Callable[[], datetime],
    prometheus: Prometheus | None,
    llm: Llm | None = None,
) -> list[WatchedConcern]:
    settings = SettingsSource(kube, config.triage_configmap, clock)
    dependencies = Dependencies(kube, clock)
    investigator = (
        Investigator(llm, kube, prometheus, settings, dependencies, clock, **investigator_settings(config))
        if llm is not None
        else None
    )
    window = timedelta(seconds=config.correlation_window_seconds)
    found: list[WatchedConcern] = [
        Lifecycle(kube, frozenset(str(s) for s in config.postmortem_severities)),
        Triage(kube, settings, investigator),
        Cascade(settings, dependencies, window, timedelta(seconds=config.seconds("cascade_wait"))),
    ]
    if config.remediation:
        found.append(Remediation(kube, config, clock, prometheus))
    if config.escalation:
        found.append(Escalation(kube, config, clock))
    found.append(Postmortems(kube, config, clock, prometheus, llm if config.llm_postmortems else None))
    if config.retention:
        severities = frozenset(str(s) for s in config.postmortem_severities)
        found.append(Retention(kube, timedelta(seconds=config.seconds("retention")), severities))
    return found
