"""Who is on call: rotation boundaries, overrides, and daylight-saving changes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from incidentops.api.v1alpha1.escalationpolicy import Schedule
from incidentops.escalation.schedules import on_call, upcoming


def schedule(**extra: object) -> Schedule:
    base: dict[str, object] = {
        "name": "primary",
        "members": ["alice", "bob", "carol"],
        "rotation": "1d",
        "start": "2026-01-05T09:00:00Z",
    }
    return Schedule.model_validate({**base, **extra})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_rotation_hands_over_exactly_at_the_boundary() -> None:
    s = schedule()
    assert on_call(s, at("2026-01-05T09:00:00Z")).user == "alice"
    assert on_call(s, at("2026-01-06T08:59:59Z")).user == "alice"
    assert on_call(s, at("2026-01-06T09:00:00Z")).user == "bob"
    assert on_call(s, at("2026-01-07T09:00:00Z")).user == "carol"
    assert on_call(s, at("2026-01-08T09:00:00Z")).user == "alice"  # wraps around


def test_before_the_start_the_rotation_runs_backwards() -> None:
    assert on_call(schedule(), at("2026-01-05T08:59:59Z")).user == "carol"


def test_shift_bounds_are_reported() -> None:
    shift = on_call(schedule(), at("2026-01-06T12:00:00Z"))
    assert (shift.start, shift.end) == (at("2026-01-06T09:00:00Z"), at("2026-01-07T09:00:00Z"))


def test_an_override_wins_for_its_span_only() -> None:
    s = schedule(overrides=[{"user": "dave", "start": "2026-01-05T12:00:00Z", "end": "2026-01-05T18:00:00Z"}])
    assert on_call(s, at("2026-01-05T11:59:59Z")).user == "alice"
    covered = on_call(s, at("2026-01-05T12:00:00Z"))
    assert (covered.user, covered.override) == ("dave", True)
    assert on_call(s, at("2026-01-05T18:00:00Z")).user == "alice"
    # the shift before the override is cut short by it
    assert on_call(s, at("2026-01-05T10:00:00Z")).end == at("2026-01-05T12:00:00Z")


def test_the_latest_override_wins_when_two_cover_the_time() -> None:
    s = schedule(
        overrides=[
            {"user": "dave", "start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z"},
            {"user": "erin", "start": "2026-01-05T10:00:00Z", "end": "2026-01-05T11:00:00Z"},
        ]
    )
    assert on_call(s, at("2026-01-05T10:30:00Z")).user == "erin"
    assert on_call(s, at("2026-01-05T11:30:00Z")).user == "dave"


def test_daily_handover_keeps_local_time_across_daylight_saving() -> None:
    # Berlin moves from UTC+1 to UTC+2 on 2026-03-29: 09:00 local is 08:00Z before and 07:00Z after.
    s = schedule(start="2026-03-27T09:00:00+01:00", time_zone="Europe/Berlin", members=["alice", "bob"])
    assert on_call(s, at("2026-03-28T08:00:00Z")).user == "bob"  # 09:00 CET on the 28th
    assert on_call(s, at("2026-03-29T06:59:00Z")).user == "bob"
    assert on_call(s, at("2026-03-29T07:00:00Z")).user == "alice"
    shift = on_call(s, at("2026-03-28T12:00:00Z"))
    assert shift.end - shift.start == timedelta(hours=23)  # the short day


def test_without_a_time_zone_rotations_are_exact_durations() -> None:
    s = schedule(start="2026-03-27T09:00:00+01:00", members=["alice", "bob"])
    assert on_call(s, at("2026-03-29T07:30:00Z")).user == "bob"  # handover at 08:00Z, not 07:00Z
    assert on_call(s, at("2026-03-29T08:00:00Z")).user == "alice"


def test_autumn_change_lengthens_one_shift() -> None:
    # Berlin falls back on 2026-10-25: that day has 25 hours.
    s = schedule(start="2026-10-24T09:00:00+02:00", time_zone="Europe/Berlin", members=["alice", "bob"])
    shift = on_call(s, at("2026-10-25T00:30:00Z"))  # the shift that spans the change
    assert shift.user == "alice" and shift.end - shift.start == timedelta(hours=25)
    assert on_call(s, at("2026-10-25T08:00:00Z")).user == "bob"  # 09:00 CET


def test_upcoming_lists_consecutive_shifts() -> None:
    shifts = upcoming(schedule(rotation="12h"), at("2026-01-05T09:00:00Z"), 4)
    assert [s.user for s in shifts] == ["alice", "bob", "carol", "alice"]
    assert all(a.end == b.start for a, b in itertools.pairwise(shifts))


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        schedule(time_zone="Mars/Olympus")


def test_naive_times_are_taken_as_utc() -> None:
    assert (
        on_call(schedule(), datetime(2026, 1, 6, 9, 0)).user
        == on_call(schedule(), datetime(2026, 1, 6, 9, 0, tzinfo=UTC)).user
    )
