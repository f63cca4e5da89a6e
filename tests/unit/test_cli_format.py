"""The plugin's pure parts: kubectl ages, filters, triage order, and the table/json/csv shapes."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from incidentops.api.v1alpha1.common import Severity
from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentState, IncidentStatus, Resolution
from incidentops.cli.format import (
    SUMMARY_FIELDS,
    describe,
    format_age,
    format_duration,
    list_csv,
    list_json,
    list_table,
    render_table,
    timeline_rows,
)
from incidentops.cli.selection import (
    IncidentSummary,
    SelectionError,
    parse_severities,
    parse_states,
    select,
    sort_for_triage,
)
from incidentops.lifecycle.machine import acknowledge, initial_status, transition

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def obj(name: str, severity: str, age: float, state: str | None = None, **spec: Any) -> dict[str, Any]:
    created = (NOW - timedelta(seconds=age)).isoformat().replace("+00:00", "Z")
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "prod", "creationTimestamp": created},
        "spec": {"title": f"{name} is down", "severity": severity, **spec},
    }
    if state:
        body["status"] = {"state": state, "alerts": {"count": 3}}
    return body


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, "<invalid>"),
        (-0.5, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (200, "3m20s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (7 * 3600 + 30 * 60, "7h30m"),
        (8 * 3600 + 59 * 60, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (4 * 86400 + 5 * 3600, "4d5h"),
        (8 * 86400, "8d"),
        (400 * 86400, "400d"),
        (2 * 365 * 86400, "2y"),
        (3 * 365 * 86400 + 10 * 86400, "3y10d"),
        (9 * 365 * 86400 + 10 * 86400, "9y"),
    ],
)
def test_age_is_formatted_like_kubectl(seconds: float, expected: str) -> None:
    assert format_age(seconds) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(None, "<none>"), (4.25, "4.2s"), (12.0, "12s"), (83, "1m23s"), (120, "2m"), (7500, "2h5m"), (273600, "3d4h")],
)
def test_measured_durations_are_humanized(seconds: float | None, expected: str) -> None:
    assert format_duration(seconds) == expected


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("SEV1",), {Severity.SEV1}),
        (("sev2", "P0"), {Severity.SEV1, Severity.SEV2}),
        (("critical,high",), {Severity.SEV1, Severity.SEV2}),
        (("warning", "p4", "info"), {Severity.SEV3, Severity.SEV4, Severity.SEV5}),
        (("p1", "P2"), {Severity.SEV1, Severity.SEV2}),
        ((), set()),
    ],
)
def test_severity_flags_accept_names_and_aliases(flags: tuple[str, ...], expected: set[Severity]) -> None:
    assert parse_severities(flags) == expected


def test_unknown_severity_or_state_lists_what_is_accepted() -> None:
    with pytest.raises(SelectionError, match=r"unknown severity 'sev9'.*SEV1.*critical"):
        parse_severities(["sev9"])
    with pytest.raises(SelectionError, match=r"unknown state 'burning'.*Acknowledged.*open"):
        parse_states(["burning"])


def test_state_flags_are_case_insensitive_and_open_means_unresolved() -> None:
    assert parse_states(["resolved", "ACKNOWLEDGED"]) == {IncidentState.RESOLVED, IncidentState.ACKNOWLEDGED}
    opened = parse_states(["open"])
    assert IncidentState.DETECTED in opened and IncidentState.MONITORING in opened
    assert IncidentState.RESOLVED not in opened and IncidentState.CLOSED not in opened


def test_severity_filter_by_alias_keeps_only_matching_incidents() -> None:
    incidents = [
        IncidentSummary.of(obj("a", "SEV1", 10)),
        IncidentSummary.of(obj("b", "SEV2", 10)),
        IncidentSummary.of(obj("c", "SEV3", 10)),
    ]
    kept = select(incidents, severities=parse_severities(["p0", "high"]))
    assert [i.name for i in kept] == ["a", "b"]


def test_state_filter_treats_a_missing_status_as_detected() -> None:
    incidents = [IncidentSummary.of(obj("new", "SEV2", 1)), IncidentSummary.of(obj("old", "SEV2", 9, "Resolved"))]
    assert [i.name for i in select(incidents, states=parse_states(["detected"]))] == ["new"]
    assert [i.name for i in select(incidents, states=parse_states(["Resolved"]))] == ["old"]


def test_sorted_by_severity_then_youngest_first_with_odd_objects_last() -> None:
    incidents = [
        IncidentSummary.of(obj("sev3-old", "SEV3", 5000)),
        IncidentSummary.of(obj("sev1-old", "SEV1", 900)),
        IncidentSummary.of(obj("sev1-new", "SEV1", 30)),
        IncidentSummary.of({"metadata": {"name": "broken"}, "spec": {}}),
        IncidentSummary.of(obj("sev2", "SEV2", 60)),
    ]
    assert [i.name for i in sort_for_triage(incidents)] == ["sev1-new", "sev1-old", "sev2", "sev3-old", "broken"]


def test_table_has_kubectl_columns_and_namespace_only_with_all_namespaces() -> None:
    incidents = [IncidentSummary.of(obj("api-down", "SEV1", 200, "Acknowledged", service="api"))]
    lines = list_table(incidents, NOW, all_namespaces=False).plain.splitlines()
    assert lines[0].split() == ["NAME", "SEVERITY", "STATE", "SERVICE", "ALERTS", "AGE"]
    assert lines[1].split() == ["api-down", "SEV1", "Acknowledged", "api", "3", "3m20s"]
    wide = list_table(incidents, NOW, all_namespaces=True).plain.splitlines()
    assert wide[0].split()[0] == "NAMESPACE" and wide[1].split()[:2] == ["prod", "api-down"]


def test_table_columns_line_up() -> None:
    text = render_table(("A", "B", "C"), [("x", "longer", "1"), ("longest-x", "y", "2")]).plain
    lines = text.splitlines()
    starts = {line.index(cell) for line, cell in zip(lines, ["B", "longer", "y"], strict=True)}
    assert len(starts) == 1, text
    assert not any(line.endswith(" ") for line in lines)


def test_json_output_is_an_array_of_summaries() -> None:
    incidents = [IncidentSummary.of(obj("api-down", "SEV1", 200, "Detected", service="api"))]
    data = json.loads(list_json(incidents, NOW))
    assert data == [
        {
            "namespace": "prod",
            "name": "api-down",
            "severity": "SEV1",
            "state": "Detected",
            "service": "api",
            "alerts": 3,
            "age": "3m20s",
            "created": "2026-03-01T11:56:40.000Z",
            "title": "api-down is down",
        }
    ]
    assert json.loads(list_json([], NOW)) == []


def test_csv_output_has_a_header_and_one_row_per_incident_with_quoting() -> None:
    incidents = [
        IncidentSummary.of(obj("a", "SEV2", 60, "Resolved", service="db", title='db, "primary" down')),
        IncidentSummary.of(obj("b", "SEV4", 60)),
    ]
    rows = list(csv.DictReader(io.StringIO(list_csv(incidents, NOW))))
    assert tuple(rows[0]) == SUMMARY_FIELDS
    assert rows[0]["title"] == 'db, "primary" down' and rows[0]["state"] == "Resolved"
    assert rows[1]["state"] == "Detected" and rows[1]["alerts"] == "0"
    assert list_csv([], NOW).strip() == ",".join(SUMMARY_FIELDS)


def _lived_status() -> IncidentStatus:
    status = initial_status(NOW - timedelta(minutes=30), how="from alertmanager: HighErrorRate")
    status = acknowledge(status, by="alice", now=NOW - timedelta(minutes=28))
    return transition(
        status, IncidentState.RESOLVED, now=NOW - timedelta(minutes=5), actor="bob", reason="rolled back [v2]"
    )


def test_describe_shows_people_times_metrics_and_timeline() -> None:
    status = _lived_status()
    spec = IncidentSpec(
        title="API 5xx",
        severity=Severity.SEV2,
        service="api",
        resolution=Resolution(by="bob", summary="rolled back [v2]", root_cause="bad deploy"),
    )
    meta = {"name": "api-5xx", "namespace": "prod", "creationTimestamp": "2026-03-01T11:30:00Z"}
    text = describe(meta, spec, status, NOW, has_status=True).plain
    assert "Severity:       SEV2" in text
    assert "State:          Resolved" in text
    assert "Acknowledged:   2026-03-01T11:32:00.000Z (28m ago) by alice" in text
    assert "(5m ago) by bob" in text
    assert "Time to acknowledge:  2m" in text and "Time to resolve:      25m" in text
    assert "Root cause:     bad deploy" in text
    assert "Category:       <none>" in text
    timeline = text.split("Timeline:\n", 1)[1]
    assert "Detected" in timeline and "alice" in timeline and "rolled back [v2]" in timeline


def test_describe_of_an_incident_the_operator_has_not_seen() -> None:
    spec = IncidentSpec(title="x", severity=Severity.SEV3)
    text = describe({"name": "x"}, spec, IncidentStatus(), NOW, has_status=False).plain
    assert "Detected (not yet seen by the operator)" in text
    assert "Conditions:\n  <none>" in text and "Timeline:\n  <none>" in text


def test_timeline_rows_carry_time_type_actor_message() -> None:
    rows = timeline_rows(_lived_status())
    assert rows[0] == ("2026-03-01T11:30:00.000Z", "Detected", "-", "from alertmanager: HighErrorRate")
    assert rows[-1][1:3] == ("Resolved", "bob")
