"""The normalized alert every source is turned into, and the rules that normalize it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from incidentops.api.v1alpha1.common import Severity
from incidentops.config import Config
from incidentops.ingest.payloads import AlertmanagerAlert, AlertmanagerWebhook, Event


@dataclass(frozen=True)
class Alert:
    """One alert notification, source-independent."""

    dedup_key: str
    fingerprint: str
    name: str
    firing: bool
    labels: dict[str, str]
    severity: Severity
    service: str | None
    namespace: str | None
    source: str
    summary: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    generator_url: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)


MAX_LABELS = 64
MAX_LABEL_VALUE = 1024
MAX_LABEL_NAME = 253
MAX_KEY = 64


def bounded_labels(labels: dict[str, str], config: Config) -> dict[str, str]:
    """Alert text is untrusted: keep the labels within what an Incident's status can hold.

    The labels the operator reads (name, severity, service, namespace, correlation...) always stay.
    """
    important = config.labels_read
    ordered = sorted(labels.items(), key=lambda item: (item[0] not in important, item[0]))
    return {k[:MAX_LABEL_NAME]: v[:MAX_LABEL_VALUE] for k, v in ordered[:MAX_LABELS]}


def bounded_key(key: str) -> str:
    """Dedup keys are stored in status for every firing alert: long ones are hashed."""
    return key if len(key) <= MAX_KEY else hashlib.sha256(key.encode()).hexdigest()[:32]


def label_hash(labels: dict[str, str]) -> str:
    """A stable fingerprint of a label set (used when the sender gives none)."""
    text = "\x1f".join(f"{k}\x1e{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def severity_of(labels: dict[str, str], config: Config) -> Severity:
    """The first severity-like label that the mapping knows; the configured default otherwise."""
    for name in config.severity_labels:
        value = labels.get(name)
        if value is None:
            continue
        mapped = config.severity_map.get(value.strip().lower())
        if mapped is not None:
            return Severity(mapped)
    return config.default_severity


def service_of(labels: dict[str, str], config: Config) -> str | None:
    """The first present of the configured service labels."""
    found = next((labels[name] for name in config.service_labels if labels.get(name)), None)
    return found[:MAX_LABEL_NAME] if found else None


def dedup_key_of(labels: dict[str, str], fingerprint: str, config: Config) -> str:
    if not config.dedup_labels:
        return fingerprint
    return label_hash({name: labels.get(name, "") for name in config.dedup_labels})


def from_alertmanager(payload: AlertmanagerWebhook, config: Config) -> list[Alert]:
    """Alertmanager alerts, normalized; common labels fill in what an alert lacks."""
    return [_from_am_alert(alert, payload, config) for alert in payload.alerts]


def _from_am_alert(alert: AlertmanagerAlert, payload: AlertmanagerWebhook, config: Config) -> Alert:
    labels = bounded_labels({**payload.common_labels, **alert.labels}, config)
    annotations = {**payload.common_annotations, **alert.annotations}
    fingerprint = bounded_key(alert.fingerprint or label_hash(alert.labels))
    return Alert(
        dedup_key=dedup_key_of(labels, fingerprint, config),
        fingerprint=fingerprint,
        name=labels.get("alertname", "unnamed")[:MAX_LABEL_NAME],
        firing=alert.status == "firing",
        labels=labels,
        severity=severity_of(labels, config),
        service=service_of(labels, config),
        namespace=labels.get("namespace"),
        source="alertmanager",
        summary=annotations.get("summary") or annotations.get("description") or annotations.get("message"),
        starts_at=alert.starts_at if alert.starts_at and alert.starts_at.year > 1 else None,
        ends_at=alert.ends_at if alert.ends_at and alert.ends_at.year > 1 else None,
        generator_url=alert.generator_url or None,
        annotations=annotations,
    )


def from_event(event: Event, config: Config) -> Alert:
    """A generic event, normalized; its alert_id is the fingerprint."""
    labels = bounded_labels({**event.labels, "alertname": event.alert_name}, config)
    if event.service:
        labels.setdefault("service", event.service)
    if event.namespace:
        labels.setdefault("namespace", event.namespace)
    if event.severity:
        labels.setdefault("severity", event.severity)
    fingerprint = label_hash({"source": event.source, "alert_id": event.alert_id})
    firing = event.type == "alert.fired"
    return Alert(
        dedup_key=dedup_key_of(labels, fingerprint, config),
        fingerprint=fingerprint,
        name=event.alert_name[:MAX_LABEL_NAME],
        firing=firing,
        labels=labels,
        severity=severity_of(labels, config),
        service=event.service or service_of(labels, config),  # the event schema bounds service already
        namespace=event.namespace or labels.get("namespace"),
        source=event.source,
        summary=event.message,
        starts_at=event.timestamp if firing else None,
        ends_at=None if firing else event.timestamp,
        generator_url=event.url,
    )
