"""The stand-ins in a process of their own: what `make demo KEEP=1` leaves running, and cluster-down stops."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from localenv import leftovers
from localenv.standins_process import StandInsProcess


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "leftovers"
    monkeypatch.setattr(leftovers, "record_path", lambda: path)
    return path


def test_they_outlive_their_starter_answer_over_the_control_api_and_stop_when_told(
    tmp_path: Path, record: Path
) -> None:
    standins = StandInsProcess(tmp_path / "standins.log").start()
    try:
        event = {
            "routing_key": "R" * 32,
            "event_action": "trigger",
            "payload": {"summary": "x", "source": "t", "severity": "info"},
        }
        sent = httpx.post(standins.base("pagerduty") + "/v2/enqueue", json=event, timeout=5)
        assert sent.status_code == 202
        [got] = standins.wait_for("pagerduty", 1, timeout=5)
        assert got.json == event and got.status == 202
        leftovers.record(standins.process.pid, "standins")
        assert leftovers.stop_all() == ["standins"]
        assert not standins.process.running or standins.process.popen.wait(timeout=5) is not None
        with pytest.raises(httpx.HTTPError):
            httpx.get(standins.url + "/_standins/requests", timeout=1)
        assert not record.exists() and leftovers.stop_all() == []
    finally:
        standins.stop()
