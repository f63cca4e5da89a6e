"""Concerns wake on what concerns them: an incident that needs nothing costs nothing after its first look.

The body is a real Incident after its first look, read from the local cluster: no runbook matches and no
EscalationPolicy exists, as for most of the 10,000 incidents of the scale benchmark. A concern that
woke for it anyway would cost a turn (a GET, and maybe a write) per incident per watch event.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from incidentops import registry
from incidentops.concern import WatchedConcern
from incidentops.config import Config

BODY = json.loads((Path(__file__).parent / "data" / "incident_after_first_look.json").read_text())
LOOKED = datetime.fromisoformat(BODY["status"]["triage"]["at"].replace("Z", "+00:00"))


class NoApi:
    """wake() reads the watched object only: any API call would fail here."""

    class client:  # noqa: N801 - the shape AsyncKube has
        apiserver_url = "https://127.0.0.1:6443"


def concerns() -> list[WatchedConcern]:
    return registry.concerns(NoApi(), Config(retention="30d"), lambda: LOOKED, None)  # type: ignore[arg-type]


def woken(body: dict[str, Any], now: datetime) -> dict[str, datetime]:
    return {c.name: when for c in concerns() if (when := c.wake(body, now)) is not None}


@pytest.mark.parametrize("later", [timedelta(0), timedelta(minutes=5), timedelta(days=2)])
def test_an_incident_that_needs_nothing_wakes_nobody(later: timedelta) -> None:
    assert woken(BODY, LOOKED + later) == {}


def test_an_alert_joining_with_nothing_new_wakes_nobody() -> None:
    body = copy.deepcopy(BODY)
    alerts = body["status"]["alerts"]
    alerts.update(count=2, deliveries=3, firing=2, lastSeen="2026-12-03T12:06:00.000Z")
    alerts["active"].append("0123456789abcdef")
    alerts["recent"].append({**alerts["recent"][0], "fingerprint": "0123456789abcdef", "summary": "another instance"})
    assert woken(body, LOOKED + timedelta(minutes=2)) == {}


def test_what_a_concern_reads_changing_wakes_that_concern() -> None:
    now = LOOKED + timedelta(minutes=2)
    acknowledged = copy.deepcopy(BODY)
    acknowledged["spec"]["acknowledgement"] = {"by": "alice", "at": "2026-12-03T12:05:00Z"}
    acknowledged["metadata"]["generation"] = 2
    assert "lifecycle" in woken(acknowledged, now)  # a human's intent: the lifecycle applies it
    worse = copy.deepcopy(BODY)
    worse["status"]["severity"] = "SEV1"  # worse than the policy was chosen for: escalation looks again
    worse["status"]["escalation"]["chosenFor"] = "SEV3"
    worse["status"]["escalation"].pop("stopped")
    assert "escalation" in woken(worse, now)


def test_a_resolved_incident_costs_nothing_until_its_retention_ends() -> None:
    body = copy.deepcopy(BODY)
    status = body["status"]
    status.update(state="Resolved", resolvedAt="2026-12-03T12:10:00.000Z")
    status["escalation"]["stopped"] = "Resolved"
    status["escalation"]["announced"] = ["resolved"]
    resolved = datetime.fromisoformat("2026-12-03T12:10:00+00:00")
    assert woken(body, resolved + timedelta(minutes=1)) == {"retention": resolved + timedelta(days=30)}
