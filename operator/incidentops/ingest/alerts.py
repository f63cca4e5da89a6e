"""The normalized alert every source is turned into, and the rules that normalize it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from incidentops.api.v1alpha1.common import Severity
from incidentops.api.v1alpha1.incident import AlertSignals
from incidentops.config import Config
from incidentops.ingest.payloads import AlertmanagerAlert, AlertmanagerWebhook, Event
from incidentops.triage import signals


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
    unknown_severity: str | None = None
    runbook_ref: str | None = None
    escalation_policy_ref: str | None = None
    correlation: str | None = None  # set by a source that knows better (a DetectionRule's groupBy)
    signals: AlertSignals | None = None  # impact it reports (error ratio, users affected...), for triage


MAX_LABELS = 64
MAX_LABEL_VALUE = 1024
MAX_LABEL_NAME = 253
MAX_KEY = 64
MAX_ANNOTATIONS = 32
MAX_ANNOTATION_VALUE = 4096
MAX_SOURCE = 63
TRUNCATED = " [truncated]"


Warn = Callable[[str], None]
TITLE = 512  # an Incident's spec.title


def _unheard(_: str) -> None:
    """Where nobody waits for warnings (a DetectionRule's own alerts)."""


def bounded_text(text: str, limit: int) -> str:
    """Untrusted text cut to a bound, visibly: a reader must know there was more."""
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def _bounded(text: str, limit: int, where: str, warn: Warn) -> str:
    if len(text) > limit:
        warn(f"{where}: {len(text)} characters cut to {limit} (marked [truncated])")
    return bounded_text(text, limit)


def bounded_labels(
    labels: dict[str, str], config: Config, warn: Warn = _unheard, where: str = "labels"
) -> dict[str, str]:
    """Alert text is untrusted: keep the labels within what an Incident's status can hold.

    The labels the operator reads (name, severity, service, namespace, correlation...) always stay.
    """
    important = config.labels_read
    ordered = sorted(labels.items(), key=lambda item: (item[0] not in important, item[0]))
    if len(ordered) > MAX_LABELS:
        warn(f"{where}: {len(ordered) - MAX_LABELS} of {len(ordered)} labels left out (at most {MAX_LABELS} are kept)")
    kept = {}
    for key, value in ordered[:MAX_LABELS]:
        if len(key) > MAX_LABEL_NAME:
            warn(f"{where}: a label name of {len(key)} characters cut to {MAX_LABEL_NAME}")
        kept[key[:MAX_LABEL_NAME]] = _bounded(value, MAX_LABEL_VALUE, f"{where}.{key[:40]}", warn)
    return kept


def bounded_annotations(
    annotations: dict[str, str], warn: Warn = _unheard, where: str = "annotations"
) -> dict[str, str]:
    """Annotations carry stack traces and runbooks: keep a few, each bounded."""
    ordered = sorted(annotations.items(), key=lambda item: (item[0] not in _READ_ANNOTATIONS, item[0]))
    if len(ordered) > MAX_ANNOTATIONS:
        warn(f"{where}: {len(ordered) - MAX_ANNOTATIONS} of {len(ordered)} annotations left out")
    return {
        k[:MAX_LABEL_NAME]: _bounded(v, MAX_ANNOTATION_VALUE, f"{where}.{k[:40]}", warn)
        for k, v in ordered[:MAX_ANNOTATIONS]
    }


def _titled(summary: str | None, where: str, warn: Warn) -> None:
    if summary and len(summary) > TITLE:
        warn(f"{where}: the incident title is its first {TITLE} characters (marked [truncated])")


_READ_ANNOTATIONS = ("summary", "description", "message")


def bounded_key(key: str) -> str:
    """Dedup keys are stored in status for every firing alert: long ones are hashed."""
    return key if len(key) <= MAX_KEY else hashlib.sha256(key.encode()).hexdigest()[:32]


def label_hash(labels: dict[str, str]) -> str:
    """A stable fingerprint of a label set (used when the sender gives none)."""
    text = "\x1f".join(f"{k}\x1e{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def severity_of(labels: dict[str, str], config: Config) -> tuple[Severity, str | None]:
    """The first severity-like label that the mapping knows; the configured default otherwise.

    The second value is a severity the sender gave that the mapping does not know: the alert is
    kept (at the default) but the incident records it, so a typo does not hide a SEV1.
    """
    unknown = None
    for name in config.severity_labels:
        value = labels.get(name)
        if value is None or not value.strip():
            continue
        mapped = config.severity_map.get(value.strip().lower())
        if mapped is not None:
            return Severity(mapped), None
        unknown = unknown or value.strip()[:MAX_KEY]
    return config.default_severity, unknown


def service_of(labels: dict[str, str], config: Config) -> str | None:
    """The first present of the configured service labels."""
    found = next((labels[name] for name in config.service_labels if labels.get(name)), None)
    return found[:MAX_LABEL_NAME] if found else None


def dedup_key_of(labels: dict[str, str], fingerprint: str, config: Config) -> str:
    if not config.dedup_labels:
        return fingerprint
    return label_hash({name: labels.get(name, "") for name in config.dedup_labels})


def from_alertmanager(
    payload: AlertmanagerWebhook,
    alerts: list[AlertmanagerAlert],
    config: Config,
    now: datetime,
    warn: Warn = _unheard,
) -> list[Alert]:
    """Alertmanager alerts, normalized; common labels fill in what an alert lacks. What is cut is warned."""
    return [_from_am_alert(alert, payload, config, now, warn, f"alerts.{i}") for i, alert in enumerate(alerts)]


def _firing(alert: AlertmanagerAlert, payload: AlertmanagerWebhook, now: datetime) -> bool:
    """The alert's status; else the group's; else firing unless it says it ended already."""
    status = alert.status or payload.status
    if status is not None:
        return status == "firing"
    ends_at = alert.end()
    return ends_at is None or ends_at > now


def _from_am_alert(
    alert: AlertmanagerAlert, payload: AlertmanagerWebhook, config: Config, now: datetime, warn: Warn, where: str
) -> Alert:
    labels = bounded_labels({**payload.common_labels, **alert.labels}, config, warn, f"{where}.labels")
    annotations = bounded_annotations({**payload.common_annotations, **alert.annotations}, warn, f"{where}.annotations")
    fingerprint = bounded_key(alert.fingerprint or label_hash(alert.labels))
    severity, unknown = severity_of(labels, config)
    namespace = labels.get("namespace")
    return Alert(
        dedup_key=dedup_key_of(labels, fingerprint, config),
        fingerprint=fingerprint,
        name=(labels.get("alertname") or "unnamed")[:MAX_LABEL_NAME],
        firing=_firing(alert, payload, now),
        labels=labels,
        severity=severity,
        service=service_of(labels, config),
        namespace=namespace[:MAX_LABEL_NAME] if namespace else None,
        source="alertmanager",
        summary=_summary(annotations, where, warn),
        starts_at=alert.start(),
        ends_at=alert.end(),
        generator_url=_bounded(alert.generator_url, MAX_LABEL_VALUE, f"{where}.generatorURL", warn)
        if alert.generator_url
        else None,
        annotations=annotations,
        unknown_severity=unknown,
        signals=signals.read([labels, annotations]),
    )


def _summary(annotations: dict[str, str], where: str, warn: Warn) -> str | None:
    summary = annotations.get("summary") or annotations.get("description") or annotations.get("message")
    _titled(summary, f"{where}.annotations", warn)
    return summary


def from_event(event: Event, config: Config, warn: Warn = _unheard, where: str = "body") -> Alert:
    """A generic event, normalized; its alert_id is the fingerprint. What is cut is warned."""
    name = event.alert_name[:MAX_LABEL_NAME]
    _titled(event.message, f"{where}.message", warn)
    labels = {**event.labels, "alertname": name}
    for key, value in (("service", event.service), ("namespace", event.namespace), ("severity", event.severity)):
        if value:
            labels.setdefault(key, value)
    labels = bounded_labels(labels, config, warn, f"{where}.labels")
    fingerprint = label_hash({"source": event.source, "alert_id": event.alert_id})
    firing = event.type == "alert.fired"
    severity, unknown = severity_of(labels, config)
    namespace = event.namespace or labels.get("namespace")
    return Alert(
        dedup_key=dedup_key_of(labels, fingerprint, config),
        fingerprint=fingerprint,
        name=name,
        firing=firing,
        labels=labels,
        severity=severity,
        service=(event.service or "")[:MAX_LABEL_NAME] or service_of(labels, config),
        namespace=namespace[:MAX_LABEL_NAME] if namespace else None,
        source=event.source[:MAX_SOURCE],
        summary=_bounded(event.message, MAX_ANNOTATION_VALUE, f"{where}.message", warn) if event.message else None,
        starts_at=event.time() if firing else None,
        ends_at=None if firing else event.time(),
        generator_url=_bounded(event.url, MAX_LABEL_VALUE, f"{where}.url", warn) if event.url else None,
        unknown_severity=unknown,
        signals=signals.read([labels]),
    )
