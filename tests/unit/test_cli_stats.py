"""`kubectl incident stats`: every figure over a hand-built set of incidents and postmortems, checked by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from incidentops.cli.main import cli
from incidentops.cli.stats import Timing, auto_remediated, category_of, compute, open_items, stats_json, stats_table

NOW = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).isoformat().replace("+00:00", "Z")


def incident(name: str, severity: str, detected: str | None, *, spec: Any = None, **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": detected},
        "spec": {"title": name, "severity": severity, **(spec or {})},
    }
    if status or detected:
        body["status"] = {"state": "Resolved", "severity": severity, "detectedAt": detected, **status}
    return body


def postmortem(name: str, state: str, namespace: str = "shop", **extra: Any) -> dict[str, Any]:
    spec = {"incidentRef": {"name": name}, "title": name, "severity": "SEV1", "state": state}
    body: dict[str, Any] = {"metadata": {"name": name, "namespace": namespace}, "spec": spec}
    if "actionItems" in extra:
        spec["actionItems"] = extra.pop("actionItems")
    if "detectedAt" in extra:
        spec["impact"] = {"detectedAt": extra.pop("detectedAt")}
    if "incident" in extra:
        spec["incidentRef"] = {"name": extra.pop("incident")}
    if extra:
        body["status"] = extra
    return body


def metrics(ack: float | None = None, mitigate: float | None = None, resolve: float | None = None) -> dict[str, Any]:
    values = {"timeToAcknowledgeSeconds": ack, "timeToMitigateSeconds": mitigate, "timeToResolveSeconds": resolve}
    return {k: v for k, v in values.items() if v is not None}


SIMULATION = {"simulation": {"mode": "rehearsal", "by": "alice"}}

INCIDENTS = [
    # a: SEV1, triage says availability (over spec's performance), escalated to 2, an automatic step succeeded.
    incident(
        "a",
        "SEV1",
        ago(days=1),
        spec={"category": "performance"},
        triage={"category": "availability"},
        metrics=metrics(60, 300, 600),
        escalation={"level": 2},
        remediation={"phase": "Done", "steps": [{"name": "s", "automatic": True, "state": "Succeeded"}]},
        postmortem={"required": True, "name": "a", "state": "Published"},
    ),
    # b: SEV1 now (spec says SEV2), spec's category; Verified with an automatic step; its postmortem is b-pm.
    incident(
        "b",
        "SEV1",
        ago(days=2),
        spec={"category": "availability", "severity": "SEV2"},
        metrics=metrics(180, 900, 1800),
        escalation={"level": 1},
        remediation={"phase": "Verified", "steps": [{"name": "s", "automatic": True, "state": "RolledBack"}]},
        postmortem={"required": True, "name": "b-pm", "state": "Draft"},
    ),
    # c: SEV2, no category; escalated to 3; its approved step is not automatic; its postmortem is being written.
    incident(
        "c",
        "SEV2",
        ago(days=3),
        metrics=metrics(240, None, 3600),
        escalation={"level": 3},
        remediation={"phase": "Verified", "steps": [{"name": "s", "automatic": False, "state": "Succeeded"}]},
        postmortem={"required": True, "name": "c", "state": "Writing"},
    ),
    # d: SEV3 capacity at the edge of the week; escalated to 2; Verified without automatic steps.
    incident(
        "d",
        "SEV3",
        ago(days=6, hours=23),
        triage={"category": "capacity"},
        metrics=metrics(30),
        escalation={"level": 2},
        remediation={"phase": "Verified", "steps": [{"name": "s", "state": "Succeeded"}]},
        postmortem={"required": False},
    ),
    # e: a simulation in the window: left out, and counted as left out.
    incident(
        "e",
        "SEV2",
        ago(hours=5),
        spec=SIMULATION,
        metrics=metrics(1, 1, 1),
        escalation={"level": 5},
        postmortem={"required": False},
    ),
    # f: a real SEV1 from before the window: not counted, nor its postmortem's open items.
    incident(
        "f",
        "SEV1",
        ago(days=8),
        metrics=metrics(5000),
        escalation={"level": 4},
        postmortem={"required": True, "name": "f", "state": "Draft"},
    ),
    # g: no status yet (the operator has not seen it): detected at its creation, an hour ago.
    incident("g", "SEV4", None),
    # h: a simulation before the window: neither counted nor counted as left out.
    incident("h", "SEV2", ago(days=10), spec=SIMULATION),
]
INCIDENTS[6]["metadata"]["creationTimestamp"] = ago(hours=1)
POSTMORTEMS = [
    postmortem("a", "Published", openActionItems=1, actionItems=[{"title": "t", "status": "Open"}] * 4),
    postmortem(
        "b-pm",
        "Draft",
        incident="b",
        actionItems=[
            {"title": "1", "status": "Open"},
            {"title": "2", "status": "InProgress"},
            {"title": "3", "status": "Done"},
            {"title": "4", "status": "WontDo"},
            {"title": "5"},
        ],
    ),
    postmortem("f", "Draft", openActionItems=4),
    postmortem("gone", "InReview", detectedAt=ago(days=2), openActionItems=3),  # its incident was deleted
    postmortem("gone-long-ago", "Draft", detectedAt=ago(days=30), openActionItems=5),
    postmortem("a", "Draft", namespace="other", openActionItems=7),  # no incident, no time: not counted
]


def test_counts_by_severity_and_category_leave_simulations_out() -> None:
    stats = compute(INCIDENTS, POSTMORTEMS, NOW, WEEK)
    assert stats.incidents == 5  # a, b, c, d, g
    assert stats.simulations_left_out == 1  # e (h is outside the window)
    assert stats.by_severity == {"SEV1": 2, "SEV2": 1, "SEV3": 1, "SEV4": 1, "SEV5": 0}
    assert stats.by_category == {"availability": 2, "capacity": 1, "unknown": 2}
    assert stats.start == NOW - WEEK and stats.end == NOW


def test_response_times_per_severity_are_mean_and_median() -> None:
    t = compute(INCIDENTS, POSTMORTEMS, NOW, WEEK).timings
    assert t["SEV1"] == {
        "acknowledge": Timing(2, 120.0, 120.0),  # 60, 180
        "mitigate": Timing(2, 600.0, 600.0),  # 300, 900
        "resolve": Timing(2, 1200.0, 1200.0),  # 600, 1800
    }
    assert t["SEV2"] == {
        "acknowledge": Timing(1, 240.0, 240.0),
        "mitigate": Timing(0, None, None),
        "resolve": Timing(1, 3600.0, 3600.0),
    }
    assert t["SEV3"]["acknowledge"] == Timing(1, 30.0, 30.0)
    assert t["SEV4"]["acknowledge"] == Timing(0, None, None)  # g has no metrics yet
    assert t["all"] == {
        "acknowledge": Timing(4, 127.5, 120.0),  # 30, 60, 180, 240
        "mitigate": Timing(2, 600.0, 600.0),
        "resolve": Timing(3, 2000.0, 1800.0),  # 600, 1800, 3600
    }


def test_rates_and_postmortem_figures() -> None:
    stats = compute(INCIDENTS, POSTMORTEMS, NOW, WEEK)
    assert stats.escalated == 3  # a (2), c (3), d (2); not b (1)
    assert stats.escalation_rate == pytest.approx(0.6)
    assert stats.auto_remediated == 2  # a (an automatic step succeeded), b (Verified with an automatic step)
    assert stats.auto_remediation_rate == pytest.approx(0.4)
    assert stats.postmortems_required == 3  # a, b, c
    assert stats.postmortems_published == 1  # a; b-pm is Draft, c's is still being written
    assert stats.postmortem_completion == pytest.approx(1 / 3)
    # a: its status says 1 (the spec's 4 are not read); b-pm has no status: Open, InProgress and an item
    # without a status (Open) in its spec make 3; gone: 3. Not f (out of the window), gone-long-ago, other/a.
    assert stats.open_action_items == 1 + 3 + 3
    assert stats.postmortems_counted == 3


def test_since_keeps_only_incidents_detected_within_it() -> None:
    day = compute(INCIDENTS, POSTMORTEMS, NOW, timedelta(days=1))
    assert day.incidents == 2  # a (exactly a day ago counts) and g
    assert day.by_severity["SEV1"] == 1 and day.by_severity["SEV4"] == 1
    assert day.simulations_left_out == 1
    assert day.postmortems_required == 1 and day.postmortems_published == 1
    assert day.open_action_items == 1  # a's; gone was detected two days ago
    month = compute(INCIDENTS, POSTMORTEMS, NOW, timedelta(days=30))
    assert month.incidents == 6 and month.simulations_left_out == 2
    assert month.open_action_items == 1 + 3 + 4 + 3 + 5


def test_nothing_to_count_gives_no_rates() -> None:
    stats = compute([], [], NOW, WEEK)
    assert stats.incidents == 0
    assert stats.escalation_rate is None and stats.auto_remediation_rate is None
    assert stats.postmortem_completion is None
    assert json.loads(stats_json(stats, None))["postmortems"] == {"required": 0, "published": 0, "completion": None}


def test_odd_objects_do_not_break_the_figures() -> None:
    odd: list[dict[str, Any]] = [
        {"metadata": {"name": "x"}},  # no time at all: cannot be placed
        {"metadata": {"name": "y"}, "spec": {"severity": "SEV9"}, "status": {"detectedAt": "yesterday"}},
        {
            "metadata": {"name": "z", "creationTimestamp": ago(hours=1)},
            "spec": {"severity": "SEV2"},
            "status": {"detectedAt": ago(hours=2), "metrics": {"timeToAcknowledgeSeconds": "soon"}},
        },
    ]
    stats = compute(odd, [{"spec": {"actionItems": "x"}}], NOW, WEEK)
    assert stats.incidents == 1 and stats.by_severity["SEV2"] == 1
    assert stats.timings["SEV2"]["acknowledge"] == Timing(0, None, None)


def test_helpers_read_raw_objects() -> None:
    assert category_of({"spec": {}, "status": {"triage": {}}}) == "unknown"
    assert category_of({"spec": {"category": "security"}}) == "security"
    assert not auto_remediated({"status": {"remediation": {"phase": "Verified", "steps": []}}})
    approved_then_automatic = [
        {"name": "rollback", "automatic": False, "approvedBy": "alice", "state": "Succeeded"},
        {"name": "wait", "automatic": True, "state": "Succeeded"},
    ]
    assert not auto_remediated({"status": {"remediation": {"phase": "Verified", "steps": approved_then_automatic}}})
    assert open_items({"spec": {"actionItems": [{"title": "x"}]}, "status": {}}) == 1
    assert open_items({"spec": {"actionItems": [{"title": "x"}]}, "status": {"openActionItems": 0}}) == 0


def test_json_is_one_stable_object() -> None:
    record = json.loads(stats_json(compute(INCIDENTS, POSTMORTEMS, NOW, WEEK), "shop"))
    assert list(record) == [
        "namespace",
        "window",
        "incidents",
        "simulationsLeftOut",
        "bySeverity",
        "byCategory",
        "responseTimes",
        "escalation",
        "autoRemediation",
        "postmortems",
        "openActionItems",
        "postmortemsCounted",
    ]
    assert record["namespace"] == "shop"
    assert record["window"] == {"from": "2026-03-01T12:00:00.000Z", "to": "2026-03-08T12:00:00.000Z", "seconds": 604800}
    assert record["incidents"] == 5 and record["simulationsLeftOut"] == 1
    assert list(record["responseTimes"]) == ["SEV1", "SEV2", "SEV3", "SEV4", "SEV5", "all"]
    assert record["responseTimes"]["all"]["acknowledge"] == {"count": 4, "meanSeconds": 127.5, "medianSeconds": 120.0}
    assert record["escalation"] == {"reachedLevel2": 3, "rate": 0.6}
    assert record["autoRemediation"] == {"remediated": 2, "rate": 0.4}
    assert record["postmortems"] == {"required": 3, "published": 1, "completion": 0.3333}
    assert record["openActionItems"] == 7


def test_table_shows_human_durations_and_the_simulations_left_out() -> None:
    text = stats_table(compute(INCIDENTS, POSTMORTEMS, NOW, WEEK), "shop", "7d").plain
    lines = text.splitlines()
    assert lines[0] == (
        'Incidents in namespace "shop" detected in the last 7d (since 2026-03-01T12:00:00.000Z): 5 '
        "(1 simulation left out)"
    )
    assert lines[2] == "SEVERITY   INCIDENTS   MTTA (MEAN / MEDIAN)   MTTM (MEAN / MEDIAN)   MTTR (MEAN / MEDIAN)"
    rows = {line.split()[0]: line.split() for line in lines[3:9]}
    assert rows["SEV1"] == ["SEV1", "2", "2m", "/", "2m", "10m", "/", "10m", "20m", "/", "20m"]
    assert rows["SEV4"] == ["SEV4", "1", "-", "-", "-"]
    assert rows["all"] == ["all", "5", "2m7s", "/", "2m", "10m", "/", "10m", "33m20s", "/", "30m"]
    assert "availability   2" in text
    assert "Escalated to level 2 or higher:  3 of 5 (60%)" in text
    assert "Remediated automatically:        2 of 5 (40%)" in text
    assert "Postmortems published:           1 of 3 required (33%)" in text
    assert "Open action items:               7 (in 3 postmortems)" in text
    every = stats_table(compute([], [], NOW, WEEK), None, "24h").plain
    assert every.startswith("Incidents in all namespaces detected in the last 24h")
    assert "0 of 0" in every and "(0 simulations left out)" in every


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["stats", "--since", "soon"], "invalid duration"),
        (["stats", "--since", "0s"], "longer than 0s"),
        (["stats", "-o", "yaml"], "'yaml' is not one of"),
        (["stats", "--bogus"], "No such option"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], complaint: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert complaint in result.output
