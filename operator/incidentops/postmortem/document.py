"""The postmortem as a template writes it, from what the incident recorded. Pure.

Blameless by construction: it says what happened, what the system and the process did, and what
to change; it names people only as the roles they played (who acknowledged, who resolved), never
as a cause. Sections no record can fill (the five whys past the first) are questions for the
review. A model's draft, when there is one, replaces the narrative sections and is listed in
spec.drafted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from incidentops.api.v1alpha1.common import format_time
from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentStatus, current_severity
from incidentops.api.v1alpha1.postmortem import (
    ActionItem,
    ActionTaken,
    Impact,
    Peak,
    PostmortemSpec,
    Priority,
    RemediationSummary,
    ResponseMetrics,
    TimelineItem,
)

# REQUIREMENTS.md: first response and acknowledgement targets, by severity (minutes).
FIRST_RESPONSE = {"SEV1": 5, "SEV2": 15, "SEV3": 30, "SEV4": 60, "SEV5": 480}
PRIORITY_OF: dict[str, Priority] = {"SEV1": "P1", "SEV2": "P2", "SEV3": "P3", "SEV4": "P4", "SEV5": "P4"}
DUE_IN = {"P1": 7, "P2": 14, "P3": 30, "P4": 60}


@dataclass(frozen=True)
class Narrative:
    """The sections a model drafts; empty fields keep the template's."""

    summary: str = ""
    root_cause: str = ""
    contributing_factors: list[str] = field(default_factory=list)
    five_whys: list[str] = field(default_factory=list)
    what_went_well: list[str] = field(default_factory=list)
    what_could_improve: list[str] = field(default_factory=list)
    action_items: list[str] = field(default_factory=list)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _image_changes(lines: str | None) -> list[str]:
    return [line.strip() for line in (lines or "").splitlines() if ".image:" in line][:5]


def remediation_of(status: IncidentStatus) -> RemediationSummary:
    run = status.remediation
    if run is None or run.runbook is None:
        return RemediationSummary(outcome="no runbook ran" + (f": {run.reason}" if run and run.reason else ""))
    actions = []
    for step in run.steps:
        said = "; ".join(_image_changes(step.dry_run_diff)) or step.output or step.reason
        if step.approved_by:
            said = f"approved by {step.approved_by}" + (f": {said}" if said else "")
        actions.append(
            ActionTaken(
                step=step.name,
                action=str(step.action),
                state=str(step.state),
                target=step.target,
                message=(said or "")[:1024] or None,
            )
        )
    verified = run.verified
    outcome = f"runbook {run.runbook} {str(run.phase).lower()}"
    if verified:
        outcome += ": verification passed" + (f" ({run.reason})" if run.reason else "")
    elif run.failure:
        outcome += f": {run.failure}" + (f" ({run.reason})" if run.reason else "")
    ran = [s for s in run.steps if s.started_at is not None]
    automatic = all(s.automatic for s in ran) if ran else None  # no human approved any step that ran
    return RemediationSummary(
        runbook=run.runbook, phase=str(run.phase), verified=verified, automatic=automatic, actions=actions,
        outcome=outcome[:1024],
    )  # fmt: skip


def _users(status: IncidentStatus) -> str | None:
    signals = status.alerts.signals
    if signals is None:
        return None
    parts = []
    if signals.users_affected is not None:
        parts.append(f"up to {signals.users_affected * 100:.3g}% of users affected")
    if signals.error_ratio is not None:
        parts.append(f"up to {signals.error_ratio * 100:.3g}% of requests failing")
    if signals.latency_multiple is not None:
        parts.append(f"latency up to {signals.latency_multiple:g}x normal")
    return ", ".join(parts) or None


def _peaks_said(peaks: list[Peak]) -> str:
    shown = [f"{p.source} peaked at {p.peak:.4g}" for p in peaks if p.peak is not None]
    return "; ".join(shown)


