"""A Postmortem as Markdown: every section in order, drafted marks, and text that cannot break the structure."""

from __future__ import annotations

import re

import pytest

from incidentops.api.v1alpha1.postmortem import PostmortemSpec
from incidentops.postmortem.markdown import SECTIONS, cell, code, human_duration, inline, prose, render

META = {"name": "checkout-7f3a2", "namespace": "shop"}


def full() -> PostmortemSpec:
    return PostmortemSpec.model_validate(
        {
            "incidentRef": {"name": "checkout-7f3a2"},
            "title": "Postmortem: Checkout error ratio above 20%",
            "state": "InReview",
            "severity": "SEV2",
            "category": "availability",
            "summary": "Checkout failed card payments after release v2.4.0.\n\nThe rollback fixed it.",
            "impact": {
                "services": ["checkout", "payments"],
                "startedAt": "2026-03-01T11:59:30Z",
                "detectedAt": "2026-03-01T12:00:05Z",
                "resolvedAt": "2026-03-01T12:05:42Z",
                "durationSeconds": 372,
                "alertCount": 2,
                "users": "up to 62% of requests failing",
                "peaks": [
                    {
                        "query": 'sum(rate(http_requests_total{code=~"5.."}[5m]))',
                        "source": "alert CheckoutHighErrorRatio",
                        "peak": 0.62,
                    },
                    {"query": "up == 0", "source": "runbook rollback's verify", "error": "Prometheus unreachable"},
                ],
            },
            "timeline": [
                {"at": "2026-03-01T12:00:05Z", "type": "Detected", "message": "2 alerts firing"},
                {
                    "at": "2026-03-01T12:03:00Z",
                    "type": "Note",
                    "message": "pool a | pool b exhausted\n## Injected heading\nsee C:\\",
                    "actor": "alice",
                },
            ],
            "rootCause": "Release v2.4.0 read a renamed configuration key.",
            "contributingFactors": ["The release went to every replica at once.", "# not a heading"],
            "fiveWhys": ["Why did checkout fail? A renamed key.", "Why was it not caught? Staging had the old key."],
            "remediation": {
                "runbook": "rollback-bad-release",
                "phase": "Verified",
                "verified": True,
                "automatic": True,
                "outcome": "runbook rollback-bad-release verified: verification passed",
                "actions": [
                    {
                        "step": "rollback",
                        "action": "rollback",
                        "state": "Succeeded",
                        "target": "Deployment shop/checkout",
                        "message": 'image: "checkout:v2.4.0" -> "checkout:v2.3.9"',
                    }
                ],
            },
            "whatWentWell": ["Remediation was verified."],
            "whatCouldImprove": ["Acknowledgement took 9m."],
            "actionItems": [
                {"title": "Add a canary stage", "owner": "alice", "priority": "P2", "due": "2026-12-17"},
                {"title": "Sync staging | prod config", "priority": "P3", "status": "InProgress"},
            ],
            "metrics": {
                "timeToDetectSeconds": 35,
                "timeToAcknowledgeSeconds": 540,
                "timeToMitigateSeconds": 300.4,
                "timeToResolveSeconds": 372,
            },
            "drafted": ["summary", "fiveWhys", "actionItems"],
            "draftedBy": "claude-sonnet-4-5",
        }
    )


def minimal() -> PostmortemSpec:
    return PostmortemSpec.model_validate({"incidentRef": {"name": "x"}, "title": "Postmortem: x", "severity": "SEV1"})


def sections(markdown: str) -> dict[str, str]:
    """Each `## ` section's body, by heading."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}


def split_row(line: str) -> list[str]:
    """A table row's cells as GitHub splits them: on pipes not escaped by a backslash."""
    assert line.startswith("| ") and line.endswith(" |")
    cells, current, index = [], "", 1
    body = line[1:-1]
    while index <= len(body):
        char = body[index - 1]
        if char == "\\" and index < len(body):
            current += char + body[index]
            index += 2
            continue
        if char == "|":
            cells.append(current.strip())
            current = ""
        else:
            current += char
        index += 1
    cells.append(current.strip())
    return cells


