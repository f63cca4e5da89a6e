"""Rendering for the plugin: kubectl-style ages and tables, csv/json summaries, describe output.

Everything takes `now` as an argument and returns text, so output is tested without a clock,
a terminal or a cluster.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from rich.text import Text

from incidentops.api.v1alpha1.common import format_time
from incidentops.api.v1alpha1.incident import AlertSummary, IncidentSpec, IncidentStatus, current_severity
from incidentops.cli.selection import IncidentSummary
from incidentops.cli.triage_format import cascade_lines, postmortem_lines, triage_lines

NONE = "<none>"
MAX_ALERT_LABELS = 4
LIST_COLUMNS = ("NAME", "SEVERITY", "STATE", "SERVICE", "ALERTS", "AGE")
SUMMARY_FIELDS = ("namespace", "name", "severity", "state", "service", "alerts", "age", "created", "title")
SEVERITY_STYLE = {"SEV1": "bold red", "SEV2": "red", "SEV3": "yellow", "SEV4": "cyan", "SEV5": "dim"}
STATE_STYLE = {"Detected": "bold red", "Acknowledged": "yellow", "Resolved": "green", "Closed": "dim"}


def format_age(seconds: float) -> str:
    """kubectl's HumanDuration: precise when young, coarser with age ("45s", "3m20s", "5h", "4d")."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"  # clocks a second apart still mean "now"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        return f"{minutes}m" + (f"{whole % 60}s" if whole % 60 else "")
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h" + (f"{minutes % 60}m" if minutes % 60 else "")
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d" + (f"{hours % 24}h" if hours % 24 else "")
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if days < 365 * 8:
        return f"{years}y" + (f"{days % 365}d" if days % 365 else "")
    return f"{years}y"


def format_duration(seconds: float | None) -> str:
    """A measured duration (MTTA, MTTR) with two units at most: "4.2s", "1m23s", "2h5m", "3d4h"."""
    if seconds is None:
        return NONE
    if seconds < 60:
        return f"{seconds:.1f}s".replace(".0s", "s")
    whole = int(seconds)
    for unit, size, sub_unit, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if whole >= size:
            rest = (whole % size) // sub_size
            return f"{whole // size}{unit}" + (f"{rest}{sub_unit}" if rest else "")
    return f"{whole}s"  # pragma: no cover - the loop always returns for seconds >= 60


def age_of(created: datetime | None, now: datetime) -> str:
    """AGE column text; unknown creation time shows as kubectl shows it."""
    return format_age((now - created).total_seconds()) if created else "<unknown>"


def _since(value: datetime | None, now: datetime) -> str:
    """A time and how long ago; a time ahead of this machine's clock says so rather than <invalid>."""
    if value is None:
        return NONE
    ahead = (value - now).total_seconds()
    if ahead > 1:
        return f"{format_time(value)} ({format_age(ahead)} ahead of this clock)"
    return f"{format_time(value)} ({age_of(value, now)} ago)"


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    style: Callable[[str, str], str | None] = lambda _header, _cell: None,
    indent: str = "",
) -> Text:
    """Left-aligned columns three spaces apart, like `kubectl get`; `style(header, cell)` colours cells.

    Rich drops the colours when stdout is not a terminal, so piped output is plain text.
    """
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    text = Text()
    for index, row in enumerate([headers, *rows]):
        text.append(indent)
        for column, (header, cell, width) in enumerate(zip(headers, row, widths, strict=True)):
            last = column == len(headers) - 1
            cell_text = str(cell) if last else str(cell).ljust(width + 3)
            text.append(cell_text, style=("bold" if index == 0 else style(header, str(cell))) or "")
        text.append("\n")
    return text


def list_style(header: str, cell: str) -> str | None:
    """Severity and state in colour, so SEV1s and unacknowledged incidents stand out."""
    if header == "SEVERITY":
        return SEVERITY_STYLE.get(cell)
    if header == "STATE":
        return STATE_STYLE.get(cell)
    return None


def list_table(incidents: Sequence[IncidentSummary], now: datetime, *, all_namespaces: bool) -> Text:
    """The `list` table; with -A a NAMESPACE column comes first, as in `kubectl get -A`."""
    headers = (("NAMESPACE",) if all_namespaces else ()) + LIST_COLUMNS
    rows = [
        ((i.namespace,) if all_namespaces else ())
        + (i.name, i.severity, i.state, i.service or NONE, str(i.alerts), age_of(i.created, now))
        for i in incidents
    ]
    return render_table(headers, rows, style=list_style)