def build(
    namespace: str,
    name: str,
    spec: IncidentSpec,
    status: IncidentStatus,
    peaks: list[Peak],
    now: datetime,
    narrative: Narrative | None = None,
    drafted_by: str | None = None,
) -> PostmortemSpec:
    severity = str(current_severity(spec, status))
    metrics = status.metrics
    service = spec.service or namespace
    remediation = remediation_of(status)
    triage = status.triage
    resolution = spec.resolution
    start = status.started_at or status.detected_at
    duration = (status.resolved_at - start).total_seconds() if status.resolved_at and start else None
    impact = Impact(
        services=sorted({s for s in [spec.service, *(status.cascade.path if status.cascade else [])] if s})[:50],
        started_at=status.started_at,
        detected_at=status.detected_at,
        resolved_at=status.resolved_at,
        duration_seconds=round(duration, 3) if duration is not None else None,
        alert_count=status.alerts.count,
        users=_users(status),
        peaks=peaks[:10],
    )
    how_resolved = (
        f"resolved by {status.resolved_by}" + (f": {resolution.summary}" if resolution and resolution.summary else "")
        if status.resolved_by and status.resolved_by != "auto-resolve"
        else "resolved when every alert cleared"
    )
    ack = (
        f" acknowledged after {_duration(metrics.time_to_acknowledge_seconds)};"
        if metrics.time_to_acknowledge_seconds is not None
        else " never acknowledged;"
    )
    detected = format_time(status.detected_at) if status.detected_at else "unknown"
    summary = (
        f"{severity} incident on {service}: {spec.title}. Detected at {detected} "
        f"from {status.alerts.count} alert(s);{ack} {remediation.outcome}; {how_resolved} after "
        f"{_duration(metrics.time_to_resolve_seconds)}."
    )
    peaks_said = _peaks_said(peaks)
    if peaks_said:
        summary += f" {peaks_said}."
    root_cause = ""
    if resolution and resolution.root_cause:
        root_cause = resolution.root_cause
    elif triage and triage.llm and triage.llm.answer and triage.llm.answer.suspected_cause:
        root_cause = f"Suspected by triage ({triage.llm.model}): {triage.llm.answer.suspected_cause}"
    else:
        root_cause = "To be determined in the review."
    factors: list[str] = []
    if triage is not None and triage.category:
        factors.append(f"Classified as {triage.category} by {triage.source} triage: {(triage.reasoning or '')[:300]}")
    if status.cascade and status.cascade.root:
        factors.append(
            f"A symptom of incident {status.cascade.root} in upstream service {status.cascade.root_service}."
        )
    changes = [c for a in remediation.actions if a.action == "rollback" for c in _image_changes(a.message)]
    for change in changes:
        factors.append(f"A release preceded the alerts; the rollback undid it ({change}).")
    first = (triage.reasoning or spec.title) if triage else spec.title
    whys = [
        f"Why did {service} fail? {first[:400]}",
        "Why did that happen? (to answer in the review)",
        "Why was it not prevented? (to answer in the review)",
        "Why was it not caught earlier? (to answer in the review)",
        "Why did the safeguards not stop it? (to answer in the review)",
    ]
    went_well, improve, items = _lessons(spec, status, remediation, severity)
    owner = spec.assignee or status.acknowledged_by or None
    priority = PRIORITY_OF.get(severity, "P3")
    resolved_day = (status.resolved_at or now).date()
    action_items = [
        ActionItem(title=title[:512], owner=owner, priority=priority,
                   due=str(resolved_day + timedelta(days=DUE_IN[priority])))
        for title in items
    ]  # fmt: skip
    document = PostmortemSpec(
        incident_ref={"name": name},
        title=f"Postmortem: {spec.title}"[:512],
        severity=severity,
        category=triage.category if triage and triage.category else spec.category,
        summary=summary[:4096],
        impact=impact,
        timeline=[TimelineItem(at=e.at, type=e.type, message=e.message, actor=e.actor) for e in status.timeline[-120:]],
        root_cause=root_cause[:4096],
        contributing_factors=[f[:1024] for f in factors][:20],
        five_whys=whys,
        remediation=remediation,
        what_went_well=went_well,
        what_could_improve=improve,
        action_items=action_items,
        metrics=ResponseMetrics(
            time_to_detect_seconds=metrics.time_to_detect_seconds,
            time_to_acknowledge_seconds=metrics.time_to_acknowledge_seconds,
            time_to_mitigate_seconds=metrics.time_to_mitigate_seconds,
            time_to_resolve_seconds=metrics.time_to_resolve_seconds,
        ),
    )
    if narrative is None:
        return document
    return _drafted(document, narrative, drafted_by, owner, priority, resolved_day)


