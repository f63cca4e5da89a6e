"""Per-series state of a rule, with Prometheus' alerting semantics and a clock passed in. Pure.

inactive → pending (since when) → firing once pending for `for` → resolved once not returned for
`resolveAfter`. A series that disappears while pending was never an incident: it is dropped. An
evaluation that failed (Prometheus down, a timeout, a refused query) changes nothing: firing
series stay firing, pending clocks keep their start, nothing resolves because data went away.
The state lives in the rule's status, so a restart resumes a pending `for` clock where it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from incidentops.api.v1alpha1.common import parse_duration
from incidentops.api.v1alpha1.detectionrule import DetectionRuleSpec, SeriesState

MAX_SERIES = 100


@dataclass(frozen=True)
class Sample:
    """One series Prometheus returned: its labels and value."""

    labels: Mapping[str, str]
    value: float


@dataclass
class Evaluation:
    """The states after one evaluation, and the series that started firing or resolved in it."""

    series: list[SeriesState]
    fired: list[SeriesState] = field(default_factory=list)
    resolved: list[SeriesState] = field(default_factory=list)
    dropped: int = 0


def key_of(labels: Mapping[str, str], group_by: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """What identifies a series: its groupBy labels, or every label but the metric name."""
    if group_by:
        return tuple((name, str(labels.get(name, ""))) for name in group_by)
    return tuple(sorted((k, str(v)) for k, v in labels.items() if k != "__name__"))


def grouped(samples: Sequence[Sample], group_by: Sequence[str]) -> dict[tuple[tuple[str, str], ...], Sample]:
    """One sample per key; with groupBy, the worst (highest) value of the group stands for it."""
    out: dict[tuple[tuple[str, str], ...], Sample] = {}
    for sample in samples:
        key = key_of(sample.labels, group_by)
        labels = dict(key)
        if key not in out or sample.value > out[key].value:
            out[key] = Sample(labels, sample.value)
    return out


def evaluate(
    spec: DetectionRuleSpec, previous: Sequence[SeriesState], samples: Sequence[Sample] | None, now: datetime
) -> Evaluation:
    """One evaluation; `samples` None means it failed, and then nothing moves."""
    if samples is None:
        return Evaluation(list(previous))
    wait, linger = parse_duration(spec.for_), parse_duration(spec.resolve_after)
    known = {key_of(s.labels, spec.group_by): s for s in previous}
    current = grouped(samples, spec.group_by)
    result = Evaluation([])
    for key, sample in current.items():
        before = known.get(key)
        if before is None or before.state == "inactive":
            state = SeriesState(labels=dict(key), state="pending", value=sample.value, active_since=now)
        else:
            state = before.model_copy(update={"value": sample.value, "cleared_since": None})
        if state.state == "pending" and now - (state.active_since or now) >= wait:
            state = state.model_copy(update={"state": "firing", "fired_at": now})
            result.fired.append(state)
        result.series.append(state.model_copy(update={"last_evaluation": now}))
    for key, before in known.items():
        if key in current or before.state != "firing":
            continue  # returned again, or pending and gone: never an incident
        cleared = before.cleared_since or now
        if now - cleared >= linger:
            result.resolved.append(before.model_copy(update={"state": "inactive", "cleared_since": cleared}))
            continue
        result.series.append(before.model_copy(update={"cleared_since": cleared, "last_evaluation": now}))
    order = {"firing": 0, "pending": 1, "inactive": 2}
    result.series.sort(key=lambda s: (order[s.state], sorted(s.labels.items())))
    result.dropped = max(0, len(result.series) - MAX_SERIES)
    result.series = result.series[:MAX_SERIES]
    return result


def rule_state(series: Sequence[SeriesState], enabled: bool) -> str:
    """The rule's STATE column."""
    if not enabled:
        return "Disabled"
    if any(s.state == "firing" for s in series):
        return "Firing"
    if any(s.state == "pending" for s in series):
        return "Pending"
    return "Inactive"
