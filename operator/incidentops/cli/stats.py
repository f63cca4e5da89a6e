"""`kubectl incident stats`: how the response went over a window, from the Incidents and Postmortems. Pure.

Works on raw objects as the apiserver returns them, reading every field defensively (one odd
object never breaks the figures), and takes `now`, so every figure is tested by hand without a
cluster or a clock. An incident belongs to the window by when it was detected (status.detectedAt,
else its creation). Simulations (spec.simulation) are left out and counted as such.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.text import Text

from incidentops.api.v1alpha1.common import Severity, format_time
from incidentops.api.v1alpha1.postmortem import OPEN_ACTION_ITEMS
from incidentops.cli.format import format_duration, render_table

Obj = Mapping[str, Any]
UNKNOWN = "unknown"
ALL = "all"
SEVERITIES = tuple(s.value for s in Severity)
# The phases of the response, with the status.metrics field each is measured by.
PHASES = (
    ("acknowledge", "timeToAcknowledgeSeconds"),
    ("mitigate", "timeToMitigateSeconds"),
    ("resolve", "timeToResolveSeconds"),
)


@dataclass(frozen=True)
class Timing:
    """One phase's durations over a group of incidents: how many had one, their mean and median."""

    count: int
    mean: float | None
    median: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Timing:
        if not values:
            return cls(0, None, None)
        return cls(len(values), statistics.fmean(values), statistics.median(values))

    def wire(self) -> dict[str, Any]:
        return {"count": self.count, "meanSeconds": _round(self.mean, 3), "medianSeconds": _round(self.median, 3)}