def test_every_section_is_there_in_order_after_the_title_and_header() -> None:
    md = render(META, full())
    lines = md.splitlines()
    assert lines[0] == "# Postmortem: Checkout error ratio above 20%"
    headings = [line[3:] for line in lines if line.startswith("## ")]
    assert headings == list(SECTIONS)
    assert headings == [
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
    ]
    assert [line for line in lines if line.startswith("#")] == [lines[0]] + [f"## {h}" for h in headings]
    header = md.split("## Summary")[0]
    for expected in (
        "- **Incident:** shop/checkout-7f3a2",
        "- **Severity:** SEV2",
        "- **Category:** availability",
        "- **State:** InReview",
        "- **Services:** checkout, payments",
        "- **Duration:** 6m12s",
        "- **Detected:** 2026-03-01 12:00:05 UTC",
        "- **Resolved:** 2026-03-01 12:05:42 UTC",
    ):
        assert expected in header
    assert md.endswith("\n") and render(META, full()) == md


def test_drafted_sections_are_marked_under_their_heading_and_only_those() -> None:
    body = sections(render(META, full()))
    mark = "> Drafted by claude-sonnet-4-5: review before publishing."
    marked = {heading for heading, text in body.items() if text.startswith(mark)}
    assert marked == {"Summary", "Five whys", "Action items"}
    assert sum(text.count("Drafted by") for text in body.values()) == 3


def test_a_drafted_section_without_a_model_name_still_says_so() -> None:
    spec = minimal().model_copy(update={"drafted": ["rootCause"], "summary": "s"})
    body = sections(render({}, spec))
    assert body["Root cause"].startswith("> Drafted by a language model: review before publishing.")


def test_timeline_pipe_and_newline_stay_inside_their_cell() -> None:
    md = render(META, full())
    timeline = sections(md)["Timeline"].splitlines()
    assert timeline[0] == "| Time (UTC) | Event | What happened | Who |"
    assert timeline[1] == "|---|---|---|---|"
    assert len(timeline) == 4  # header, delimiter, one line per entry
    note = split_row(timeline[3])
    assert note == [
        "2026-03-01 12:03:00",
        "Note",
        "pool a \\| pool b exhausted<br>## Injected heading<br>see C:\\\\",
        "alice",
    ]
    assert split_row(timeline[2]) == ["2026-03-01 12:00:05", "Detected", "2 alerts firing", "-"]
    assert not any(line.startswith("## Injected") for line in md.splitlines())


def test_impact_peaks_remediation_action_items_and_metrics() -> None:
    body = sections(render(META, full()))
    impact = body["Impact"]
    assert "- **Alerts:** 2" in impact
    assert "- **Users:** up to 62% of requests failing" in impact
    assert '- alert CheckoutHighErrorRatio: peak **0.62**, query `sum(rate(http_requests_total{code=~"5.."}[5m]))`' in (
        impact
    )
    assert "- runbook rollback's verify: no value (Prometheus unreachable), query `up == 0`" in impact
    remediation = body["Remediation"].splitlines()
    assert remediation[:4] == [
        "- **Runbook:** rollback-bad-release",
        "- **Outcome:** runbook rollback-bad-release verified: verification passed",
        "- **Verified:** yes",
        "- **Automatic:** yes",
    ]
    assert "| Step | Action | State | Target | What it changed |" in remediation
    assert split_row(remediation[-1]) == [
        "rollback",
        "rollback",
        "Succeeded",
        "Deployment shop/checkout",
        'image: "checkout:v2.4.0" -> "checkout:v2.3.9"',
    ]
    items = body["Action items"].splitlines()
    assert "| Title | Owner | Priority | Due | Status |" in items
    assert split_row(items[-2]) == ["Add a canary stage", "alice", "P2", "2026-12-17", "Open"]
    assert split_row(items[-1]) == ["Sync staging \\| prod config", "-", "P3", "-", "InProgress"]
    assert body["Five whys"].splitlines()[-2:] == [
        "1. Why did checkout fail? A renamed key.",
        "2. Why was it not caught? Staging had the old key.",
    ]
    assert body["Contributing factors"].splitlines() == [
        "- The release went to every replica at once.",
        "- \\# not a heading",
    ]
    assert body["Metrics"].splitlines() == [
        "- **Time to detect:** 35s",
        "- **Time to acknowledge:** 9m",
        "- **Time to mitigate:** 5m",
        "- **Time to resolve:** 6m12s",
    ]
    summary = body["Summary"].split("\n", 2)[2]
    assert summary == "Checkout failed card payments after release v2.4.0.\n\nThe rollback fixed it."


