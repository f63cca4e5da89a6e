"""A DetectionRule as one PromQL expression: what the operator asks Prometheus, shown in the rule's status.

Each condition kind becomes plain PromQL a user can paste into Prometheus' own UI:
- threshold     (q) > 0.1
- rateOfChange  deriv((q)[10m:]) > 0.5                     per-second change over the window
- absent        absent_over_time((q)[10m:])                no sample at all in the window
- burst         increase((q)[10m:]) >= 50                  a counter rose by at least N
- anomaly       abs((q) - avg_over_time((q)[1h:])) > 3 * stddev_over_time((q)[1h:])
Conditions combine with `and on(...)` (all) or `or on(...)` (any), matched on the rule's groupBy
labels (on() without groupBy: one result for the rule).
"""

from __future__ import annotations

from incidentops.api.v1alpha1.detectionrule import DetectionRuleSpec, ThresholdCondition


def _number(value: float | None) -> str:
    if value is None:
        raise ValueError("a threshold is missing")
    return f"{value:g}"


def condition(c: ThresholdCondition) -> str:
    """One condition's PromQL."""
    q = f"({c.query.strip()})"
    window = c.window
    if c.kind == "threshold":
        return f"{q} {c.op} {_number(c.threshold)}"
    if c.kind == "rateOfChange":
        return f"deriv({q}[{window}:]) {c.op} {_number(c.threshold)}"
    if c.kind == "absent":
        return f"absent_over_time({q}[{window}:])"
    if c.kind == "burst":
        return f"increase({q}[{window}:]) >= {_number(c.threshold)}"
    if c.kind == "anomaly":
        return f"abs({q} - avg_over_time({q}[{window}:])) > {_number(c.threshold)} * stddev_over_time({q}[{window}:])"
    raise ValueError(f"unknown condition kind {c.kind!r}")


def expression(spec: DetectionRuleSpec) -> str:
    """The rule's whole expression: `expr` as written, or its conditions combined."""
    if spec.expr is not None:
        return spec.expr.strip()
    parts = [condition(c) for c in spec.conditions or []]
    if len(parts) == 1:
        return parts[0]
    joiner = "and" if spec.combine == "all" else "or"
    on = f"on({', '.join(spec.group_by)})"
    return f" {joiner} {on} ".join(f"({p})" for p in parts)