def summary_record(incident: IncidentSummary, now: datetime) -> dict[str, Any]:
    """One incident as the json/csv outputs show it (SUMMARY_FIELDS, in that order)."""
    return {
        "namespace": incident.namespace,
        "name": incident.name,
        "severity": incident.severity,
        "state": incident.state,
        "service": incident.service,
        "alerts": incident.alerts,
        "age": age_of(incident.created, now),
        "created": format_time(incident.created) if incident.created else None,
        "title": incident.title,
    }


def list_json(incidents: Sequence[IncidentSummary], now: datetime) -> str:
    """A JSON array of summaries, for jq and scripts; full objects come from `kubectl get -o json`."""
    return json.dumps([summary_record(i, now) for i in incidents], indent=2, ensure_ascii=False)


def list_csv(incidents: Sequence[IncidentSummary], now: datetime) -> str:
    """CSV with a header row, for spreadsheets and incident reviews."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for incident in incidents:
        writer.writerow(summary_record(incident, now))
    return buffer.getvalue()


def _field(label: str, value: object, width: int = 16) -> str:
    shown = NONE if value is None or value == "" else str(value)
    return f"{label + ':':<{width}}{shown}"


def _by(at: datetime | None, who: str | None, now: datetime) -> str:
    if at is None:
        return NONE
    return _since(at, now) + (f" by {who}" if who else "")


def timeline_rows(status: IncidentStatus) -> list[tuple[str, str, str, str]]:
    """(time, type, actor, message) per entry, oldest first; a folded entry shows its first...last span."""
    return [
        (
            format_time(e.at) + (f" … {format_time(e.last_at)[11:]}" if e.last_at else ""),
            e.type,
            e.actor or "-",
            e.message,
        )
        for e in status.timeline
    ]


def alert_line(alert: AlertSummary) -> str:
    """One alert for `describe`: its name, state, and the labels that tell it apart from its siblings."""
    shown = [
        f"{k}={v if len(v) <= 40 else v[:37] + '...'}" for k, v in sorted(alert.labels.items()) if k != "alertname"
    ]
    distinct = (
        " " + " ".join(shown[:MAX_ALERT_LABELS]) + (" ..." if len(shown) > MAX_ALERT_LABELS else "") if shown else ""
    )
    return f"  - {alert.name} [{alert.status}]{distinct}" + (f": {alert.summary}" if alert.summary else "")


def severity_text(spec: IncidentSpec, status: IncidentStatus) -> str:
    """The current severity and where it comes from."""
    current = current_severity(spec, status)
    if status.severity_source == "human":
        return f"{current} (set by a responder)"
    if current != spec.severity:
        return f"{current} (raised from {spec.severity} by its alerts)"
    return str(current)


def timeline_table(status: IncidentStatus, *, indent: str = "") -> Text:
    """The timeline as a table; empty text when there is none."""
    rows = timeline_rows(status)
    if not rows:
        return Text()
    return render_table(("TIME", "TYPE", "ACTOR", "MESSAGE"), rows, indent=indent)


def remediation_lines(status: IncidentStatus, now: datetime) -> list[str]:
    """Each step with its state, target, who decided, and the diff an approver reads."""
    r = status.remediation
    if r is None:
        return []
    confidence = f"{r.confidence:.0%}" if r.confidence is not None else NONE
    lines = [
        "Remediation:",
        f"  Runbook: {r.runbook or NONE}   Phase: {r.phase or NONE}   Confidence: {confidence}",
        f"  Reason: {r.reason or NONE}",
    ]
    if r.verification is not None:
        v = r.verification
        lines.append(f"  Verification: since {_since(v.started_at, now)}; {v.last_result or 'not checked yet'}")
    for step in r.steps:
        who = f"approved by {step.approved_by}" if step.approved_by else ("automatic" if step.automatic else "")
        head = f"  - {step.name} ({step.action}) {step.state}"
        extras = [x for x in (step.target, who, step.reason) if x]
        lines.append(head + (f"  [{'; '.join(extras)}]" if extras else ""))
        if step.output:
            lines.append(f"      {step.output.splitlines()[0][:200]}")
        if step.dry_run_diff:
            lines += [f"      | {line}" for line in step.dry_run_diff.splitlines()[:40]]
    return lines


def escalation_lines(status: IncidentStatus) -> list[str]:
    """The chain: the policy, the level reached, what is next, and every notification with its fate."""
    e = status.escalation
    if e is None:
        return []
    level = (f"{e.level}" + (f" ({e.level_name})" if e.level_name else "")) if e.level else NONE
    if e.next_escalation_at:
        nxt = f"level {e.next_level} at {format_time(e.next_escalation_at)}"
    else:
        nxt = f"none ({e.stopped})" if e.stopped else NONE
    lines = [
        "Escalation:",
        f"  Policy: {e.policy or NONE}   Level: {level}   Round: {e.round}   Next: {nxt}",
    ]
    if e.reason:
        lines.append(f"  Why: {e.reason}")
    for d in e.deliveries:
        when = format_time(d.at) if d.at else format_time(d.created_at) if d.created_at else NONE
        retry = f" next try {format_time(d.next_attempt_at)}" if d.state == "Pending" and d.next_attempt_at else ""
        said = f": {d.message}" if d.message else ""
        lines.append(
            f"  L{d.level} {d.event:<12} {d.channel:<10} {d.target or 'channel':<16} {d.state:<9} "
            f"x{d.attempts} {when}{retry}{said}"[:240]
        )
    return lines


def describe(
    meta: dict[str, Any], spec: IncidentSpec, status: IncidentStatus, now: datetime, *, has_status: bool
) -> Text:
    """`kubectl describe`-style text: identity, people and times, metrics, alerts, conditions, timeline."""
    created = meta.get("creationTimestamp")
    created_at = datetime.fromisoformat(created.replace("Z", "+00:00")) if isinstance(created, str) else None
    metrics = status.metrics
    alerts = status.alerts
    lines = [
        _field("Name", meta.get("name")),
        _field("Namespace", meta.get("namespace")),
        _field("Title", spec.title),
        _field("Severity", severity_text(spec, status)),
        _field("State", status.state if has_status else f"{status.state} (not yet seen by the operator)"),
        _field("Service", spec.service),
        _field("Category", spec.category),
        _field("Source", spec.source),
        _field("Assignee", spec.assignee or status.assignee),
        _field("Created", _since(created_at, now)),
        _field("Started", _since(status.started_at, now)),
        _field("Detected", _since(status.detected_at, now)),
        _field("Acknowledged", _by(status.acknowledged_at, status.acknowledged_by, now)),
        _field("Resolved", _by(status.resolved_at, status.resolved_by, now)),
    ]
    if spec.acknowledgement and status.acknowledged_at is None:
        lines.append(_field("Ack requested", f"by {spec.acknowledgement.by} (not yet recorded by the operator)"))
    if spec.resolution:
        lines.append(_field("Resolution", spec.resolution.summary or NONE))
        lines.append(_field("Root cause", spec.resolution.root_cause or NONE))
    if status.closed_at:
        lines.append(_field("Closed", _since(status.closed_at, now)))
    lines += [
        "Metrics:",
        "  " + _field("Time to detect", format_duration(metrics.time_to_detect_seconds), 22),
        "  " + _field("Time to acknowledge", format_duration(metrics.time_to_acknowledge_seconds), 22),
        "  " + _field("Time to mitigate", format_duration(metrics.time_to_mitigate_seconds), 22),
        "  " + _field("Time to resolve", format_duration(metrics.time_to_resolve_seconds), 22),
        "Alerts:",
        f"  Count: {alerts.count}   Firing: {alerts.firing}   Deliveries: {alerts.deliveries}",
        "  " + _field("First seen", _since(alerts.first_seen, now), 14),
        "  " + _field("Last seen", _since(alerts.last_seen, now), 14),
    ]
    lines += [alert_line(alert) for alert in alerts.recent]
    lines += triage_lines(status)
    lines += cascade_lines(status)
    lines += escalation_lines(status)
    lines += remediation_lines(status, now)
    lines += postmortem_lines(status)
    text = Text("\n".join(lines) + "\n")
    text.append("Conditions:\n")
    if status.conditions:
        rows = [(c.type, c.status, c.reason, format_time(c.last_transition_time), c.message) for c in status.conditions]
        text.append_text(render_table(("TYPE", "STATUS", "REASON", "LAST TRANSITION", "MESSAGE"), rows, indent="  "))
    else:
        text.append(f"  {NONE}\n")
    text.append("Timeline:\n")
    text.append_text(timeline_table(status, indent="  ") if status.timeline else Text(f"  {NONE}\n"))
    return text
