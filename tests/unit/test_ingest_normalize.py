"""Normalization of Alertmanager and generic payloads: severity, service, keys."""

from __future__ import annotations

import pytest

from incidentops.api.v1alpha1.common import Severity
from incidentops.config import load
from incidentops.ingest.alerts import from_alertmanager, from_event, label_hash, severity_of
from incidentops.ingest.payloads import AlertmanagerWebhook, Event

CONFIG = load({"INCIDENTOPS_WEBHOOK_AUTH": "none"})


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
        ({"priority": "p3"}, Severity.SEV4),
        ({"severity": "SEV2"}, Severity.SEV2),
        ({"severity": "High"}, Severity.SEV2),
        ({"severity": "gibberish", "priority": "P1"}, Severity.SEV2),
        ({}, Severity.SEV3),
    ],
)
def test_severity_mapping(labels: dict[str, str], expected: Severity) -> None:
    assert severity_of(labels, CONFIG) == expected


def test_alertmanager_alert_is_normalized_leniently() -> None:
    [alert] = from_alertmanager(AlertmanagerWebhook.model_validate(am_payload()), CONFIG)
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
    [alert] = from_alertmanager(AlertmanagerWebhook.model_validate(payload), CONFIG)
    assert alert.fingerprint == label_hash({"alertname": "HighErrorRate", "app": "checkout", "severity": "warning"})


def test_configured_dedup_labels() -> None:
    config = load({"INCIDENTOPS_WEBHOOK_AUTH": "none", "INCIDENTOPS_DEDUP_LABELS": "alertname,app"})
    a = from_alertmanager(AlertmanagerWebhook.model_validate(am_payload(fingerprint="1")), config)[0]
    b = from_alertmanager(AlertmanagerWebhook.model_validate(am_payload(fingerprint="2")), config)[0]
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
    assert alert.firing and alert.severity == Severity.SEV2 and alert.service == "checkout"
    assert alert.labels["team"] == "payments" and alert.source == "ci"
    resolved = from_event(event.model_copy(update={"type": "alert.resolved"}), CONFIG)
    assert not resolved.firing and resolved.dedup_key == alert.dedup_key


def test_hostile_alert_text_is_bounded() -> None:
    """Alert text is untrusted: whatever the sender puts in, the result fits an Incident's schema."""
    labels = {f"l{i:03d}": "x" * 4000 for i in range(500)}
    labels |= {"alertname": "A" * 300, "service": "s" * 4000, "namespace": "Not A Namespace"}
    payload = am_payload(labels=labels, fingerprint="f" * 3000)
    [alert] = from_alertmanager(AlertmanagerWebhook.model_validate(payload), CONFIG)
    assert len(alert.labels) <= 64 and all(len(v) <= 1024 for v in alert.labels.values())
    assert len(alert.name) <= 253 and alert.service is not None and len(alert.service) <= 253
    assert len(alert.dedup_key) <= 64
