"""DetectionRules, pure: each condition kind compiles to the PromQL a user would write, and the per-series
state machine follows Prometheus' alerting semantics with an injected clock (plus what Prometheus lacks:
no resolution when the data went away, a pending clock that survives a restart)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from incidentops.api.v1alpha1.detectionrule import DetectionRuleSpec
from incidentops.detection.compile import expression
from incidentops.detection.series import Sample, evaluate, rule_state

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rule(**spec: Any) -> DetectionRuleSpec:
    return DetectionRuleSpec.model_validate(spec)


def one(condition: dict[str, Any], **spec: Any) -> str:
    return expression(rule(conditions=[condition], **spec))


def test_each_condition_kind_compiles_to_plain_promql() -> None:
    q = 'sum by (service) (rate(http_requests_total{code=~"5.."}[5m]))'
    assert one({"query": q, "op": ">", "threshold": 0.1}) == f"({q}) > 0.1"
    assert one({"kind": "rateOfChange", "query": "queue_depth", "op": ">", "threshold": 5, "window": "10m"}) == (
        "deriv((queue_depth)[10m:30s]) > 5"
    )
    assert one({"kind": "absent", "query": 'up{job="checkout"}', "window": "5m"}) == (
        'absent_over_time((up{job="checkout"})[5m:30s])'
    )
    assert one({"kind": "burst", "query": "payment_errors_total", "threshold": 50, "window": "2m"}) == (
        "increase((payment_errors_total)[2m:30s]) >= 50"
    )
    assert one({"kind": "anomaly", "query": "latency_p99", "threshold": 3, "window": "1h"}) == (
        "abs((latency_p99) - avg_over_time((latency_p99)[1h:30s])) > 3 * stddev_over_time((latency_p99)[1h:30s])"
    )


def test_every_subquery_has_a_step_from_the_rule_at_most_half_its_window() -> None:
    absent = {"kind": "absent", "query": "up", "window": "5s"}
    assert one(absent, interval="5s") == "absent_over_time((up)[5s:2500ms])"
    assert one({**absent, "window": "10m"}, interval="1m") == "absent_over_time((up)[10m:1m])"
    assert one({**absent, "window": "1h"}, interval="15s") == "absent_over_time((up)[1h:15s])"


def test_composites_match_on_the_group_labels() -> None:
    both = rule(
        conditions=[
            {"query": "errors", "op": ">", "threshold": 0.1},
            {"query": "latency", "op": ">=", "threshold": 2},
        ],
        groupBy=["service"],
    )
    assert expression(both) == "((errors) > 0.1) and on(service) ((latency) >= 2)"
    either = rule(conditions=[{"query": "a", "op": "<", "threshold": 1}, {"query": "b", "op": "!=", "threshold": 0}])
    assert expression(rule(**{**either.wire(), "combine": "any"})) == "((a) < 1) or on() ((b) != 0)"
    assert expression(rule(expr="  job:error_ratio > 0.1 ")) == "job:error_ratio > 0.1"


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        ({"query": "a"}, "needs op and threshold"),
        ({"kind": "absent", "query": "a"}, "needs a window"),
        ({"kind": "burst", "query": "a", "window": "1m"}, "needs threshold"),
    ],
)
def test_a_condition_missing_what_its_kind_needs_is_refused(condition: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        rule(conditions=[condition])


CHECKOUT = {"service": "checkout", "instance": "a:80"}


def test_pending_then_firing_after_for_then_resolved_after_resolve_after() -> None:
    spec = rule(expr="x > 1", **{"for": "1m", "resolveAfter": "2m"})
    first = evaluate(spec, [], [Sample(CHECKOUT, 5)], at(0))
    [series] = first.series
    assert (series.state, series.active_since, first.fired) == ("pending", at(0), [])
    still = evaluate(spec, first.series, [Sample(CHECKOUT, 6)], at(59))
    assert still.series[0].state == "pending" and not still.fired
    fired = evaluate(spec, still.series, [Sample(CHECKOUT, 7)], at(60))
    assert fired.series[0].state == "firing" and [s.labels for s in fired.fired] == [CHECKOUT]
    assert rule_state(fired.series, enabled=True) == "Firing"
    gone = evaluate(spec, fired.series, [], at(90))
    assert gone.series[0].state == "firing" and gone.series[0].cleared_since == at(90) and not gone.resolved
    back = evaluate(spec, gone.series, [Sample(CHECKOUT, 3)], at(100))  # flapping: back before resolveAfter
    assert back.series[0].cleared_since is None and not back.fired  # still the same incident, not a new one
    gone = evaluate(spec, back.series, [], at(110))
    resolved = evaluate(spec, gone.series, [], at(230))
    assert resolved.series == [] and [s.labels for s in resolved.resolved] == [CHECKOUT]
    assert rule_state(resolved.series, enabled=True) == "Inactive"


def test_a_pending_series_that_goes_away_was_never_an_incident() -> None:
    spec = rule(expr="x > 1", **{"for": "5m"})
    pending = evaluate(spec, [], [Sample(CHECKOUT, 2)], at(0))
    gone = evaluate(spec, pending.series, [], at(30))
    assert gone.series == [] and not gone.fired and not gone.resolved
    again = evaluate(spec, gone.series, [Sample(CHECKOUT, 2)], at(40))
    assert again.series[0].active_since == at(40)  # the for clock starts over


def test_a_failed_evaluation_changes_nothing_and_resolves_nothing() -> None:
    spec = rule(expr="x > 1", **{"for": "0s", "resolveAfter": "1m"})
    firing = evaluate(spec, [], [Sample(CHECKOUT, 2)], at(0))
    assert firing.fired
    for seconds in (60, 600, 6000):  # Prometheus down for well over resolveAfter
        down = evaluate(spec, firing.series, None, at(seconds))
        assert down.series == firing.series and not down.resolved


def test_a_restart_in_pending_keeps_the_for_clock() -> None:
    """The states are status: a new operator evaluates on from them, and fires on the original schedule."""
    spec = rule(expr="x > 1", **{"for": "2m"})
    pending = evaluate(spec, [], [Sample(CHECKOUT, 2)], at(0))
    stored = [type(s).model_validate(s.wire()) for s in pending.series]  # written, then read back
    after_restart = evaluate(spec, stored, [Sample(CHECKOUT, 2)], at(120))
    assert after_restart.fired and after_restart.series[0].active_since == at(0)


def test_group_by_keeps_one_state_per_label_set_with_its_worst_value() -> None:
    spec = rule(expr="x > 1", groupBy=["service"])
    samples = [
        Sample({"service": "checkout", "pod": "a"}, 2),
        Sample({"service": "checkout", "pod": "b"}, 9),
        Sample({"service": "cart", "pod": "c"}, 3),
    ]
    result = evaluate(spec, [], samples, at(0))
    assert sorted((s.labels["service"], s.value) for s in result.fired) == [("cart", 3), ("checkout", 9)]
    assert all(set(s.labels) == {"service"} for s in result.series)
    assert rule_state(result.series, enabled=False) == "Disabled"


def test_an_interval_too_short_to_be_sane_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 5s"):
        rule(expr="x > 1", interval="0s")
    with pytest.raises(ValidationError, match="at least 5s"):
        rule(expr="x > 1", interval="500ms")
    assert rule(expr="x > 1", interval="5s").interval == "5s"
    assert rule(expr="x > 1", interval="1d").interval == "1d"


def test_annotations_fill_in_labels_and_value_and_nothing_else() -> None:
    from incidentops.detection.alerts import render  # noqa: PLC0415

    labels = {"service": "checkout", "namespace": "shop"}
    assert render("{{ $labels.service }} in {{$labels.namespace}}: {{ $value }}", labels, 0.25) == (
        "checkout in shop: 0.25"
    )
    assert render("{{ $value | humanizePercentage }} failing", labels, 0.1234) == "12.34% failing"
    assert render("{{ $value | humanize }} rps", labels, 12345.0) == "12.35k rps"
    assert render("{{ .Secret }} {{ $labels.missing }}!", labels, None) == "{{ .Secret }} !"
