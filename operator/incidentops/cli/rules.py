"""test-rule and simulate: try a DetectionRule on Prometheus without opening anything, or open a clearly
labelled test Incident to try runbooks and escalation policies end to end."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from incidentops.api.v1alpha1.common import API_VERSION, Severity, located, parse_duration, parse_time
from incidentops.api.v1alpha1.detectionrule import DetectionRuleSpec, SeriesState
from incidentops.api.v1alpha1.incident import IncidentSpec
from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.cli.actions import Incident, Obj, Refused
from incidentops.cli.remediation import candidates
from incidentops.config import Config
from incidentops.detection.alerts import alert_for
from incidentops.detection.compile import expression
from incidentops.detection.series import Sample, grouped
from incidentops.ingest.correlation import slug
from incidentops.prometheus import Prometheus, PrometheusError

SIMULATION_LABEL = "incidentops.dev/simulation"


def rule_from_file(path: Path) -> tuple[str, str | None, DetectionRuleSpec]:
    """Name, namespace and spec of the first DetectionRule in a YAML file."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as error:
        raise Refused(f"cannot read {path}: {error}") from None
    for document in documents:
        if document.get("kind") == "DetectionRule":
            meta = document.get("metadata") or {}
            return str(meta.get("name", path.stem)), meta.get("namespace"), parse_rule(document.get("spec") or {})
    raise Refused(f"{path} holds no DetectionRule")


def parse_rule(spec: Mapping[str, Any]) -> DetectionRuleSpec:
    try:
        return DetectionRuleSpec.model_validate(spec)
    except ValidationError as error:
        raise Refused(f"invalid DetectionRule: {located(error)}") from None


def when(text: str | None, now: datetime) -> datetime | None:
    """--at: an RFC 3339 time, or a duration ago (10m)."""
    if not text:
        return None
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_time(text)
    except ValueError:
        raise Refused(f"--at {text!r}: give an RFC 3339 time or a duration ago such as 10m") from None


def try_rule(
    name: str, namespace: str, spec: DetectionRuleSpec, prometheus: Prometheus, at: datetime | None, now: datetime
) -> list[str]:
    """What the rule would do at `at` (or now): its query, each series, and the alert each would raise."""
    query = expression(spec)
    lines = [f"query: {query}", f"evaluated at: {(at or now).isoformat()}"]
    try:
        found = prometheus.query(query, at)
    except PrometheusError as error:
        raise Refused(str(error)) from None
    samples = grouped([Sample(s.labels, s.value) for s in found], spec.group_by)
    if not samples:
        return [*lines, "no series: the rule would not fire (nothing pending, nothing opened)"]
    wait = f" after {spec.for_} pending" if parse_duration(spec.for_) > timedelta(0) else ""
    lines.append(f"{len(samples)} series would fire{wait}:")
    for sample in samples.values():
        series = SeriesState(labels=dict(sample.labels), state="firing", value=sample.value, active_since=at or now)
        alert = alert_for(namespace, name, spec, series, firing=True, now=now, config=Config(webhook_auth="none"))
        shown = ", ".join(f"{k}={v}" for k, v in sorted(sample.labels.items())) or "(no labels)"
        lines.append(f"  {shown}  value {sample.value:g}")
        lines.append(f"    would open: {alert.summary} ({alert.severity}, service {alert.service or '-'})")
    return lines


def simulated_incident(
    namespace: str,
    service: str,
    alert: str,
    severity: Severity,
    labels: Mapping[str, str],
    *,
    category: str | None = None,
    deployment: str | None = None,
    runbook: str | None = None,
    policy: str | None = None,
    by: str,
    live: bool = False,
) -> Obj:
    """A test Incident, labelled and titled so that nobody takes it for a real one."""
    mode = "live" if live else "rehearsal"
    spec: dict[str, Any] = {
        "title": f"[{'drill' if live else 'simulation'}] {alert} on {service}",
        "severity": str(severity),
        "service": service,
        "source": "simulation",
        "summary": f"opened by {by} with kubectl incident simulate ({mode}), to try runbooks and escalation",
        "simulation": {"mode": mode, "by": by},
        "labels": {**labels, "alertname": alert, "service": service},
        "affectedWorkloads": [{"kind": "Deployment", "name": deployment}] if deployment else [],
    }
    if category:
        spec["category"] = category
    if runbook:
        spec["runbookRef"] = {"name": runbook}
    if policy:
        spec["escalationPolicyRef"] = {"name": policy}
    IncidentSpec.model_validate(spec)  # the schema's word, before the apiserver's
    return {
        "apiVersion": API_VERSION,
        "kind": INCIDENT.kind,
        "metadata": {
            "name": f"simulation-{slug(service, 30)}-{secrets.token_hex(3)}",
            "namespace": namespace,
            "labels": {SIMULATION_LABEL: "true", f"{SIMULATION_LABEL}-mode": mode},
        },
        "spec": spec,
    }


def live_warning(incident: Incident, runbooks: Iterable[Obj]) -> list[str]:
    """What a live drill would do, said before it is opened."""
    fitting = [c for c in candidates(incident, runbooks) if c.fits]
    lines = ["A live drill is handled like a real incident:"]
    if incident.spec.runbook_ref is not None:
        lines.append(f"  - runbook {incident.spec.runbook_ref.name} runs against the cluster")
    for c in fitting[:5]:
        mode = "at once (automatic)" if c.automatic else "after an approval"
        lines.append(f"  - runbook {c.name} matches and would run {mode}: {'; '.join(c.steps)}")
    if not fitting and incident.spec.runbook_ref is None:
        lines.append("  - no runbook of the namespace matches: nothing would act")
    lines.append("  - its escalation policy pages real people, over real channels")
    return lines


def parse_labels(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise Refused(f"--label {pair!r}: expected key=value")
        out[key] = value
    return out
