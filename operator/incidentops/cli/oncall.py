"""`kubectl incident oncall`: who each level of a policy reaches at a time, from its schedules."""

from __future__ import annotations

from datetime import datetime

from incidentops.api.v1alpha1.common import format_time
from incidentops.api.v1alpha1.escalationpolicy import EscalationPolicySpec
from incidentops.escalation.schedules import on_call, upcoming


def oncall_rows(policy: EscalationPolicySpec, at: datetime) -> list[tuple[str, str, str, str, str]]:
    """(level, delay, target, on call now, until) for every target of every level."""
    schedules = {s.name: s for s in policy.schedules}
    rows: list[tuple[str, str, str, str, str]] = []
    for index, level in enumerate(policy.levels, start=1):
        label = f"{index}" + (f" ({level.name})" if level.name else "")
        for target in level.targets:
            schedule = schedules.get(target.name) if target.type == "schedule" else None
            if target.type == "schedule" and schedule is None:
                rows.append((label, level.after, f"schedule/{target.name}", "(unknown schedule)", ""))
            elif schedule is not None:
                shift = on_call(schedule, at)
                who = shift.user + (" (override)" if shift.override else "")
                rows.append((label, level.after, f"schedule/{target.name}", who, format_time(shift.end)))
            else:
                rows.append((label, level.after, f"{target.type}/{target.name}", target.name, ""))
    return rows


def next_shifts(policy: EscalationPolicySpec, at: datetime, count: int = 3) -> list[tuple[str, str, str, str]]:
    """(schedule, user, from, until) for the next shifts of every schedule."""
    return [
        (schedule.name, s.user + (" (override)" if s.override else ""), format_time(s.start), format_time(s.end))
        for schedule in policy.schedules
        for s in upcoming(schedule, at, count)
    ]