def test_empty_sections_say_so() -> None:
    body = sections(render({}, minimal()))
    for heading in (
        "Summary",
        "Timeline",
        "Root cause",
        "Contributing factors",
        "Five whys",
        "Remediation",
        "What went well",
        "What could improve",
        "Action items",
    ):
        assert body[heading] == "_None recorded._", heading
    assert "Peak values: _none recorded._" in body["Impact"]
    assert "- **Time to resolve:** unknown" in body["Metrics"]
    assert "**Incident:** x" in render({}, minimal())


def test_a_remediation_without_actions_or_verification_says_what_it_knows() -> None:
    spec = PostmortemSpec.model_validate(
        {**minimal().wire(), "remediation": {"outcome": "no runbook ran: none matches"}}
    )
    body = sections(render({}, spec))["Remediation"]
    assert "- **Runbook:** none" in body
    assert "- **Verified:** no (verification did not run)" in body
    assert "Actions: _none recorded._" in body


def test_fields_cannot_open_blocks_or_inject_headings() -> None:
    spec = PostmortemSpec.model_validate(
        {
            **minimal().wire(),
            "title": "C# outage\n# injected #",
            "summary": "first line\n# Heading\n    indented code\n> quote\n1. list\n<script>x</script>\n---",
            "rootCause": "```\nfenced",
            "whatWentWell": ["- nested\n## heading"],
        }
    )
    md = render({}, spec)
    assert md.splitlines()[0] == "# C# outage # injected \\#"
    assert [line for line in md.splitlines() if line.startswith("#")][1:] == [f"## {s}" for s in SECTIONS]
    body = sections(md)
    assert body["Summary"].splitlines() == [
        "first line",
        "\\# Heading",
        "indented code",
        "\\> quote",
        "1\\. list",
        "\\<script>x\\</script>",
        "\\---",
    ]
    assert body["Root cause"].splitlines() == ["\\```", "fenced"]
    assert body["What went well"] == "- \\- nested ## heading"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a|b", "a\\|b"),
        ("a\\|b", "a\\\\\\|b"),
        ("one\ntwo\r\nthree", "one<br>two<br>three"),
        ("", "-"),
        (None, "-"),
        ("<b>", "\\<b>"),
    ],
)
def test_cells_escape_what_would_break_the_row(text: str | None, expected: str) -> None:
    assert cell(text) == expected


def test_code_spans_hold_backticks_and_stay_on_one_line() -> None:
    assert code("rate(x[5m])") == "`rate(x[5m])`"
    assert code("a `b` c") == "``a `b` c``"
    assert code("`x`") == "`` `x` ``"
    assert code("a\n# b") == "`a # b`"
    assert code("") == "_(none)_"


def test_helpers() -> None:
    assert inline("  two\n words ") == "two words"
    assert inline("+ plus") == "\\+ plus"
    assert prose("a\n\n\n\nb") == "a\n\nb"
    assert [human_duration(s) for s in (None, 4.4, 45, 372, 3600, 3900, 90000)] == [
        "unknown",
        "4s",
        "45s",
        "6m12s",
        "1h",
        "1h5m",
        "1d1h",
    ]
