"""The triage, cascade and postmortem sections of `kubectl incident describe`: what was decided, by whom, why."""

from __future__ import annotations

from incidentops.api.v1alpha1.common import format_time
from incidentops.api.v1alpha1.incident import IncidentStatus

NONE = "<none>"


def _share(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else NONE


def triage_lines(status: IncidentStatus) -> list[str]:
    t = status.triage
    if t is None:
        return []
    lines = [
        "Triage:",
        f"  Source: {t.source or NONE}   Severity: {t.severity or NONE}   Category: {t.category or NONE}   "
        f"Runbook: {t.runbook or NONE}   Confidence: {_share(t.confidence)}",
    ]
    if t.reasoning:
        lines.append(f"  Reasoning: {t.reasoning[:600]}")
    if t.matching:
        lines.append(f"  Matching runbooks: {', '.join(t.matching)}")
    if t.rules is not None and t.source == "llm":
        r = t.rules
        lines.append(
            f"  Rules said: {r.severity or 'no signal'}, {r.category or NONE}, {r.runbook or 'no runbook'} "
            f"({_share(r.confidence)})"
        )
    llm = t.llm
    if llm is not None:
        took = f"{llm.seconds:.1f}s" if llm.seconds is not None else "running"
        lines.append(
            f"  Model: {llm.model or NONE}   State: {llm.state}   Took: {took}   Calls: {llm.calls}   "
            f"Tokens: {llm.tokens_in} in / {llm.tokens_out} out   Investigations: {llm.investigations}"
        )
        for call in llm.tool_calls:
            refused = f"  REFUSED: {call.refused}" if call.refused else ""
            args = f" {call.arguments}" if call.arguments and call.arguments != "{}" else ""
            lines.append(f"    tool {call.name}{args}: {call.bytes} bytes in {call.milliseconds} ms{refused}"[:240])
        if llm.answer is not None and llm.answer.suspected_cause:
            lines.append(f"  Suspected cause: {llm.answer.suspected_cause[:400]}")
        if llm.applied:
            lines.append(f"  Code applied: {llm.applied[:400]}")
        if llm.fallback:
            lines.append(f"  Fell back: {llm.fallback}: {llm.message or ''}"[:400])
        if llm.state == "Pending" and llm.hold_until:
            lines.append(f"  Remediation waits for the answer until {format_time(llm.hold_until)}")
    return lines


def cascade_lines(status: IncidentStatus) -> list[str]:
    c = status.cascade
    if c is None or not (c.root or c.depends_on):
        return []
    lines = ["Cascade:", f"  Depends on: {', '.join(c.depends_on) or NONE}"]
    if c.root:
        lines.append(f"  Symptom of: {c.root} (service {c.root_service}; path {' -> '.join(c.path)})")
    return lines


def postmortem_lines(status: IncidentStatus) -> list[str]:
    p = status.postmortem
    if p is None:
        return []
    if not p.required:
        return ["Postmortem:       not required"]
    state = p.state or ("failed: " + (p.message or "") if p.attempts else "pending")
    shown = f"{p.name} ({state})" if p.name else state
    return [f"Postmortem:       {shown}   (kubectl incident postmortem {p.name or ''})".rstrip()]
