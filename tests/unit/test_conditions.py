from datetime import UTC, datetime, timedelta

from incidentops.api.v1alpha1.conditions import find_condition, is_true, set_condition

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_transition_time_moves_only_when_status_changes() -> None:
    conds = set_condition([], "Ready", "False", "Missing", "no runbook", now=T0, generation=1)
    conds = set_condition(
        conds, "Ready", "False", "StillMissing", "still no runbook", now=T0 + timedelta(1), generation=2
    )
    ready = find_condition(conds, "Ready")
    assert ready is not None
    assert ready.last_transition_time == T0
    assert (ready.reason, ready.message, ready.observed_generation) == ("StillMissing", "still no runbook", 2)
    conds = set_condition(conds, "Ready", "True", "Valid", "ok", now=T0 + timedelta(2), generation=2)
    ready = find_condition(conds, "Ready")
    assert ready is not None and ready.last_transition_time == T0 + timedelta(2)
    assert is_true(conds, "Ready")


def test_other_conditions_keep_their_place() -> None:
    conds = set_condition([], "A", "True", "R", "", now=T0)
    conds = set_condition(conds, "B", "False", "R", "", now=T0)
    conds = set_condition(conds, "A", "False", "R2", "", now=T0)
    assert [c.type for c in conds] == ["A", "B"]
    assert not is_true(conds, "A") and find_condition(conds, "C") is None


def test_wire_format_is_kubernetes_style() -> None:
    cond = set_condition([], "Ready", "True", "Valid", "fine", now=T0, generation=3)[0]
    assert cond.wire() == {
        "type": "Ready",
        "status": "True",
        "reason": "Valid",
        "message": "fine",
        "lastTransitionTime": "2026-01-01T00:00:00.000Z",
        "observedGeneration": 3,
    }
