"""When an incident may be deleted: over for the retention time, never with its required postmortem unwritten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from incidentops.lifecycle.retention import expires_at

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SEVERITIES = frozenset({"SEV1", "SEV2"})


def incident(**status: Any) -> dict[str, Any]:
    return {
        "spec": {"severity": "SEV3"},
        "status": {"state": "Resolved", "resolvedAt": "2026-12-01T12:00:00Z", **status},
    }


def test_an_incident_is_kept_while_open_and_while_its_required_postmortem_is_unwritten() -> None:
    assert expires_at(incident(), DAY, SEVERITIES) == T0 + DAY
    assert expires_at(incident(state="Monitoring"), DAY, SEVERITIES) is None
    closed = incident(state="Closed", closedAt="2026-12-02T12:00:00Z")
    assert expires_at(closed, DAY, SEVERITIES) == T0 + 2 * DAY  # from when it was closed
    assert expires_at(incident(severity="SEV1"), DAY, SEVERITIES) is None  # required, not looked at yet
    writing = {"required": True, "name": "x", "state": "Writing"}
    assert expires_at(incident(severity="SEV1", postmortem=writing), DAY, SEVERITIES) is None
    written = {"required": True, "name": "x", "state": "Draft"}
    assert expires_at(incident(severity="SEV1", postmortem=written), DAY, SEVERITIES) == T0 + DAY
    drill = {"spec": {"severity": "SEV1", "simulation": {"mode": "rehearsal"}}, "status": incident()["status"]}
    assert expires_at(drill, DAY, SEVERITIES) == T0 + DAY  # a simulation needs no postmortem
