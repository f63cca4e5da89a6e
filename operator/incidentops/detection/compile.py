"""A DetectionRule as one PromQL expression: what the operator asks Prometheus, shown in the rule's status.

Each condition kind becomes plain PromQL a user can paste into Prometheus' own UI:
- threshold     (q) > 0.1
- rateOfChange  deriv((q)[10m:30s]) > 0.5                  per-second change over the window
- absent        absent_over_time((q)[10m:30s])             no sample at all in the window
- burst         increase((q)[10m:30s]) >= 50               a counter rose by at least N
- anomaly       abs((q) - avg_over_time((q)[1h:30s])) > 3 * stddev_over_time((q)[1h:30s])
Every subquery has an explicit step: the rule's interval, at most half the window. Without one,
Prometheus uses its global evaluation_interval (1m by default), and a window shorter than that
may hold no step at all: absent() would then fire while the series is there.
Conditions combine with `and on(...)` (all) or `or on(...)` (any), matched on the rule's groupBy
labels (on() without groupBy: one result for the rule).
"""

from __future__ import annotations

import re

from incidentops.api.v1alpha1.common import parse_duration
from incidentops.api.v1alpha1.detectionrule import DetectionRuleSpec, ThresholdCondition


def _number(value: float | None) -> str:
    if value is None:
        raise ValueError("a threshold is missing")
    return f"{value:g}"


def step_of(window: str, interval: str) -> str:
    """A subquery's step: the rule's interval, but at most half the window (two points in it at least)."""
    seconds = min(parse_duration(interval).total_seconds(), parse_duration(window).total_seconds() / 2)
    millis = max(1, round(seconds * 1000))
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"


def condition(c: ThresholdCondition, interval: str = "30s") -> str:
    """One condition's PromQL; `interval` is the rule's, which sets its subqueries' step."""
    q = f"({c.query.strip()})"
    if c.kind == "threshold":
        return f"{q} {c.op} {_number(c.threshold)}"
    window = c.window or "5m"  # the schema requires one for every kind but threshold
    sub = f"[{window}:{step_of(window, interval)}]"
    if c.kind == "rateOfChange":
        return f"deriv({q}{sub}) {c.op} {_number(c.threshold)}"
    if c.kind == "absent":
        return f"absent_over_time({q}{sub})"
    if c.kind == "burst":
        return f"increase({q}{sub}) >= {_number(c.threshold)}"
    if c.kind == "anomaly":
        return f"abs({q} - avg_over_time({q}{sub})) > {_number(c.threshold)} * stddev_over_time({q}{sub})"
    raise ValueError(f"unknown condition kind {c.kind!r}")


def expression(spec: DetectionRuleSpec) -> str:
    """The rule's whole expression: `expr` as written, or its conditions combined."""
    if spec.expr is not None:
        return spec.expr.strip()
    parts = [condition(c, spec.interval) for c in spec.conditions or []]
    if len(parts) == 1:
        return parts[0]
    joiner = "and" if spec.combine == "all" else "or"
    on = f"on({', '.join(spec.group_by)})"
    return f" {joiner} {on} ".join(f"({p})" for p in parts)


# What is not a metric name in PromQL: operators, modifiers, literals (functions are told apart by the "(").
_KEYWORDS = frozenset(
    {
        "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
        "offset", "inf", "nan", "start", "end", "atan2",
    }
)  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_NAME = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(\s*\()?")
_ABSENT = re.compile(r"\babsent(_over_time)?\s*\(")


def metric_names(expr: str) -> list[str]:
    """The metric names a PromQL expression selects, in order: what must exist for it to mean anything.

    A lexer, not a parser: strings, label matchers, grouping lists and ranges are blanked out, then
    every identifier that is not a keyword and not followed by "(" (a function) is a metric name.
    `{__name__="x"}` selectors are not resolved (they are rare in rules).
    """
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGES.sub(" ", text)
    found: list[str] = []
    for match in _NAME.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS or name in found:
            continue
        found.append(name)
    return found


def expects_absence(spec: DetectionRuleSpec) -> bool:
    """A rule about a missing series (absent kinds, absent()): its metric being gone is the point."""
    if spec.expr is not None:
        return _ABSENT.search(spec.expr) is not None
    return any(c.kind == "absent" for c in spec.conditions or [])
