"""An Incident's alerts part of status: counts, the recent alerts, the occurrences already resolved."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from incidentops.api.v1alpha1.common import LabelMap, StatusModel, Timestamp

MAX_RECENT_ALERTS = 10
MAX_ACTIVE_ALERTS = 5000
MAX_RESOLVED_MEMORY = 200
MAX_ALERT_NAMES = 20


class AlertSummary(StatusModel):
    """One alert as last seen; the incident keeps only the most recent few."""

    fingerprint: Annotated[
        str,
        Field(
            max_length=256,
            description="The alert's dedup key (Alertmanager's fingerprint unless dedup labels are configured), as "
            "in alerts.active.",
        ),
    ]
    name: Annotated[
        str, Field(max_length=253, description="The alert's name (its alertname label), e.g. HighErrorRate.")
    ]
    status: Annotated[
        Literal["firing", "resolved"], Field(description="firing or resolved, as of the alert's last notification.")
    ]
    labels: Annotated[
        LabelMap,
        Field(description="The alert's labels, less those the incident's spec.labels has with the same value."),
    ] = {}
    summary: Annotated[
        str | None,
        Field(
            max_length=1024,
            description="The alert's summary (else description, else message) annotation, or an event's message.",
        ),
    ] = None
    starts_at: Annotated[
        Timestamp | None,
        Field(description="When the alert began firing, as its sender reports it (Alertmanager's startsAt)."),
    ] = None
    ends_at: Annotated[
        Timestamp | None,
        Field(
            description="When the alert ended, as its sender reports it (Alertmanager's endsAt; on a firing alert, "
            "when Alertmanager will consider it resolved unless it fires again)."
        ),
    ] = None
    last_seen: Annotated[Timestamp, Field(description="When the operator last received a notification for it.")]
    generator_url: Annotated[
        str | None,
        Field(
            max_length=2048,
            description="A link to what raised the alert, e.g. the Prometheus graph of its rule (Alertmanager's "
            "generatorURL, an event's url).",
        ),
    ] = None


class ResolvedOccurrence(StatusModel):
    """An alert occurrence that resolved; a later 'firing' for the same occurrence is a stale replay."""

    key: Annotated[str, Field(max_length=256, description="The alert's dedup key.")]
    starts_at: Annotated[
        Timestamp,
        Field(
            description="The occurrence's startsAt. Alertmanager keeps it for as long as one occurrence lasts, so a "
            "later 'firing' with the same key and startsAt is a replay; a new occurrence starts at a new time."
        ),
    ]


class AlertSignals(StatusModel):
    """Impact the alerts reported, the worst of each (labels or annotations such as errorRatio: "0.62").

    Rules triage reads these to assess severity the way the severity table says: share of errors or of
    users affected, latency against normal, a security signal, core functionality.
    """

    error_ratio: Annotated[
        float | None,
        Field(ge=0, le=1, description="The worst share of requests failing an alert reported, 0 to 1 (0.62: 62%)."),
    ] = None
    users_affected: Annotated[
        float | None,
        Field(ge=0, le=1, description="The worst share of users affected an alert reported, 0 to 1."),
    ] = None
    latency_multiple: Annotated[
        float | None,
        Field(ge=0, description="The worst latency an alert reported, as a multiple of normal (5: five times)."),
    ] = None
    security: Annotated[
        bool | None, Field(description="True when an alert said it is about security (a security label or signal).")
    ] = None
    core: Annotated[
        bool | None, Field(description="True when an alert said core functionality is affected (core: true).")
    ] = None


class AlertsStatus(StatusModel):
    """Alert bookkeeping, bounded in size whatever the storm."""

    count: Annotated[
        int,
        Field(
            ge=0,
            description="How many times an alert began firing in this incident (the Alerts column); repeated "
            "notifications of an alert already firing are not counted.",
        ),
    ] = 0
    firing: Annotated[
        int,
        Field(
            ge=0,
            description="How many alerts are firing now (active plus untracked). When it drops to 0 the incident "
            "is resolved automatically (or moves to Monitoring if auto-resolve is off).",
        ),
    ] = 0
    deliveries: Annotated[
        int, Field(ge=0, description="Alert notifications received, duplicates and stale replays included.")
    ] = 0
    first_seen: Annotated[
        Timestamp | None, Field(description="When the operator received the incident's first alert notification.")
    ] = None
    last_seen: Annotated[
        Timestamp | None,
        Field(
            description="When the operator last received an alert notification for the incident. Once no alert "
            "fires, new alerts join the incident only within the correlation window (5m by default) after it."
        ),
    ] = None
    active: Annotated[
        list[str],
        Field(
            max_length=MAX_ACTIVE_ALERTS,
            description=f"Dedup keys of the alerts still firing (at most {MAX_ACTIVE_ALERTS}).",
        ),
    ] = []
    untracked: Annotated[
        int,
        Field(
            ge=0,
            description=f"Alerts that began firing while active already held {MAX_ACTIVE_ALERTS} keys. The operator "
            "cannot tell when they resolve, so they keep the incident from resolving automatically.",
        ),
    ] = 0
    recent: Annotated[
        list[AlertSummary],
        Field(
            max_length=MAX_RECENT_ALERTS,
            description=f"The last alerts seen, one entry per alert, most recent last (5 by default, at most "
            f"{MAX_RECENT_ALERTS}).",
        ),
    ] = []
    names: Annotated[
        list[Annotated[str, Field(max_length=253)]],
        Field(
            max_length=MAX_ALERT_NAMES,
            description=f"The distinct alert names seen in the incident, in the order they first fired (at most "
            f"{MAX_ALERT_NAMES}). A new name is new evidence: triage looks again.",
        ),
    ] = []
    signals: Annotated[
        AlertSignals | None,
        Field(
            description="The impact the alerts reported (error ratio, users affected, latency, security), worst first."
        ),
    ] = None
    unknown_severities: Annotated[
        list[Annotated[str, Field(max_length=64)]],
        Field(
            max_length=10,
            description="Severity values the alerts carried that the severity map does not know (at most 10); such "
            "alerts count at the default severity, SEV3 unless configured.",
        ),
    ] = []
    resolved: Annotated[
        list[ResolvedOccurrence],
        Field(
            max_length=MAX_RESOLVED_MEMORY,
            description=f"The last {MAX_RESOLVED_MEMORY} alert occurrences that resolved. A later 'firing' for one "
            "of them (a copy from the other Alertmanager of an HA pair, a late retry) is a stale replay and changes "
            "nothing.",
        ),
    ] = []
