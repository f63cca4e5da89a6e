"""A DetectionRule's status is written when it says something new, and its evaluation time once a minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from incidentops.detection.changes import bucket, worth_writing

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BEFORE = {
    "state": "Firing",
    "firing": 1,
    "lastEvaluation": "2026-12-01T12:00:00.000Z",
    "lastValue": 0.2347,
    "series": [
        {"labels": {"service": "a"}, "state": "firing", "value": 0.2347, "lastEvaluation": "2026-12-01T12:00:00Z"}
    ],
    "conditions": [{"type": "Ready", "status": "True", "reason": "Evaluated", "message": "1 firing"}],
}


def later(**changes: object) -> dict[str, object]:
    series = [{**BEFORE["series"][0], "lastEvaluation": "2026-12-01T12:00:30Z", **changes.pop("series_", {})}]  # type: ignore[index, dict-item]
    return {**BEFORE, "lastEvaluation": "2026-12-01T12:00:30.000Z", "series": series, **changes}


def test_only_news_is_written_and_the_time_once_a_minute() -> None:
    soon = T0 + timedelta(seconds=30)
    assert not worth_writing(BEFORE, later(), soon)  # only the times moved
    assert not worth_writing(BEFORE, later(lastValue=0.2321, series_={"value": 0.2321}), soon)  # the same bucket
    assert worth_writing(BEFORE, later(lastValue=0.31, series_={"value": 0.31}), soon)  # another bucket
    assert worth_writing(BEFORE, later(state="Inactive", firing=0), soon)
    assert worth_writing(BEFORE, later(series_={"state": "pending"}), soon)
    ready_false = [{"type": "Ready", "status": "False", "reason": "PrometheusUnreachable", "message": "down"}]
    assert worth_writing(BEFORE, later(conditions=ready_false), soon)
    assert worth_writing(BEFORE, later(), T0 + timedelta(seconds=60))  # a minute on: the time is written again
    assert worth_writing({}, later(), soon) and worth_writing({**BEFORE, "lastEvaluation": "junk"}, later(), soon)


def test_buckets_are_two_significant_digits() -> None:
    assert bucket(0.2347) == bucket(0.2321) == 0.23 and bucket(1234.0) == 1200.0
    assert bucket(0) == 0 and bucket(None) is None and bucket(float("nan")) != bucket(1.0)