def _lessons(
    spec: IncidentSpec, status: IncidentStatus, remediation: RemediationSummary, severity: str
) -> tuple[list[str], list[str], list[str]]:
    """What went well, what could improve, and the action items the record itself suggests."""
    well: list[str] = []
    improve: list[str] = []
    items: list[str] = []
    metrics = status.metrics
    target = FIRST_RESPONSE.get(severity, 30) * 60
    if metrics.time_to_detect_seconds is not None and metrics.time_to_detect_seconds <= 120:
        well.append(f"Detected {_duration(metrics.time_to_detect_seconds)} after the first alert began.")
    tta = metrics.time_to_acknowledge_seconds
    if tta is not None and tta <= target:
        well.append(f"Acknowledged in {_duration(tta)}, within the {severity} target of {target // 60} minutes.")
    elif tta is not None:
        improve.append(f"Acknowledgement took {_duration(tta)}, over the {severity} target of {target // 60} minutes.")
        items.append("Review the escalation policy and on-call schedule so that the first page is answered in time.")
    else:
        improve.append("Nobody acknowledged the incident.")
    if remediation.verified:
        well.append(f"Remediation ({remediation.runbook}) was verified before the incident was called mitigated.")
    elif remediation.runbook and remediation.phase in ("Failed", "Stopped"):
        improve.append(f"Runbook {remediation.runbook} did not mitigate the incident ({remediation.outcome}).")
        items.append(f"Find out why runbook {remediation.runbook} did not work and fix it or its verification.")
    elif remediation.runbook and remediation.phase == "Done":
        improve.append(f"Runbook {remediation.runbook} has no verify query: nothing proved that it worked.")
        items.append(f"Add a verify query to runbook {remediation.runbook} (the metric that must clear after it).")
    elif remediation.runbook is None:
        improve.append("No runbook matched this incident: the response was manual.")
        names = ", ".join(status.alerts.names[:3]) or spec.title
        items.append(f"Write a runbook for {names[:200]} (or decide that none should exist).")
    if any(a.action == "rollback" and a.state == "Succeeded" for a in remediation.actions):
        items.append(f"Find out how the failing release of {spec.service or 'the service'} reached production, and "
                     "add a check (a canary, a readiness gate) that would stop the next one.")  # fmt: skip
    esc = status.escalation
    failed = [d for d in esc.deliveries if d.state == "Failed"] if esc else []
    if failed:
        improve.append(
            f"{len(failed)} notification(s) failed, e.g. {failed[-1].channel}: {failed[-1].message or ''}"[:1024]
        )
        items.append(f"Repair the {failed[-1].channel} channel of escalation policy {esc.policy if esc else ''}.")
    elif esc and any(d.state == "Delivered" for d in esc.deliveries):
        well.append("Every page sent was delivered.")
    if not items:
        items.append("Review this postmortem with the team and record what to change.")
    if not improve:
        improve.append("No gap in the response shows in the record; the review adds what it finds.")
    return well[:20], improve[:20], items[:10]


def _drafted(
    document: PostmortemSpec,
    narrative: Narrative,
    drafted_by: str | None,
    owner: str | None,
    priority: Priority,
    day: object,
) -> PostmortemSpec:
    drafted: list[str] = []
    update: dict[str, object] = {}
    for field_name, key in (
        ("summary", "summary"),
        ("root_cause", "rootCause"),
        ("contributing_factors", "contributingFactors"),
        ("five_whys", "fiveWhys"),
        ("what_went_well", "whatWentWell"),
        ("what_could_improve", "whatCouldImprove"),
    ):
        value = getattr(narrative, field_name)
        if value:
            update[field_name] = value
            drafted.append(key)
    if narrative.action_items:
        extra = [
            ActionItem(title=t[:512], owner=owner, priority=priority,
                       due=document.action_items[0].due if document.action_items else None)
            for t in narrative.action_items[:10]
        ]  # fmt: skip
        update["action_items"] = [*document.action_items, *extra][:50]
        drafted.append("actionItems")
    if not drafted:
        return document
    return document.model_copy(update={**update, "drafted": drafted, "drafted_by": drafted_by})
