"""Normalization of Alertmanager and generic payloads: severity, service, keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from incidentops.api.v1alpha1.common import Severity
from incidentops.config import Config, load
from incidentops.ingest.alerts import Alert, from_alertmanager, from_event, label_hash, severity_of
from incidentops.ingest.payloads import Event, Reading, Unreadable, read_alertmanager, read_events

CONFIG = load({"INCIDENTOPS_WEBHOOK_AUTH": "none"})
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def normalize(payload: Any, config: Config = CONFIG, reading: Reading | None = None) -> list[Alert]:
    reading = reading if reading is not None else Reading()
    envelope, alerts = read_alertmanager(payload, reading)
    return from_alertmanager(envelope, alerts, config, NOW)


def am_payload(**alert_overrides: object) -> dict[str, object]:
    alert = {
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "app": "checkout", "severity": "warning"},
        "annotations": {"summary": "5xx above 10%"},
        "startsAt": "2026-11-23T06:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "0123456789abcdef",
        **alert_overrides,
    }
    return {
        "version": "4",
        "status": "firing",
        "receiver": "incidentops",
        "alerts": [alert],
        "commonLabels": {"namespace": "shop"},
        "futureField": {"added": "by a newer Alertmanager"},
    }


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"severity": "critical"}, Severity.SEV1),
        ({"severity": "warning"}, Severity.SEV3),
        ({"severity": "info"}, Severity.SEV5),
        ({"priority": "P0"}, Severity.SEV1),
        ({"priority": "p1"}, Severity.SEV1),
        ({"priority": "p3"}, Severity.SEV3),
        ({"priority": "P5"}, Severity.SEV5),
        ({"severity": "SEV2"}, Severity.SEV2),
        ({"severity": "High"}, Severity.SEV2),
        ({"severity": "gibberish", "priority": "P2"}, Severity.SEV2),
        ({}, Severity.SEV3),
    ],
)
def test_severity_mapping(labels: dict[str, str], expected: Severity) -> None:
    assert severity_of(labels, CONFIG)[0] == expected


def test_alertmanager_alert_is_normalized_leniently() -> None:
    [alert] = normalize(am_payload())
    assert alert.firing and alert.name == "HighErrorRate"
    assert alert.service == "checkout"  # from `app`, the first present of service/app/job/deployment
    assert alert.namespace == "shop"  # common labels fill in
    assert alert.dedup_key == alert.fingerprint == "0123456789abcdef"
    assert alert.severity == Severity.SEV3
    assert alert.ends_at is None  # Alertmanager's zero time means "not ended"
    assert alert.summary == "5xx above 10%"


def test_missing_fingerprint_falls_back_to_a_label_hash() -> None:
    payload = am_payload()
    del payload["alerts"][0]["fingerprint"]  # type: ignore[index]
    [alert] = normalize(payload)
    assert alert.fingerprint == label_hash({"alertname": "HighErrorRate", "app": "checkout", "severity": "warning"})


def test_configured_dedup_labels() -> None:
    config = load({"INCIDENTOPS_WEBHOOK_AUTH": "none", "INCIDENTOPS_DEDUP_LABELS": "alertname,app"})
    a = normalize(am_payload(fingerprint="1"), config)[0]
    b = normalize(am_payload(fingerprint="2"), config)[0]
    assert a.dedup_key == b.dedup_key != a.fingerprint


def test_generic_event() -> None:
    event = Event.model_validate(
        {
            "type": "alert.fired",
            "source": "ci",
            "alert_id": "deploy-42",
            "alert_name": "DeployFailed",
            "service": "checkout",
            "severity": "P1",
            "message": "deploy 42 failed",
            "labels": {"team": "payments"},
        }
    )
    alert = from_event(event, CONFIG)
    assert alert.firing and alert.severity == Severity.SEV1 and alert.service == "checkout"  # P1: the top priority
    assert alert.labels["team"] == "payments" and alert.source == "ci"
    resolved = from_event(event.model_copy(update={"type": "alert.resolved"}), CONFIG)
    assert not resolved.firing and resolved.dedup_key == alert.dedup_key


def test_hostile_alert_text_is_bounded() -> None:
    """Alert text is untrusted: whatever the sender puts in, the result fits an Incident's schema."""
    labels = {f"l{i:03d}": "x" * 4000 for i in range(500)}
    labels |= {"alertname": "A" * 300, "service": "s" * 4000, "namespace": "Not A Namespace"}
    payload = am_payload(labels=labels, fingerprint="f" * 3000)
    [alert] = normalize(payload)
    assert len(alert.labels) <= 64 and all(len(v) <= 1024 for v in alert.labels.values())
    assert len(alert.name) <= 253 and alert.service is not None and len(alert.service) <= 253
    assert len(alert.dedup_key) <= 64
    assert all(len(v) <= 4096 for v in alert.annotations.values())


