"""Which incidents `list` shows and in what order: filters parsed from flags, severity-first sort.

Works on raw objects as the apiserver returns them, tolerating missing fields, so one odd
object never breaks a listing during an outage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from incidentops.api.v1alpha1.common import Severity, severity_aliases
from incidentops.api.v1alpha1.incident import OPEN_STATES, IncidentState
from incidentops.config import severity_map

_SEVERITY_RANK = {severity.value: rank for rank, severity in enumerate(Severity)}
_STATE_BY_LOWER = {state.value.lower(): state for state in IncidentState}
OPEN = "open"


class SelectionError(ValueError):
    """A filter value that names no severity or state; the message lists what is accepted."""


def _split(values: Iterable[str]) -> list[str]:
    """Accept both repeated flags and comma-separated lists, as kubectl does for many flags."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def parse_severities(values: Iterable[str]) -> frozenset[Severity]:
    """SEV1..SEV5 or a name of the severity table (p1, critical, high, warning, ...), case-insensitive.

    The table is the operator's own (DEFAULT_SEVERITY_MAP with INCIDENTOPS_SEVERITY_MAP merged over it).
    """
    table = severity_map()
    chosen: set[Severity] = set()
    for value in _split(values):
        severity = table.get(value.lower())
        if severity is None:
            raise SelectionError(f"unknown severity {value!r}; use one of: {severity_aliases(table)}")
        chosen.add(severity)
    return frozenset(chosen)


def severity_notes(values: Iterable[str]) -> list[str]:
    """What each alias given stands for ("p1 means SEV1"), so nobody guesses which scale a P is on."""
    table = severity_map()
    return [
        f"{value} means {table[value.lower()]}"
        for value in _split(values)
        if value.lower() in table and value.upper() != table[value.lower()]
    ]


def parse_states(values: Iterable[str]) -> frozenset[IncidentState]:
    """State names, case-insensitive; "open" stands for every state before Resolved."""
    chosen: set[IncidentState] = set()
    for value in _split(values):
        if value.lower() == OPEN:
            chosen.update(OPEN_STATES)
            continue
        state = _STATE_BY_LOWER.get(value.lower())
        if state is None:
            accepted = ", ".join([s.value for s in IncidentState] + [OPEN])
            raise SelectionError(f"unknown state {value!r}; use one of {accepted}")
        chosen.add(state)
    return frozenset(chosen)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class IncidentSummary:
    """The fields `list` shows, read defensively from a raw Incident object."""

    namespace: str
    name: str
    title: str
    severity: str
    state: str
    service: str
    alerts: int
    created: datetime | None

    @classmethod
    def of(cls, obj: dict[str, Any]) -> IncidentSummary:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        alerts = (status.get("alerts") or {}).get("count", 0)
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            title=str(spec.get("title", "")),
            severity=str(status.get("severity") or spec.get("severity", "")),  # current: alerts may have raised it
            # no status yet means the operator has not seen it: it is Detected, as the printer column implies
            state=str(status.get("state") or IncidentState.DETECTED.value),
            service=str(spec.get("service") or ""),
            alerts=alerts if isinstance(alerts, int) else 0,
            created=_parse_time(meta.get("creationTimestamp")),
        )


def select(
    incidents: Iterable[IncidentSummary],
    *,
    severities: frozenset[Severity] = frozenset(),
    states: frozenset[IncidentState] = frozenset(),
) -> list[IncidentSummary]:
    """Keep those matching every given filter (an empty filter matches all), sorted for triage."""
    kept = [
        incident
        for incident in incidents
        if (not severities or incident.severity in severities) and (not states or incident.state in states)
    ]
    return sort_for_triage(kept)


def sort_for_triage(incidents: Sequence[IncidentSummary]) -> list[IncidentSummary]:
    """Most severe first; within a severity the youngest first (what just broke), then by name."""

    def key(incident: IncidentSummary) -> tuple[int, float, str, str]:
        created = -incident.created.timestamp() if incident.created else float("inf")
        return (_SEVERITY_RANK.get(incident.severity, len(_SEVERITY_RANK)), created, incident.namespace, incident.name)

    return sorted(incidents, key=key)
