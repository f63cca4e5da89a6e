"""A DetectionRule's series as alerts, for the same ingestion path Alertmanager's take. Pure.

Labels: the series' own, then the rule's, then alertname (the rule's name), severity, category and
namespace (the rule's), so the incident lands beside the rule and matches runbooks like any
alert. Annotations are templates: `{{ $labels.name }}` and `{{ $value }}` (with `| humanize` or
`| humanizePercentage`) are replaced, nothing else is interpreted (no template engine reaches
alert text), and the result is bounded.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime

from incidentops.api.v1alpha1.detectionrule import DetectionRuleSpec, SeriesState
from incidentops.config import Config
from incidentops.ingest.alerts import (
    MAX_ANNOTATION_VALUE,
    Alert,
    bounded_annotations,
    bounded_labels,
    bounded_text,
    dedup_key_of,
    service_of,
)
from incidentops.triage import signals

SOURCE = "detectionrule"
RULE_LABEL = "incidentops_rule"
_PLACEHOLDER = re.compile(
    r"\{\{\s*\$(labels\.([a-zA-Z_][a-zA-Z0-9_]*)|value)\s*(?:\|\s*(humanizePercentage|humanize)\s*)?\}\}"
)


def _humane(value: float, how: str | None) -> str:
    if how == "humanizePercentage":
        return f"{value * 100:.4g}%"
    if how == "humanize":
        for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= factor:
                return f"{value / factor:.4g}{suffix}"
        return f"{value:.4g}"
    return f"{value:g}"


def render(template: str, labels: Mapping[str, str], value: float | None) -> str:
    """Replace `{{ $labels.x }}` and `{{ $value }}` (optionally `| humanize`, `| humanizePercentage`, as
    Prometheus does); anything else stays as written."""

    def one(match: re.Match[str]) -> str:
        if match.group(1) == "value":
            return "" if value is None else _humane(value, match.group(3))
        return str(labels.get(match.group(2), ""))

    return bounded_text(_PLACEHOLDER.sub(one, template), MAX_ANNOTATION_VALUE)


def fingerprint(namespace: str, rule: str, series: Mapping[str, str]) -> str:
    text = "\x00".join([namespace, rule, *(f"{k}={v}" for k, v in sorted(series.items()))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def alert_for(
    namespace: str,
    rule: str,
    spec: DetectionRuleSpec,
    series: SeriesState,
    *,
    firing: bool,
    now: datetime,
    config: Config,
    why: str | None = None,
) -> Alert:
    """The alert one series raises (firing) or ends (resolved; `why` says what ended it)."""
    labels = {
        **series.labels,
        **spec.labels,
        "alertname": rule,
        "severity": str(spec.severity),
        "namespace": namespace,
        RULE_LABEL: rule,
    }
    if spec.category:
        labels["category"] = str(spec.category)
    if spec.service:
        labels["service"] = spec.service
    labels = bounded_labels(labels, config)
    annotations = bounded_annotations(
        {name: render(text, series.labels, series.value) for name, text in spec.annotations.items()}
    )
    summary = annotations.get("summary") or (f"{rule}: {series.value:g}" if series.value is not None else rule)
    if why:
        summary = f"{why} ({summary})" if summary else why
    key = fingerprint(namespace, rule, series.labels)
    return Alert(
        dedup_key=dedup_key_of(labels, key, config),
        fingerprint=key,
        name=rule,
        firing=firing,
        labels=labels,
        severity=spec.severity,
        service=spec.service or service_of(labels, config),
        namespace=namespace,
        source=SOURCE,
        summary=summary,
        starts_at=series.fired_at or series.active_since,
        ends_at=None if firing else now,
        annotations=annotations,
        # groupBy: one incident per label set, as the rule asks; otherwise the service's incident, as for any alert
        correlation=(
            ",".join(
                [f"namespace={namespace}", f"rule={rule}", *(f"{k}={series.labels.get(k, '')}" for k in spec.group_by)]
            )
            if spec.group_by
            else None
        ),
        runbook_ref=spec.runbook_ref.name if spec.runbook_ref else None,
        escalation_policy_ref=spec.escalation_policy_ref.name if spec.escalation_policy_ref else None,
        signals=signals.read([labels, annotations]),
    )
