"""Alerts as a concern of the Incident turn: a batch folded into status, with what humans should hear.

The ingester decides which Incident a batch belongs to (and creates it); this concern folds the
batch into that Incident's status in a turn, so its write has the conflict policy, notices and
metric of every other writer. It owns the alerts-and-lifecycle part (as the lifecycle does: auto-
resolve moves the state). When the status read in the turn no longer takes alerts (a human
resolved it meanwhile), it decides nothing and says so (`refused`): the ingester opens the next
episode instead.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentState, IncidentStatus
from incidentops.concern import Concern, Decision, Notice, Ownership
from incidentops.ingest.alerts import Alert
from incidentops.ingest.correlation import accepts_alerts
from incidentops.ingest.merge import MergeOutcome, apply_alerts
from incidentops.kube import Obj
from incidentops.lifecycle.concern import LIFECYCLE
from incidentops.lifecycle.intents import reconcile_intents
from incidentops.lifecycle.machine import append_timeline, initial_status
from incidentops.metrics import TIME_TO_RESOLVE

log = logging.getLogger(__name__)


def opening_status(
    spec: IncidentSpec, now: datetime, *, asked: str | None = None, namespace: str | None = None
) -> IncidentStatus:
    """The first status of an Incident the ingester opened: its severity follows its alerts.

    When the alerts named another namespace than the one the incident is in (a typo, a namespace
    not watched), the timeline says so: its runbooks and escalation policies are not the ones used.
    """
    status = initial_status(now, how=f"opened from {spec.source or 'alerts'}: {spec.title}")
    if asked and namespace and asked != namespace:
        status = append_timeline(
            status,
            now,
            "NamespaceNotFound",
            f"the alerts name namespace {asked[:63]!r}, which does not exist or is not watched "
            f"(INCIDENTOPS_NAMESPACES): the incident is in {namespace}, with that namespace's runbooks and "
            "escalation policies",
        )
    return status.model_copy(
        update={"severity": spec.severity, "spec_severity": spec.severity, "severity_source": "alerts"}
    )


def in_step_with_spec(
    spec: IncidentSpec, generation: int | None, status: IncidentStatus, now: datetime
) -> IncidentStatus:
    """Stamp observedGeneration when no human intent waits, so the lifecycle has nothing to redo.

    When one does wait (an acknowledgement not yet mirrored, say), the status is left as it is:
    the lifecycle applies it, with its Event and metrics.
    """
    pending = reconcile_intents(spec, status, now=now, generation=generation)
    return status if pending.notices else pending.status


class Alerts(Concern):
    """One batch of alerts for one Incident (a new instance per batch)."""

    name = "alerts"
    owns = LIFECYCLE

    def __init__(
        self,
        alerts: list[Alert],
        *,
        created: bool,
        window: timedelta,
        auto_resolve: bool,
        recent_limit: int,
        namespace: str,
    ) -> None:
        self.alerts = alerts
        self.created = created
        self.window = window
        self.auto_resolve = auto_resolve
        self.recent_limit = recent_limit
        self.namespace = namespace
        self.refused = False
        self.initializing = False
        self.outcome = MergeOutcome()

    def decide(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Any, now: datetime
    ) -> Decision | None:
        self.refused = False
        self.initializing = status.detected_at is None
        if not self.created and not self.initializing and not accepts_alerts(status, now, self.window):
            self.refused = True  # resolved (or gone quiet) since the ingester chose it: the next episode
            return None
        base = status
        if self.initializing:
            asked = next((a.namespace for a in self.alerts if a.firing and a.namespace), None)
            base = opening_status(spec, now, asked=asked, namespace=self.namespace)
        try:
            merged, self.outcome = apply_alerts(
                base,
                self.alerts,
                now=now,
                auto_resolve=self.auto_resolve,
                recent_limit=self.recent_limit,
                common_labels=spec.labels or {},
            )
        except Exception:
            if not self.initializing:
                raise
            # never leave an Incident without status: the lifecycle would wait for it until its grace ends
            log.exception(
                "could not record alerts in new incident %s; writing its opening status", obj["metadata"]["name"]
            )
            return Decision(base)
        merged = in_step_with_spec(spec, obj["metadata"].get("generation"), merged, now)
        return Decision(merged, notices=self._notices(spec, merged), written=self._counted(spec, merged))

    def _notices(self, spec: IncidentSpec, status: IncidentStatus) -> list[Notice]:
        notices = []
        severity = status.severity or spec.severity
        if self.initializing:
            service = f" (service {spec.service})" if spec.service else ""
            firing = status.alerts.firing
            notices.append(
                Notice(
                    "Detected",
                    f"{severity} incident opened{service}: {spec.title}; {firing} alert{'s' if firing != 1 else ''} "
                    "firing",
                )
            )
        if self.outcome.severity_raised:
            old, new = self.outcome.severity_raised
            notices.append(Notice("SeverityRaised", f"severity raised {old} → {new}: a {new} alert joined", True))
        if self.outcome.auto_transition == IncidentState.RESOLVED:
            notices.append(Notice("Resolved", "every alert has resolved; incident resolved automatically"))
        elif self.outcome.auto_transition == IncidentState.MONITORING:
            notices.append(Notice("Monitoring", "every alert has resolved; monitoring (auto-resolve is off)"))
        return notices

    def _counted(self, spec: IncidentSpec, status: IncidentStatus) -> Any:
        resolved_in = status.metrics.time_to_resolve_seconds
        severity = status.severity or spec.severity
        auto = self.outcome.auto_transition

        async def counted(_: Obj) -> None:
            if auto == IncidentState.RESOLVED and resolved_in is not None and not spec.drill:
                TIME_TO_RESOLVE.labels(severity).observe(resolved_in)

        return counted


class Recurred(Concern):
    """On an ended episode: the alert fired again, and continues as `current` (its timeline says so)."""

    name = "recurrence"
    owns = Ownership(frozenset({"recurred_as"}))

    def __init__(self, current: str) -> None:
        self.current = current

    def decide(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Any, now: datetime
    ) -> Decision | None:
        if status.recurred_as == self.current:
            return None
        updated = append_timeline(
            status.model_copy(update={"recurred_as": self.current}),
            now,
            "Recurred",
            f"the alert fired again after this episode ended; it continues as {self.current}",
        )
        return Decision(updated)