def test_a_long_annotation_is_cut_not_refused() -> None:
    """One 5.5 KB stack trace must not cost the group its alerts (Alertmanager does not retry a 400)."""
    trace = "Traceback (most recent call last):\n" + "  at frame\n" * 550
    payload = am_payload(annotations={"summary": "boom", "description": trace})
    payload["alerts"] = [payload["alerts"][0], {**payload["alerts"][0], "fingerprint": "2"}]  # type: ignore[index]
    alerts = normalize(payload)
    assert len(alerts) == 2
    description = alerts[0].annotations["description"]
    assert len(description) <= 4096 and description.endswith("[truncated]")
    assert description.startswith("Traceback")


def test_times_without_an_offset_are_utc() -> None:
    [alert] = normalize(am_payload(startsAt="2026-11-23T08:00:00"))
    assert alert.starts_at == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    event = read_events({**EVENT, "timestamp": "2026-11-23T08:00:00"}, Reading())[0]
    assert from_event(event, CONFIG).starts_at == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_unreadable_fields_are_ignored_with_a_warning() -> None:
    reading = Reading()
    payload = am_payload(startsAt="yesterday", labels={"alertname": "A", "replicas": 3, "gone": None, "ok": True})
    payload["alerts"][0]["annotations"] = ["not", "an", "object"]  # type: ignore[index]
    [alert] = normalize(payload, reading=reading)
    assert alert.starts_at is None and alert.annotations == {}
    assert alert.labels["replicas"] == "3" and alert.labels["ok"] == "true" and "gone" not in alert.labels
    assert any(w.startswith("alerts.0.startsAt") for w in reading.warnings), reading.warnings
    assert any(w.startswith("alerts.0.annotations") for w in reading.warnings), reading.warnings


def test_entries_that_are_not_alerts_are_reported_and_the_rest_kept() -> None:
    reading = Reading()
    payload = am_payload()
    payload["alerts"] = [payload["alerts"][0], "garbage", None]  # type: ignore[index]
    assert len(normalize(payload, reading=reading)) == 1
    assert reading.rejected == [
        "alerts.1: expected an alert object, got str",
        "alerts.2: expected an alert object, got NoneType",
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [([], "body"), ({"status": "firing"}, "alerts"), ({"alerts": {"a": 1}}, "alerts"), ("text", "body")],
)
def test_only_a_body_that_cannot_be_read_is_refused(body: Any, field: str) -> None:
    with pytest.raises(Unreadable, match=rf"^{field}:"):
        read_alertmanager(body, Reading())


def test_status_is_inferred_when_missing_or_odd() -> None:
    payload = am_payload(status="FIRING")
    assert normalize(payload)[0].firing
    payload = am_payload(status=None, endsAt="2026-11-23T07:00:00Z")
    payload["status"] = "bogus"
    assert not normalize(payload)[0].firing  # no readable status anywhere: it ended an hour ago
    payload = am_payload(status=None)
    del payload["status"]
    assert normalize(payload)[0].firing


def test_unknown_severity_is_kept_and_named() -> None:
    [alert] = normalize(am_payload(labels={"alertname": "A", "severity": "urgent"}))
    assert alert.severity == Severity.SEV3 and alert.unknown_severity == "urgent"
    [known] = normalize(am_payload())
    assert known.unknown_severity is None


EVENT = {"type": "alert.fired", "source": "ci", "alert_id": "deploy-42", "alert_name": "DeployFailed"}


def test_events_missing_what_identifies_them_are_refused_by_name() -> None:
    with pytest.raises(Unreadable, match=r"^alert_id:"):
        read_events({k: v for k, v in EVENT.items() if k != "alert_id"}, Reading())
    reading = Reading()
    events = read_events({"events": [EVENT, {"type": "alert.fired"}, 7]}, reading)
    assert len(events) == 1 and len(reading.rejected) == 2
    assert reading.rejected[0].startswith("events.1.source:")


def test_event_text_is_bounded_at_normalization() -> None:
    event = read_events(
        {**EVENT, "source": "s" * 500, "service": "x" * 5000, "message": "m" * 9000, "id": 5}, Reading()
    )[0]
    alert = from_event(event, CONFIG)
    assert len(alert.source) <= 63 and alert.service is not None and len(alert.service) <= 253
    assert alert.summary is not None and len(alert.summary) <= 4096
