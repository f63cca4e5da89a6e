"""A Postmortem as Markdown a team pastes into its wiki (`kubectl incident postmortem NAME`). Pure.

Every text comes from fields that people and alerts write (an alert's summary becomes the title,
a responder's note a timeline message), so none may change the document's structure: table cells
have their pipes, backslashes and line breaks escaped and stay on one row; text that starts a line
cannot open a heading, a quote, a list, a code block or raw HTML; a query is a code span on one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from incidentops.api.v1alpha1.postmortem import PostmortemSpec

NONE_RECORDED = "_None recorded._"
# The sections a model may draft (spec.drafted), by the heading they appear under.
DRAFTED_KEY = {
    "Summary": "summary",
    "Root cause": "rootCause",
    "Contributing factors": "contributingFactors",
    "Five whys": "fiveWhys",
    "What went well": "whatWentWell",
    "What could improve": "whatCouldImprove",
    "Action items": "actionItems",
}
SECTIONS = (
    "Summary",
    "Impact",
    "Timeline",
    "Root cause",
    "Contributing factors",
    "Five whys",
    "Remediation",
    "What went well",
    "What could improve",
    "Action items",
    "Metrics",
)
_BLOCK_MARKERS = frozenset("#>+*-=_~`|[<")
_ORDERED_MARKER = re.compile(r"(\d{1,9})([.)])")


def human_duration(seconds: float | None) -> str:
    """Two units at most, as people say them: "45s", "6m12s", "1h5m", "2d3h"; "unknown" without a value."""
    if seconds is None:
        return "unknown"
    whole = round(seconds)
    for unit, size, sub_unit, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if whole >= size:
            rest = (whole % size) // sub_size
            return f"{whole // size}{unit}" + (f"{rest}{sub_unit}" if rest else "")
    return f"{whole}s"


def _utc(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "unknown"


def _line_start(line: str) -> str:
    """One line of text that cannot open a block: a heading, a quote, a list, a fence, a table, raw HTML."""
    line = line.lstrip()  # four spaces would open a code block
    ordered = _ORDERED_MARKER.match(line)
    if ordered:
        return f"{ordered.group(1)}\\{ordered.group(2)}{line[ordered.end() :]}"
    if line[:1] in _BLOCK_MARKERS:
        return "\\" + line
    return line


def _defang(text: str) -> str:
    """No raw HTML, no link or image (a tracking pixel, a javascript: link), no table row: alert text is anyone's."""
    text = text.replace("\\", "\\\\")  # first: an escape written in the text must not undo ours
    return text.replace("<", "\\<").replace("[", "\\[").replace("]", "\\]").replace("|", "\\|")


def inline(text: str | None) -> str:
    """Text on one line (a list item, a header value): whitespace collapsed, nothing that opens a block or HTML."""
    flat = " ".join((text or "").split())
    return _line_start(_defang(flat))


def prose(text: str | None) -> str:
    """Paragraphs as written (blank lines kept), each line unable to open a block or raw HTML."""
    lines: list[str] = []
    for raw in (text or "").splitlines():
        line = _line_start(_defang(raw)).rstrip()
        if line or (lines and lines[-1]):
            lines.append(line)
    return "\n".join(lines).strip("\n")


def cell(text: object) -> str:
    """A table cell: backslashes and pipes escaped, line breaks as <br>, so the row stays one row."""
    if text is None or text == "":
        return "-"
    escaped = _defang(str(text))
    parts = [part.strip() for part in escaped.splitlines()]
    return "<br>".join(part for part in parts if part) or "-"


def code(text: str | None) -> str:
    """A code span on one line, fenced with more backticks than the text holds in a row."""
    flat = " ".join((text or "").split())
    if not flat:
        return "_(none)_"
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {flat} " if flat.startswith("`") or flat.endswith("`") else flat
    return f"{fence}{padded}{fence}"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A GitHub-flavoured Markdown table; every cell escaped."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return lines


def _bullets(items: Iterable[str]) -> list[str]:
    return [f"- {inline(item)}" for item in items if item.strip()]


def _numbered(items: Iterable[str]) -> list[str]:
    kept = [item for item in items if item.strip()]
    return [f"{index}. {inline(item)}" for index, item in enumerate(kept, 1)]


def _yes_no(value: bool | None, unknown: str) -> str:
    return unknown if value is None else ("yes" if value else "no")


def _header(meta: Mapping[str, Any], spec: PostmortemSpec) -> list[str]:
    impact = spec.impact
    namespace = str(meta.get("namespace") or "")
    incident = f"{namespace}/{spec.incident_ref.name}" if namespace else spec.incident_ref.name
    rows = [
        ("Incident", inline(incident)),
        ("Postmortem", inline(str(meta.get("name") or spec.incident_ref.name))),
        ("Severity", inline(spec.severity)),
        ("Category", inline(spec.category) if spec.category else "unknown"),
        ("State", inline(spec.state)),
        ("Services", ", ".join(inline(s) for s in impact.services) if impact.services else "none recorded"),
        ("Duration", human_duration(impact.duration_seconds)),
        ("Started", _utc(impact.started_at)),
        ("Detected", _utc(impact.detected_at)),
        ("Resolved", _utc(impact.resolved_at)),
    ]
    return [f"- **{label}:** {value}" for label, value in rows]