@dataclass(frozen=True)
class Stats:
    """Every figure of `stats`; rates are None when nothing could be counted (no incidents, none required)."""

    start: datetime
    end: datetime
    incidents: int
    simulations_left_out: int
    by_severity: dict[str, int]
    by_category: dict[str, int]
    timings: dict[str, dict[str, Timing]]  # severity (or "all") -> phase -> timing
    escalated: int
    auto_remediated: int
    postmortems_required: int
    postmortems_published: int
    open_action_items: int
    postmortems_counted: int

    @property
    def escalation_rate(self) -> float | None:
        return _share(self.escalated, self.incidents)

    @property
    def auto_remediation_rate(self) -> float | None:
        return _share(self.auto_remediated, self.incidents)

    @property
    def postmortem_completion(self) -> float | None:
        return _share(self.postmortems_published, self.postmortems_required)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _round(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def detected_at(obj: Obj) -> datetime | None:
    """When the incident was detected: status.detectedAt, else its creation (the operator has not seen it)."""
    return _time(_map(obj.get("status")).get("detectedAt")) or _time(_map(obj.get("metadata")).get("creationTimestamp"))


def severity_of(obj: Obj) -> str:
    """The current severity (status, where alerts or a human may have changed it), else spec's."""
    status, spec = _map(obj.get("status")), _map(obj.get("spec"))
    value = status.get("severity") or spec.get("severity")
    return str(value) if value in SEVERITIES else UNKNOWN


def category_of(obj: Obj) -> str:
    """Triage's category, else spec.category, else unknown."""
    triage = _map(_map(obj.get("status")).get("triage"))
    value = triage.get("category") or _map(obj.get("spec")).get("category")
    return str(value) if isinstance(value, str) and value else UNKNOWN


def escalated(obj: Obj) -> bool:
    """Whether escalation reached level 2 or higher (the first level did not answer, or someone asked)."""
    level = _map(_map(obj.get("status")).get("escalation")).get("level")
    return isinstance(level, int) and not isinstance(level, bool) and level >= 2


def auto_remediated(obj: Obj) -> bool:
    """Whether a runbook mitigated the incident with no human's approval: the run ended Done or Verified, and
    every step that ran was automatic (a rollback a human approved, with an automatic wait after it, is not)."""
    remediation = _map(_map(obj.get("status")).get("remediation"))
    steps = [s for s in remediation.get("steps") or [] if isinstance(s, Mapping)]
    ran = [s for s in steps if s.get("startedAt") or s.get("state") in _RAN]
    return (
        remediation.get("phase") in ("Done", "Verified") and bool(ran) and all(s.get("automatic") is True for s in ran)
    )


_RAN = frozenset({"Running", "Succeeded", "Failed", "RolledBack"})


def open_items(postmortem: Obj) -> int:
    """status.openActionItems; before the operator has counted, the spec's items Open or InProgress."""
    status = _map(postmortem.get("status"))
    counted = status.get("openActionItems")
    if isinstance(counted, int) and not isinstance(counted, bool):
        return counted
    items = [i for i in _map(postmortem.get("spec")).get("actionItems") or [] if isinstance(i, Mapping)]
    return sum(1 for i in items if i.get("status", "Open") in OPEN_ACTION_ITEMS)


def _key(obj: Obj) -> tuple[str, str]:
    meta = _map(obj.get("metadata"))
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def _postmortem_of(incident: Obj, postmortems: Mapping[tuple[str, str], Obj]) -> Obj | None:
    namespace, name = _key(incident)
    link = _map(_map(incident.get("status")).get("postmortem"))
    return postmortems.get((namespace, str(link.get("name") or name)))


def _published(incident: Obj, postmortem: Obj | None) -> bool:
    """The document's own state when it was read, else the state the incident mirrored."""
    if postmortem is not None:
        return _map(postmortem.get("spec")).get("state") == "Published"
    return _map(_map(incident.get("status")).get("postmortem")).get("state") == "Published"


def _timings(incidents: Iterable[Obj]) -> dict[str, Timing]:
    chosen = list(incidents)
    out: dict[str, Timing] = {}
    for phase, field in PHASES:
        values = [
            v for i in chosen if (v := _seconds(_map(_map(i.get("status")).get("metrics")).get(field))) is not None
        ]
        out[phase] = Timing.of(values)
    return out


def compute(incidents: Sequence[Obj], postmortems: Sequence[Obj], now: datetime, since: timedelta) -> Stats:
    """The figures over the incidents detected in [now - since, now] (a little ahead of now counts too).

    Open action items count the Postmortems of those incidents, and Postmortems whose incident is gone
    (they outlive it) when their impact.detectedAt is in the window.
    """
    start = now - since
    in_window = [i for i in incidents if (at := detected_at(i)) is not None and at >= start]
    real = [i for i in in_window if _map(i.get("spec")).get("simulation") is None]
    documents = {_key(p): p for p in postmortems}

    by_severity = dict.fromkeys(SEVERITIES, 0)
    by_severity.update(Counter(severity_of(i) for i in real))
    by_category = dict(sorted(Counter(category_of(i) for i in real).items()))
    timings = {s: _timings(i for i in real if severity_of(i) == s) for s in by_severity}
    timings[ALL] = _timings(real)

    required = [i for i in real if _map(_map(i.get("status")).get("postmortem")).get("required") is True]
    published = sum(1 for i in required if _published(i, _postmortem_of(i, documents)))

    counted: dict[tuple[str, str], Obj] = {}
    for incident in real:
        document = _postmortem_of(incident, documents)
        if document is not None:
            counted[_key(document)] = document
    known = {_key(i) for i in incidents}
    referenced = {_key(d) for i in incidents if (d := _postmortem_of(i, documents)) is not None}
    for key, document in documents.items():
        incident_key = (key[0], str(_map(_map(document.get("spec")).get("incidentRef")).get("name") or key[1]))
        gone = incident_key not in known and key not in referenced
        at = _time(_map(_map(document.get("spec")).get("impact")).get("detectedAt"))
        if gone and at is not None and at >= start:
            counted[key] = document

    return Stats(
        start=start,
        end=now,
        incidents=len(real),
        simulations_left_out=len(in_window) - len(real),
        by_severity=by_severity,
        by_category=by_category,
        timings=timings,
        escalated=sum(1 for i in real if escalated(i)),
        auto_remediated=sum(1 for i in real if auto_remediated(i)),
        postmortems_required=len(required),
        postmortems_published=published,
        open_action_items=sum(open_items(d) for d in counted.values()),
        postmortems_counted=len(counted),
    )


def stats_record(stats: Stats, namespace: str | None) -> dict[str, Any]:
    """The stable JSON object of `stats -o json` (namespace null: every namespace)."""
    return {
        "namespace": namespace,
        "window": {
            "from": format_time(stats.start),
            "to": format_time(stats.end),
            "seconds": (stats.end - stats.start).total_seconds(),
        },
        "incidents": stats.incidents,
        "simulationsLeftOut": stats.simulations_left_out,
        "bySeverity": stats.by_severity,
        "byCategory": stats.by_category,
        "responseTimes": {
            group: {phase: timing.wire() for phase, timing in phases.items()} for group, phases in stats.timings.items()
        },
        "escalation": {"reachedLevel2": stats.escalated, "rate": _round(stats.escalation_rate, 4)},
        "autoRemediation": {"remediated": stats.auto_remediated, "rate": _round(stats.auto_remediation_rate, 4)},
        "postmortems": {
            "required": stats.postmortems_required,
            "published": stats.postmortems_published,
            "completion": _round(stats.postmortem_completion, 4),
        },
        "openActionItems": stats.open_action_items,
        "postmortemsCounted": stats.postmortems_counted,
    }


def stats_json(stats: Stats, namespace: str | None) -> str:
    return json.dumps(stats_record(stats, namespace), indent=2, ensure_ascii=False)


def _mean_median(timing: Timing) -> str:
    if timing.count == 0:
        return "-"
    return f"{format_duration(timing.mean)} / {format_duration(timing.median)}"


def _postmortems(count: int) -> str:
    return f"{count} postmortem{'s' if count != 1 else ''}"


def _rate(part: int, whole: int, rate: float | None, of: str = "") -> str:
    share = f" ({rate:.0%})" if rate is not None else ""
    return f"{part} of {whole}{of}{share}"


def stats_table(stats: Stats, namespace: str | None, since: str) -> Text:
    """For people: counts and response times by severity, categories, then the rates."""
    where = f'in namespace "{namespace}"' if namespace else "in all namespaces"
    left_out = stats.simulations_left_out
    text = Text(
        f"Incidents {where} detected in the last {since} (since {format_time(stats.start)}): {stats.incidents}"
        f" ({left_out} simulation{'s' if left_out != 1 else ''} left out)\n\n"
    )
    rows = [
        (group, str(stats.by_severity.get(group, stats.incidents)), *(_mean_median(t) for t in phases.values()))
        for group, phases in stats.timings.items()
    ]
    headers = ("SEVERITY", "INCIDENTS", "MTTA (MEAN / MEDIAN)", "MTTM (MEAN / MEDIAN)", "MTTR (MEAN / MEDIAN)")
    text.append_text(render_table(headers, rows))
    text.append("\n")
    categories = sorted(stats.by_category.items(), key=lambda kv: (-kv[1], kv[0]))
    if categories:
        text.append_text(render_table(("CATEGORY", "INCIDENTS"), [(c, str(n)) for c, n in categories]))
        text.append("\n")
    lines = [
        ("Escalated to level 2 or higher:", _rate(stats.escalated, stats.incidents, stats.escalation_rate)),
        ("Remediated automatically:", _rate(stats.auto_remediated, stats.incidents, stats.auto_remediation_rate)),
        (
            "Postmortems published:",
            _rate(stats.postmortems_published, stats.postmortems_required, stats.postmortem_completion, " required"),
        ),
        ("Open action items:", f"{stats.open_action_items} (in {_postmortems(stats.postmortems_counted)})"),
    ]
    width = max(len(label) for label, _ in lines) + 2
    text.append("".join(f"{label:<{width}}{value}\n" for label, value in lines))
    return text
