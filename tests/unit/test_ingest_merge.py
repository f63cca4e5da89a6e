"""Folding alerts into status: counts, dedup, bounds, auto-resolve."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from incidentops.api.v1alpha1.common import Severity
from incidentops.api.v1alpha1.incident import (
    MAX_ACTIVE_ALERTS,
    MAX_RESOLVED_MEMORY,
    IncidentSpec,
    IncidentState,
    IncidentStatus,
)
from incidentops.ingest.alerts import Alert
from incidentops.ingest.concern import opening_status
from incidentops.ingest.merge import apply_alerts, without_replays
from incidentops.lifecycle.machine import initial_status

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def alert(key: str, firing: bool = True, starts: datetime | None = None) -> Alert:
    return Alert(
        dedup_key=key,
        fingerprint=key,
        name="HighErrorRate",
        firing=firing,
        labels={"alertname": "HighErrorRate"},
        severity=Severity.SEV2,
        service="checkout",
        namespace="shop",
        source="test",
        starts_at=starts,
    )


def fold(status: IncidentStatus, alerts: list[Alert], auto_resolve: bool = True) -> IncidentStatus:
    return apply_alerts(status, alerts, now=NOW, auto_resolve=auto_resolve, recent_limit=10)[0]


def test_duplicates_do_not_count_as_new_alerts() -> None:
    status = initial_status(NOW, how="test")
    for _ in range(50):
        status = fold(status, [alert("a"), alert("b")])
    assert (status.alerts.count, status.alerts.firing, status.alerts.deliveries) == (2, 2, 100)
    assert status.alerts.active == ["a", "b"]
    assert len([e for e in status.timeline if e.type == "AlertFiring"]) == 1


def test_started_at_is_the_earliest_alert_start() -> None:
    status = fold(
        initial_status(NOW, how="t"),
        [alert("a", starts=NOW - timedelta(minutes=3)), alert("b", starts=NOW - timedelta(minutes=9))],
    )
    assert status.started_at == NOW - timedelta(minutes=9)


def test_all_resolved_auto_resolves() -> None:
    status = fold(initial_status(NOW, how="t"), [alert("a"), alert("b")])
    status = fold(status, [alert("a", firing=False)])
    assert status.state == IncidentState.DETECTED and status.alerts.firing == 1
    status, outcome = apply_alerts(status, [alert("b", firing=False)], now=NOW, auto_resolve=True, recent_limit=10)
    assert status.state == IncidentState.RESOLVED and outcome.auto_transition == IncidentState.RESOLVED
    assert status.resolved_by == "auto-resolve" and status.metrics.time_to_resolve_seconds == 0
    assert [c.status for c in status.conditions if c.type == "Resolved"] == ["True"]


def test_auto_resolve_off_means_monitoring() -> None:
    status = fold(initial_status(NOW, how="t"), [alert("a")])
    status = fold(status, [alert("a", firing=False)], auto_resolve=False)
    assert status.state == IncidentState.MONITORING


def test_resolved_for_unknown_alert_changes_nothing_but_deliveries() -> None:
    status = fold(initial_status(NOW, how="t"), [alert("a")])
    after = fold(status, [alert("zzz", firing=False)])
    assert after.state == IncidentState.DETECTED and after.alerts.firing == 1 and after.alerts.deliveries == 2


def test_status_stays_bounded_in_a_storm() -> None:
    status = fold(initial_status(NOW, how="t"), [alert(f"k{i}") for i in range(MAX_ACTIVE_ALERTS + 500)])
    assert len(status.alerts.active) == MAX_ACTIVE_ALERTS and status.alerts.untracked == 500
    assert status.alerts.count == MAX_ACTIVE_ALERTS + 500 and len(status.alerts.recent) == 10
    resolved_all_tracked = fold(status, [alert(f"k{i}", firing=False) for i in range(MAX_ACTIVE_ALERTS)])
    assert resolved_all_tracked.state == IncidentState.DETECTED  # untracked alerts block auto-resolve
    assert len(status.wire()["alerts"]["active"]) == MAX_ACTIVE_ALERTS


def test_a_stale_firing_replay_after_resolution_changes_nothing() -> None:
    """Alertmanager HA twins and late retries resend an occurrence that has already resolved."""
    started = NOW - timedelta(minutes=2, microseconds=123_456)  # status keeps milliseconds only
    status = fold(initial_status(NOW, how="t"), [alert("a", starts=started), alert("b", starts=started)])
    status = fold(status, [alert("a", firing=False, starts=started)])
    status = IncidentStatus.model_validate(status.wire())  # as read back from the apiserver
    replayed, outcome = apply_alerts(status, [alert("a", starts=started)], now=NOW, auto_resolve=True, recent_limit=5)
    assert outcome.stale == 1 and replayed.alerts.firing == 1 and replayed.alerts.count == 2
    again, outcome = apply_alerts(status, [alert("a", starts=NOW)], now=NOW, auto_resolve=True, recent_limit=5)
    assert outcome.stale == 0 and again.alerts.firing == 2 and again.alerts.count == 3  # a new occurrence


def test_resolved_memory_is_bounded() -> None:
    status = initial_status(NOW, how="t")
    for i in range(MAX_RESOLVED_MEMORY + 50):
        start = NOW - timedelta(seconds=i)
        status = fold(status, [alert(f"k{i}", starts=start), alert("keep", starts=NOW)])
        status = fold(status, [alert(f"k{i}", firing=False, starts=start)])
    assert len(status.alerts.resolved) == MAX_RESOLVED_MEMORY
    newest = alert(f"k{MAX_RESOLVED_MEMORY + 49}", starts=NOW - timedelta(seconds=MAX_RESOLVED_MEMORY + 49))
    assert (
        without_replays(status, [newest], NOW, timedelta(minutes=5)) == []
    )  # the newest resolved occurrence is still remembered


def named(key: str, name: str, severity: Severity = Severity.SEV3, **overrides: object) -> Alert:
    return replace(alert(key), name=name, severity=severity, **overrides)  # type: ignore[arg-type]


def opened(severity: Severity = Severity.SEV3) -> IncidentStatus:
    return opening_status(IncidentSpec(title="t", severity=severity), NOW)


def test_severity_rises_to_the_worst_alert() -> None:
    status, outcome = apply_alerts(opened(), [named("a", "HighLatency")], now=NOW, auto_resolve=True, recent_limit=5)
    assert status.severity == Severity.SEV3 and outcome.severity_raised is None
    later = NOW + timedelta(seconds=30)
    status, outcome = apply_alerts(
        status, [named("b", "ServiceDown", Severity.SEV1)], now=later, auto_resolve=True, recent_limit=5
    )
    assert status.severity == Severity.SEV1 and outcome.severity_raised == (Severity.SEV3, Severity.SEV1)
    assert status.timeline[-1].type == "SeverityRaised" and "SEV3 → SEV1" in status.timeline[-1].message
    status, outcome = apply_alerts(
        status, [named("c", "Minor", Severity.SEV4)], now=later, auto_resolve=True, recent_limit=5
    )
    assert status.severity == Severity.SEV1 and outcome.severity_raised is None  # it never falls by itself


def test_a_severity_set_by_a_human_stays() -> None:
    status = opened().model_copy(update={"severity": Severity.SEV4, "severity_source": "human"})
    status, outcome = apply_alerts(
        status, [named("b", "ServiceDown", Severity.SEV1)], now=NOW, auto_resolve=True, recent_limit=5
    )
    assert status.severity == Severity.SEV4 and outcome.severity_raised is None


def test_unknown_severities_are_recorded_once() -> None:
    status = opened()
    for key in ("a", "b"):
        status = fold(status, [named(key, "A", unknown_severity="urgent")])
    notes = [e.message for e in status.timeline if e.type == "UnknownSeverity"]
    assert notes == ["unknown severity 'urgent', treated as SEV3"]
    assert status.alerts.unknown_severities == ["urgent"]


def test_folded_timeline_entries_keep_names_and_times_true() -> None:
    status = opened()
    status = apply_alerts(
        status, [named(f"h{i}", "HighErrorRate") for i in range(3)], now=NOW, auto_resolve=True, recent_limit=5
    )[0]
    later = NOW + timedelta(seconds=6)
    status = apply_alerts(status, [named("d", "DeployFailed")], now=later, auto_resolve=True, recent_limit=5)[0]
    entry = status.timeline[-1]
    assert entry.message == "4 alerts firing: DeployFailed, HighErrorRate"
    assert (entry.at, entry.last_at, entry.count, entry.names) == (NOW, later, 4, ["DeployFailed", "HighErrorRate"])
    end = NOW + timedelta(seconds=20)
    status = apply_alerts(
        status, [named("h0", "HighErrorRate", firing=False)], now=end, auto_resolve=True, recent_limit=5
    )[0]
    resolved = status.timeline[-1]
    assert (resolved.message, resolved.at, resolved.last_at) == ("1 alert resolved: HighErrorRate", end, None)


def test_a_start_time_ahead_of_the_clock_is_not_the_future() -> None:
    status = fold(opened(), [alert("a", starts=NOW + timedelta(hours=2))])
    assert status.started_at == NOW and status.metrics.time_to_detect_seconds in (None, 0)


def test_alerts_still_firing_when_a_human_resolved_do_not_reopen_at_once() -> None:
    status = fold(opened(), [alert("a", starts=NOW)])
    status = status.model_copy(update={"state": IncidentState.RESOLVED, "resolved_by": "alice", "resolved_at": NOW})
    window = timedelta(minutes=5)
    again = alert("a", starts=NOW)
    assert without_replays(status, [again], NOW + timedelta(seconds=10), window) == []
    assert without_replays(status, [again], NOW + timedelta(minutes=6), window) == [again]  # still firing: it persists
    auto = status.model_copy(update={"resolved_by": "auto-resolve"})
    assert without_replays(auto, [alert("b", starts=NOW)], NOW, window) != []


def test_a_fold_of_many_names_never_miscounts_them() -> None:
    status = opened()
    status = apply_alerts(
        status, [named(f"k{i}", f"Alert{i:02d}") for i in range(15)], now=NOW, auto_resolve=True, recent_limit=5
    )[0]
    status = apply_alerts(status, [named("b", "B")], now=NOW + timedelta(seconds=1), auto_resolve=True, recent_limit=5)[
        0
    ]
    entry = status.timeline[-1]
    assert entry.count == 16 and entry.more_names and len(entry.names) == 10
    assert entry.message.startswith("16 alerts firing: ") and entry.message.endswith(" and others")
