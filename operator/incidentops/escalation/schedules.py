"""Who is on call: a pure function of a schedule and a time.

A rotation hands over every `rotation` from `start`, through the members in order; an override
covering the time wins (the one that began last, when several do). With a time zone, rotations
of whole days hand over at the same local wall-clock time, so a daylight-saving change shortens
or lengthens one shift by an hour instead of moving every later handover.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from incidentops.api.v1alpha1.common import parse_duration
from incidentops.api.v1alpha1.escalationpolicy import Schedule

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Shift:
    """Someone on call from `start` until `end`; `override` when it is not the rotation's turn."""

    user: str
    start: datetime
    end: datetime
    override: bool = False


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _handover(schedule: Schedule, index: int) -> datetime:
    """When shift `index` (0 = the first, negative before it) begins."""
    start = _aware(schedule.start)
    rotation = parse_duration(schedule.rotation)
    if schedule.time_zone and rotation % DAY == timedelta(0):
        zone = ZoneInfo(schedule.time_zone)
        local = start.astimezone(zone).replace(tzinfo=None)
        wall = local + index * rotation  # the same wall-clock time, days later
        return wall.replace(tzinfo=zone).astimezone(UTC)
    return start + index * rotation


def rotation_shift(schedule: Schedule, at: datetime) -> Shift:
    """The rotation's shift at `at`, ignoring overrides (before `start`, the rotation runs backwards)."""
    at = _aware(at)
    start = _aware(schedule.start)
    rotation = parse_duration(schedule.rotation)
    index = (at - start) // rotation  # an estimate; local handovers may differ by an hour
    while _handover(schedule, index) > at:
        index -= 1
    while _handover(schedule, index + 1) <= at:
        index += 1
    user = schedule.members[index % len(schedule.members)]
    return Shift(user, _handover(schedule, index), _handover(schedule, index + 1))


def on_call(schedule: Schedule, at: datetime) -> Shift:
    """Who is on call at `at`: an override covering it, else the rotation."""
    at = _aware(at)
    covering = [o for o in schedule.overrides if _aware(o.start) <= at < _aware(o.end)]
    if covering:
        chosen = max(covering, key=lambda o: _aware(o.start))
        return Shift(chosen.user, _aware(chosen.start), _aware(chosen.end), override=True)
    shift = rotation_shift(schedule, at)
    # An override starting later in this shift cuts it short.
    later = [_aware(o.start) for o in schedule.overrides if at < _aware(o.start) < shift.end]
    return Shift(shift.user, shift.start, min([shift.end, *later]))


def upcoming(schedule: Schedule, at: datetime, count: int) -> list[Shift]:
    """The shift at `at` and the `count - 1` after it, overrides included."""
    shifts = [on_call(schedule, at)]
    while len(shifts) < count:
        shifts.append(on_call(schedule, shifts[-1].end))
    return shifts
