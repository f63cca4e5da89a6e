"""Correlation keys, deterministic names and the episode (reopen) rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from incidentops.api.v1alpha1.common import Severity
from incidentops.api.v1alpha1.incident import AlertsStatus, IncidentState, IncidentStatus
from incidentops.config import load
from incidentops.ingest.alerts import Alert
from incidentops.ingest.correlation import GroupKey, accepts_alerts, correlation_key, incident_name, slug

CONFIG = load({"INCIDENTOPS_WEBHOOK_AUTH": "none"})
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=5)


def alert(
    name: str = "HighErrorRate", service: str | None = "checkout", namespace: str = "shop", **labels: str
) -> Alert:
    return Alert(
        dedup_key=name,
        fingerprint=name,
        name=name,
        firing=True,
        labels={"alertname": name, **labels},
        severity=Severity.SEV3,
        service=service,
        namespace=namespace,
        source="test",
    )


def test_same_service_and_namespace_correlate_across_alert_names() -> None:
    assert correlation_key(alert("A"), CONFIG) == correlation_key(alert("B"), CONFIG)
    assert correlation_key(alert(namespace="other"), CONFIG) != correlation_key(alert(), CONFIG)
    assert correlation_key(alert(service=None), CONFIG) == "namespace=shop,service=HighErrorRate"


def test_configured_correlation_labels() -> None:
    config = load({"INCIDENTOPS_WEBHOOK_AUTH": "none", "INCIDENTOPS_CORRELATION_LABELS": "cluster,team"})
    assert correlation_key(alert(cluster="eu", team="pay"), config) == "cluster=eu,team=pay"


def test_names_are_deterministic_and_dns_safe() -> None:
    key = GroupKey("shop", "namespace=shop,service=Checkout_API")
    name = incident_name(key, "Checkout_API!!", 3)
    assert name == incident_name(GroupKey("shop", "namespace=shop,service=Checkout_API"), "Checkout_API!!", 3)
    assert name.startswith("checkout-api-") and name.endswith("-3")
    assert len(name) <= 63 and slug("x" * 100) == "x" * 40
    assert incident_name(GroupKey("other", key.correlation), "x", 1) != incident_name(key, "x", 1)


def test_reopen_rule() -> None:
    open_firing = IncidentStatus(
        state=IncidentState.ACKNOWLEDGED, alerts=AlertsStatus(active=["a"], last_seen=NOW - timedelta(hours=3))
    )
    assert accepts_alerts(open_firing, NOW, WINDOW)  # still firing: joins however old
    quiet_recent = IncidentStatus(
        state=IncidentState.MONITORING, alerts=AlertsStatus(last_seen=NOW - timedelta(minutes=4))
    )
    assert accepts_alerts(quiet_recent, NOW, WINDOW)
    quiet_old = IncidentStatus(
        state=IncidentState.MONITORING, alerts=AlertsStatus(last_seen=NOW - timedelta(minutes=6))
    )
    assert not accepts_alerts(quiet_old, NOW, WINDOW)
    resolved = IncidentStatus(state=IncidentState.RESOLVED, alerts=AlertsStatus(last_seen=NOW))
    assert not accepts_alerts(resolved, NOW, WINDOW)  # a resolved episode never reopens
    assert accepts_alerts(IncidentStatus(), NOW, WINDOW)  # just created, status not yet written
