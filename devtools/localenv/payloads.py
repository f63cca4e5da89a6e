"""Alertmanager webhook bodies (version 4) and generic events, built the way the real senders do."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"


def fingerprint(labels: dict[str, str]) -> str:
    """A stable 16-hex fingerprint of a label set, like Alertmanager's."""
    text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def am_alert(
    labels: dict[str, str],
    *,
    status: str = "firing",
    summary: str = "",
    starts_at: datetime | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One alert as Alertmanager puts it in a notification."""
    start = (starts_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "status": status,
        "labels": labels,
        "annotations": {**({"summary": summary} if summary else {}), **(annotations or {})},
        "startsAt": start,
        "endsAt": ZERO_TIME if status == "firing" else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "generatorURL": "http://prometheus.local/graph?g0.expr=up",
        "fingerprint": fingerprint(labels),
    }


def am_webhook(alerts: list[dict[str, Any]], *, receiver: str = "incidentops") -> dict[str, Any]:
    """A version-4 notification grouping the alerts (common labels computed as Alertmanager does)."""
    common = dict(alerts[0]["labels"]) if alerts else {}
    for alert in alerts[1:]:
        common = {k: v for k, v in common.items() if alert["labels"].get(k) == v}
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "receiver": receiver,
        "status": "firing" if firing else "resolved",
        "alerts": alerts,
        "groupLabels": {k: v for k, v in common.items() if k == "alertname"},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local",
        "groupKey": "{}:" + ",".join(f"{k}={v}" for k, v in sorted(common.items())),
        "truncatedAlerts": 0,
    }


def resolved(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same alerts, now resolved."""
    return [{**a, "status": "resolved", "endsAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")} for a in alerts]


def service_alert(
    service: str,
    namespace: str,
    *,
    name: str = "HighErrorRate",
    instance: str = "0",
    severity: str = "critical",
    status: str = "firing",
) -> dict[str, Any]:
    """A typical per-instance alert of one service."""
    labels = {
        "alertname": name,
        "service": service,
        "namespace": namespace,
        "severity": severity,
        "instance": f"{service}-{instance}:8080",
        "job": service,
    }
    return am_alert(labels, status=status, summary=f"{service} {name} on instance {instance}")