def _impact(spec: PostmortemSpec) -> list[str]:
    impact = spec.impact
    lines = [
        f"- **Services:** {', '.join(inline(s) for s in impact.services) if impact.services else 'none recorded'}",
        f"- **Duration:** {human_duration(impact.duration_seconds)}",
        f"- **Alerts:** {impact.alert_count}",
        f"- **Users:** {inline(impact.users) if impact.users else 'not recorded'}",
    ]
    if not impact.peaks:
        return [*lines, "", "Peak values: _none recorded._"]
    lines += ["", "Peak values over the incident's window:", ""]
    for peak in impact.peaks:
        value = (
            f"peak **{peak.peak:.4g}**" if peak.peak is not None else f"no value ({inline(peak.error or 'unknown')})"
        )
        lines.append(f"- {inline(peak.source)}: {value}, query {code(peak.query)}")
    return lines


def _timeline(spec: PostmortemSpec) -> list[str]:
    if not spec.timeline:
        return [NONE_RECORDED]
    rows = [(_utc(item.at).removesuffix(" UTC"), item.type, item.message, item.actor) for item in spec.timeline]
    return table(("Time (UTC)", "Event", "What happened", "Who"), rows)


def _remediation(spec: PostmortemSpec) -> list[str]:
    r = spec.remediation
    if r.runbook is None and not r.actions and not r.outcome:
        return [NONE_RECORDED]
    lines = [
        f"- **Runbook:** {inline(r.runbook) if r.runbook else 'none'}",
        f"- **Outcome:** {inline(r.outcome) if r.outcome else 'not recorded'}",
        f"- **Verified:** {_yes_no(r.verified, 'no (verification did not run)')}",
        f"- **Automatic:** {_yes_no(r.automatic, 'no steps ran')}",
        "",
    ]
    if not r.actions:
        return [*lines, "Actions: _none recorded._"]
    rows = [(a.step, a.action, a.state, a.target, a.message) for a in r.actions]
    return lines + table(("Step", "Action", "State", "Target", "What it changed"), rows)


def _action_items(spec: PostmortemSpec) -> list[str]:
    if not spec.action_items:
        return [NONE_RECORDED]
    rows = [(i.title, i.owner, i.priority, i.due, i.status) for i in spec.action_items]
    return table(("Title", "Owner", "Priority", "Due", "Status"), rows)


def _metrics(spec: PostmortemSpec) -> list[str]:
    m = spec.metrics
    return [
        f"- **Time to detect:** {human_duration(m.time_to_detect_seconds)}",
        f"- **Time to acknowledge:** {human_duration(m.time_to_acknowledge_seconds)}",
        f"- **Time to mitigate:** {human_duration(m.time_to_mitigate_seconds)}",
        f"- **Time to resolve:** {human_duration(m.time_to_resolve_seconds)}",
    ]


def _or_none(lines: list[str]) -> list[str]:
    return lines or [NONE_RECORDED]


def render(meta: Mapping[str, Any], spec: PostmortemSpec) -> str:
    """The whole document: title, header, then SECTIONS in order; drafted sections marked for review."""
    bodies: dict[str, list[str]] = {
        "Summary": _or_none([prose(spec.summary)] if spec.summary.strip() else []),
        "Impact": _impact(spec),
        "Timeline": _timeline(spec),
        "Root cause": _or_none([prose(spec.root_cause)] if spec.root_cause.strip() else []),
        "Contributing factors": _or_none(_bullets(spec.contributing_factors)),
        "Five whys": _or_none(_numbered(spec.five_whys)),
        "Remediation": _remediation(spec),
        "What went well": _or_none(_bullets(spec.what_went_well)),
        "What could improve": _or_none(_bullets(spec.what_could_improve)),
        "Action items": _action_items(spec),
        "Metrics": _metrics(spec),
    }
    drafted = set(spec.drafted)
    by = inline(spec.drafted_by) if spec.drafted_by else "a language model"
    title = re.sub(r"(#+)$", r"\\\1", inline(spec.title))  # a trailing # would close the heading
    out = [f"# {title or 'Postmortem'}", "", *_header(meta, spec)]
    for heading in SECTIONS:
        out += ["", f"## {heading}", ""]
        if DRAFTED_KEY.get(heading) in drafted:
            out += [f"> Drafted by {by}: review before publishing.", ""]
        out += bodies[heading]
    return "\n".join(out) + "\n"
