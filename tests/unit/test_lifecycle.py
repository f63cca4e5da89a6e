"""The state machine and the mirroring of human intents, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from incidentops.api.v1alpha1.common import Severity
from incidentops.api.v1alpha1.incident import (
    MAX_TIMELINE,
    Acknowledgement,
    IncidentSpec,
    IncidentState,
    IncidentStatus,
    Note,
    Resolution,
    SeverityChoice,
    StateRequest,
)
from incidentops.ingest.concern import opening_status
from incidentops.lifecycle.concern import INGESTER_GRACE, awaits_ingester, severity_label_patch
from incidentops.lifecycle.intents import reconcile_intents
from incidentops.lifecycle.machine import (
    ALLOWED,
    IllegalTransitionError,
    acknowledge,
    append_timeline,
    check,
    initial_status,
    transition,
)

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
S = IncidentState
SPEC = IncidentSpec(title="checkout down", severity=Severity.SEV1, service="checkout")


def test_every_state_can_reach_closed_except_closed() -> None:
    for state in S:
        seen, frontier = {state}, [state]
        while frontier:
            for nxt in ALLOWED[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert (S.CLOSED in seen) is True


@pytest.mark.parametrize(
    ("current", "target"),
    [(S.RESOLVED, S.ACKNOWLEDGED), (S.CLOSED, S.RESOLVED), (S.RESOLVED, S.DETECTED), (S.MONITORING, S.DETECTED)],
)
def test_illegal_transitions_are_refused_with_a_reason(current: S, target: S) -> None:
    with pytest.raises(IllegalTransitionError, match=f"cannot move from {current} to {target}"):
        check(current, target)


def test_acknowledge_then_resolve_records_times_metrics_and_conditions() -> None:
    status = initial_status(T0, how="test")
    status = acknowledge(status, by="alice", now=T0 + timedelta(minutes=4))
    assert status.state == S.ACKNOWLEDGED and status.acknowledged_by == "alice"
    assert status.metrics.time_to_acknowledge_seconds == 240
    status = transition(status, S.MITIGATING, now=T0 + timedelta(minutes=10), actor="bob")
    status = transition(status, S.RESOLVED, now=T0 + timedelta(minutes=30), actor="bob", reason="rolled back")
    assert status.metrics.time_to_resolve_seconds == 1800
    assert status.metrics.time_to_mitigate_seconds == 1800  # first time it left mitigation
    assert {c.type: c.status for c in status.conditions} == {"Acknowledged": "True", "Resolved": "True"}
    assert [e.type for e in status.timeline] == ["Detected", "Acknowledged", "Mitigating", "Resolved"]


def test_acknowledge_later_in_the_lifecycle_only_records() -> None:
    status = transition(initial_status(T0, how="t"), S.INVESTIGATING, now=T0, actor="bot")
    status = acknowledge(status, by="carol", now=T0 + timedelta(minutes=1))
    assert status.state == S.INVESTIGATING and status.acknowledged_at == T0 + timedelta(minutes=1)


def test_acknowledge_after_resolution_is_refused() -> None:
    status = transition(initial_status(T0, how="t"), S.RESOLVED, now=T0, actor="auto-resolve")
    with pytest.raises(IllegalTransitionError, match="already Resolved"):
        acknowledge(status, by="dave", now=T0)


def test_timeline_is_bounded_and_keeps_its_first_entry() -> None:
    status = initial_status(T0, how="the beginning")
    for i in range(MAX_TIMELINE * 2):
        status = append_timeline(status, T0, "Note", f"n{i}")
    assert len(status.timeline) == MAX_TIMELINE
    assert status.timeline[0].message == "the beginning" and status.timeline[-1].message == f"n{MAX_TIMELINE * 2 - 1}"


def test_intents_are_mirrored_once() -> None:
    spec = SPEC.model_copy(update={"acknowledgement": Acknowledgement(by="alice"), "assignee": "alice"})
    first = reconcile_intents(spec, initial_status(T0, how="t"), now=T0 + timedelta(minutes=2), generation=2)
    assert first.acknowledged and first.status.state == S.ACKNOWLEDGED and first.status.assignee == "alice"
    assert first.status.observed_generation == 2
    again = reconcile_intents(spec, first.status, now=T0 + timedelta(minutes=9), generation=2)
    assert again.status == first.status and again.notices == []


def test_resolution_intent_and_late_acknowledgement() -> None:
    spec = SPEC.model_copy(update={"resolution": Resolution(by="bob", summary="rolled back", root_cause="bad deploy")})
    done = reconcile_intents(spec, initial_status(T0, how="t"), now=T0 + timedelta(minutes=5), generation=1)
    assert done.resolved and done.status.state == S.RESOLVED and done.status.resolved_by == "bob"
    assert "root cause: bad deploy" in done.status.timeline[-1].message
    late = reconcile_intents(
        spec.model_copy(update={"acknowledgement": Acknowledgement(by="carol")}), done.status, now=T0, generation=2
    )
    assert late.status.acknowledged_at is None
    assert [n.reason for n in late.notices] == ["AcknowledgementIgnored"] and late.notices[0].warning
    assert (
        reconcile_intents(
            spec.model_copy(update={"acknowledgement": Acknowledgement(by="carol")}), late.status, now=T0, generation=2
        ).notices
        == []
    )


def test_manual_incident_gets_an_initial_status() -> None:
    result = reconcile_intents(SPEC, None, now=T0, generation=1)
    assert result.status.state == S.DETECTED and result.status.detected_at == T0
    assert result.notices[0].reason == "Detected"


def _opened(severity: Severity = Severity.SEV3) -> tuple[IncidentSpec, IncidentStatus]:
    spec = SPEC.model_copy(update={"severity": severity})
    status = opening_status(spec, T0)
    return spec, reconcile_intents(spec, status, now=T0, generation=1).status


def test_time_to_acknowledge_counts_from_when_the_human_wrote_it() -> None:
    """An ack written while the operator was down is not charged the downtime."""
    spec, status = _opened()
    written = T0 + timedelta(seconds=47)
    spec = spec.model_copy(update={"acknowledgement": Acknowledgement(by="alice", at=written)})
    acked = reconcile_intents(spec, status, now=T0 + timedelta(minutes=5), generation=2).status
    assert acked.acknowledged_at == written and acked.metrics.time_to_acknowledge_seconds == 47
    future = spec.model_copy(update={"acknowledgement": Acknowledgement(by="bob", at=T0 + timedelta(hours=1))})
    bounded = reconcile_intents(future, status, now=T0 + timedelta(seconds=10), generation=2).status
    assert bounded.acknowledged_at == T0 + timedelta(seconds=10)  # never after now
    early = spec.model_copy(update={"acknowledgement": Acknowledgement(by="eve", at=T0 - timedelta(hours=1))})
    assert reconcile_intents(early, status, now=T0, generation=2).status.acknowledged_at == T0  # nor before detection


def test_a_human_severity_change_wins_over_the_alerts() -> None:
    spec, status = _opened(Severity.SEV3)
    assert (status.severity, status.severity_source) == (Severity.SEV3, "alerts")
    changed = reconcile_intents(spec.model_copy(update={"severity": Severity.SEV2}), status, now=T0, generation=2)
    assert (changed.status.severity, changed.status.severity_source) == (Severity.SEV2, "human")
    assert changed.status.timeline[-1].type == "SeverityChanged"
    assert [n.reason for n in changed.notices] == ["SeverityChanged"]
    again = reconcile_intents(spec.model_copy(update={"severity": Severity.SEV2}), changed.status, now=T0, generation=2)
    assert again.notices == [] and again.status == changed.status


def test_state_requests_follow_the_state_machine_once() -> None:
    spec, status = _opened()
    ask = StateRequest(state="Investigating", by="alice", at=T0)
    moved = reconcile_intents(spec.model_copy(update={"requested_state": ask}), status, now=T0, generation=2).status
    assert moved.state == S.INVESTIGATING and moved.timeline[-1].actor == "alice"
    close = StateRequest(state="Closed", by="alice", at=T0 + timedelta(seconds=1))
    refused = reconcile_intents(spec.model_copy(update={"requested_state": close}), moved, now=T0, generation=3)
    assert refused.status.state == S.INVESTIGATING
    assert [n.reason for n in refused.notices] == ["StateChangeRefused"] and refused.notices[0].warning
    repeat = reconcile_intents(spec.model_copy(update={"requested_state": close}), refused.status, now=T0, generation=3)
    assert repeat.notices == []  # refused once, not again on every event


def test_close_after_resolution() -> None:
    spec, status = _opened()
    spec = spec.model_copy(update={"resolution": Resolution(by="alice", summary="fixed")})
    resolved = reconcile_intents(spec, status, now=T0, generation=2).status
    spec = spec.model_copy(update={"requested_state": StateRequest(state="Closed", by="bob", at=T0)})
    closed = reconcile_intents(spec, resolved, now=T0 + timedelta(minutes=1), generation=3).status
    assert closed.state == S.CLOSED and closed.closed_at is not None


def test_resolving_while_alerts_fire_warns() -> None:
    spec, status = _opened()
    status = status.model_copy(update={"alerts": status.alerts.model_copy(update={"firing": 2, "active": ["a", "b"]})})
    spec = spec.model_copy(update={"resolution": Resolution(by="alice", summary="done")})
    result = reconcile_intents(spec, status, now=T0, generation=2)
    assert result.status.state == S.RESOLVED
    assert "2 alerts still firing" in result.status.timeline[-1].message
    assert any(n.reason == "ResolvedWhileFiring" and n.warning for n in result.notices)


def test_notes_enter_the_timeline_once() -> None:
    spec, status = _opened()
    notes = [Note(by="alice", at=T0, text="looking at the DB"), Note(by="bob", text="rollback started")]
    spec = spec.model_copy(update={"notes": notes})
    once = reconcile_intents(spec, status, now=T0 + timedelta(seconds=5), generation=2).status
    assert [(e.type, e.actor, e.message) for e in once.timeline[-2:]] == [
        ("Note", "alice", "looking at the DB"),
        ("Note", "bob", "rollback started"),
    ]
    twice = reconcile_intents(spec, once, now=T0 + timedelta(seconds=9), generation=2).status
    assert twice.timeline == once.timeline


def test_an_incident_without_status_is_the_ingesters_only_for_a_grace_period() -> None:
    """An ingester killed between create and first status write must not leave the incident stuck."""
    obj = {
        "metadata": {
            "labels": {"app.kubernetes.io/managed-by": "incidentops"},
            "creationTimestamp": "2026-11-23T06:00:00Z",
        },
        "spec": {"title": "t", "severity": "SEV3"},
    }
    assert awaits_ingester(obj, T0 + timedelta(seconds=5))
    assert not awaits_ingester(obj, T0 + INGESTER_GRACE + timedelta(seconds=1))
    assert not awaits_ingester({**obj, "status": {"state": "Detected"}}, T0)
    assert not awaits_ingester({"metadata": {"creationTimestamp": "2026-11-23T06:00:00Z"}}, T0)  # declared by hand


def test_choosing_the_severity_it_opened_with_still_pins_it() -> None:
    """Alerts raised SEV3 to SEV1; a responder sets SEV3 again: spec.severity does not change, the choice does."""
    spec, status = _opened(Severity.SEV3)
    status = status.model_copy(update={"severity": Severity.SEV1})  # raised by a critical alert
    choice = SeverityChoice(by="alice", at=T0 + timedelta(minutes=1))
    chosen = reconcile_intents(spec.model_copy(update={"severity_set": choice}), status, now=T0, generation=2)
    assert (chosen.status.severity, chosen.status.severity_source) == (Severity.SEV3, "human")
    assert chosen.status.timeline[-1].actor == "alice"
    again = reconcile_intents(spec.model_copy(update={"severity_set": choice}), chosen.status, now=T0, generation=2)
    assert again.notices == []


def test_the_severity_label_follows_status() -> None:
    obj = {"metadata": {"labels": {"incidentops.dev/severity": "SEV3"}}, "status": {"severity": "SEV1"}}
    assert severity_label_patch(obj) == {"incidentops.dev/severity": "SEV1"}
    assert severity_label_patch({**obj, "status": {"severity": "SEV3"}}) is None  # in step: no write, no loop
    assert severity_label_patch({"metadata": {}, "status": {}}) is None
