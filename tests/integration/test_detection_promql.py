"""Every condition kind compiles to PromQL the real Prometheus accepts and answers; a broken query is refused
with Prometheus' own message (what a rule's Ready condition will show)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from incidentops.api.v1alpha1.detectionrule import DetectionRuleSpec
from incidentops.detection.compile import expression
from incidentops.prometheus import Prometheus, PrometheusError
from localenv.monitoring import Prometheus as PrometheusServer

SERIES = 'label_replace(vector(1), "job", "demo", "", "")'  # a series without anything to scrape
KINDS = [
    {"query": SERIES, "op": ">", "threshold": 0},
    {"kind": "rateOfChange", "query": SERIES, "op": ">=", "threshold": 0, "window": "1m"},
    {"kind": "absent", "query": 'up{job="nothing-scrapes-this"}', "window": "1m"},
    {"kind": "burst", "query": "vector(time())", "threshold": 0, "window": "1m"},
    {"kind": "anomaly", "query": SERIES, "threshold": 3, "window": "1m"},
]


def test_every_kind_and_composite_is_promql_prometheus_runs(
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    server = prometheus_factory(scrape_targets=[])
    server.wait_for_value("vector(1)", lambda v: v == 1.0, 30)
    client = Prometheus(server.url, timeout=5)
    for condition in KINDS:
        spec = DetectionRuleSpec.model_validate({"conditions": [condition]})
        client.query(expression(spec))  # raises when Prometheus refuses it
    absent = DetectionRuleSpec.model_validate({"conditions": [KINDS[2]]})
    assert [s.value for s in client.query(expression(absent))] == [1.0]  # absence fires with one series
    composite = DetectionRuleSpec.model_validate({"conditions": KINDS[:2], "groupBy": ["job"], "combine": "all"})
    assert {s.labels.get("job") for s in client.query(expression(composite))} == {"demo"}
    either = DetectionRuleSpec.model_validate({"conditions": [KINDS[0], KINDS[2]], "combine": "any"})
    assert client.query(expression(either))
    broken = DetectionRuleSpec.model_validate({"expr": "sum(rate(x[5m]) >"})
    with pytest.raises(PrometheusError, match="parse error") as refused:
        client.query(expression(broken))
    assert not refused.value.unreachable


def test_absent_with_a_short_window_holds_on_a_prometheus_with_the_default_evaluation_interval(
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    """Without a step, a 5s subquery window on a 1m evaluation_interval holds no point: absent while present."""
    server = prometheus_factory(scrape_targets=[], evaluation_interval="1m")  # Prometheus' default
    server.wait_for_value("vector(1)", lambda v: v == 1.0, 30)
    client = Prometheus(server.url, timeout=5)
    present = DetectionRuleSpec.model_validate(
        {"conditions": [{"kind": "absent", "query": "vector(1)", "window": "5s"}], "interval": "5s"}
    )
    missing = DetectionRuleSpec.model_validate(
        {"conditions": [{"kind": "absent", "query": "vector(0) > 1", "window": "5s"}], "interval": "5s"}
    )
    # Half a minute past a minute boundary: no point of a 1m grid falls in the 5s window.
    now = datetime.now(UTC).replace(microsecond=0)
    mid = now.replace(second=30) if now.second >= 30 else now.replace(second=30) - timedelta(minutes=1)
    assert client.query(expression(present), at=mid) == []
    assert [s.value for s in client.query(expression(missing), at=mid)] == [1.0]
