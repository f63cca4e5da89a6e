"""Rules triage, piece by piece: impact signals, the severity table, category rules, dependencies and cascades."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from incidentops.api.v1alpha1.incident import AlertSignals
from incidentops.triage.cascade import OpenIncident, find_root, worst_symptom
from incidentops.triage.categories import classify, parse_rules
from incidentops.triage.dependencies import declared, merged, upstream_of
from incidentops.triage.runner import fill
from incidentops.triage.settings import parse
from incidentops.triage.severity import assess
from incidentops.triage.signals import combine, multiple, ratio, read

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.62", 0.62),
        ("62%", 0.62),
        ("62 %", 0.62),
        ("62", 0.62),
        (".5", 0.5),
        ("1", 1.0),
        ("100", 1.0),
        ("150", None),
        ("-3", None),
        ("abc", None),
        ("nan", None),
        ("1e3", None),
        ("9" * 40, None),
        ("", None),
    ],
)
def test_ratios_are_read_the_way_people_write_them(text: str, expected: float | None) -> None:
    assert ratio(text) == (pytest.approx(expected) if expected is not None else None)


def test_multiples_and_names_are_read_loosely_and_junk_is_ignored() -> None:
    assert multiple("5x") == 5 and multiple("2.5\u00d7") == 2.5 and multiple("50%") is None
    signals = read([{"Error-Rate": "12%", "severity": "warning"}, {"latency.multiple": "6x", "SECURITY": "yes"}])
    assert signals == AlertSignals(error_ratio=0.12, latency_multiple=6.0, security=True)
    assert read([{"errorRatio": "a lot", "users": "many"}]) is None
    worst = combine(AlertSignals(error_ratio=0.2, core=True), AlertSignals(error_ratio=0.7, users_affected=0.1))
    assert worst == AlertSignals(error_ratio=0.7, users_affected=0.1, core=True)


@pytest.mark.parametrize(
    ("signals", "category", "severity"),
    [
        (AlertSignals(error_ratio=0.95), None, "SEV1"),
        (AlertSignals(users_affected=0.949), None, "SEV2"),
        (AlertSignals(error_ratio=0.5), None, "SEV2"),
        (AlertSignals(error_ratio=0.49), None, "SEV3"),
        (AlertSignals(error_ratio=0.25, core=True), None, "SEV2"),
        (AlertSignals(error_ratio=0.25), None, "SEV3"),
        (AlertSignals(error_ratio=0.10), None, "SEV3"),
        (AlertSignals(latency_multiple=5), None, "SEV3"),
        (AlertSignals(latency_multiple=4.9), None, "SEV4"),
        (AlertSignals(error_ratio=0.01), None, "SEV4"),
        (AlertSignals(latency_multiple=2), None, "SEV4"),
        (AlertSignals(error_ratio=0.001), None, "SEV5"),
        (AlertSignals(security=True, users_affected=0.001), None, "SEV1"),
        (AlertSignals(security=True), None, "SEV2"),
        (AlertSignals(error_ratio=0.02), "security", "SEV1"),
        (None, None, None),
    ],
)
def test_the_severity_table_of_the_requirements(
    signals: AlertSignals | None, category: str | None, severity: str | None
) -> None:
    assert assess(signals, category).severity == severity


def test_category_label_wins_then_configured_rules_then_built_in_ones() -> None:
    assert classify(["DiskFull"], [{}], label="dependency").category == "dependency"
    rules, problems = parse_rules(
        [
            {"category": "dependency", "alertname": "(?i)stripe"},
            {"category": "nope", "alertname": "x"},
            {"category": "capacity"},
            "junk",
            {"category": "security", "labels": {"team": "sec.*"}},
            {"category": "capacity", "alertname": "("},
        ],
        "categories",
    )
    assert [r.category for r in rules] == ["dependency", "security"]
    assert len(problems) == 4 and problems[0].startswith("categories[1]")
    said = classify(["StripeWebhookErrors"], [{}], rules=rules)
    assert (said.category, said.reasoning) == (
        "dependency",
        "alert StripeWebhookErrors reads as dependency (categories[0])",
    )
    assert classify(["Anything"], [{"team": "security-ops"}], rules=rules).category == "security"
    assert classify(["Watchdog"], [{}]).category is None
    # security is checked first: an alert that reads as security is never filed as something else
    assert classify(["UnauthorizedDiskAccess"], [{}]).category == "security"


def test_the_configmap_reads_what_it_can_and_names_the_rest() -> None:
    settings = parse(
        {
            "categories": "- {category: dependency, alertname: stripe}\n",
            "dependencies": "checkout: [payments, postgres]\nshop/web: checkout\nbroken: 3\n",
            "queries": "- {name: error_ratio, query: 'sum(x{service=\"$service\"})'}\n- {name: Bad-Name, query: y}\n",
        }
    )
    assert len(settings.category_rules) == 1
    assert settings.dependencies == {"checkout": ("payments", "postgres"), "shop/web": ("checkout",)}
    assert next(q.name for q in settings.queries) == "error_ratio" and "latency_p99" in [
        q.name for q in settings.queries
    ]
    assert len(settings.problems) == 2
    assert parse({"dependencies": "[not, a, mapping"}).problems[0].startswith("dependencies: not YAML")


def test_dependencies_come_from_annotations_and_the_configmap_and_cycles_end() -> None:
    workloads = [
        {
            "metadata": {
                "name": "checkout-v2",
                "labels": {"app": "checkout"},
                "annotations": {"incidentops.dev/depends-on": "payments, postgres,checkout"},
            }
        },
        {"metadata": {"name": "payments", "annotations": {"incidentops.dev/depends-on": "postgres,checkout"}}},
        {"metadata": {"name": "postgres"}},
    ]
    graph = merged("shop", declared(workloads), {"shop/postgres": ("storage",), "other/payments": ("nope",)})
    assert graph["checkout"] == {"payments", "postgres"} and graph["checkout-v2"] == graph["checkout"]
    assert graph["postgres"] == {"storage"} and "nope" not in graph["payments"]
    found = upstream_of("checkout", graph)
    assert [(u.service, u.path) for u in found] == [
        ("payments", ("checkout", "payments")),
        ("postgres", ("checkout", "postgres")),
        ("storage", ("checkout", "postgres", "storage")),
    ]  # the cycle payments -> checkout is cut


def test_the_root_is_the_furthest_upstream_open_incident_within_the_window() -> None:
    graph = {"web": frozenset({"api"}), "api": frozenset({"db"}), "db": frozenset()}
    window = timedelta(minutes=5)
    open_by_service = {
        "api": [OpenIncident("api-1", "api", T0)],
        "db": [
            OpenIncident("db-old", "db", T0 - timedelta(hours=1)),
            OpenIncident("db-1", "db", T0 + timedelta(minutes=1)),
        ],
    }
    root = find_root("web-1", "web", T0, graph, open_by_service, window)
    assert root is not None and (root.incident, root.path) == ("db-1", ("web", "api", "db"))
    assert find_root("db-1", "db", T0, graph, open_by_service, window) is None  # nothing upstream of the root
    alone = {"api": [OpenIncident("web-1", "api", T0)]}
    assert find_root("web-1", "web", T0, graph, alone, window) is None  # never its own root


def test_a_loop_of_dependencies_gives_one_root_and_an_unpaged_incident_is_never_one() -> None:
    graph = {"a": frozenset({"b"}), "b": frozenset({"a"})}
    window = timedelta(minutes=5)
    earlier, later = OpenIncident("a-1", "a", T0), OpenIncident("b-1", "b", T0 + timedelta(seconds=5))
    by_service = {"a": [earlier], "b": [later]}
    assert find_root("a-1", "a", T0, graph, by_service, window) is None  # the earlier one is the root
    root = find_root("b-1", "b", later.detected_at, graph, by_service, window)
    assert root is not None and root.incident == "a-1"
    silent = {"db": [OpenIncident("db-1", "db", T0, unpaged=True)]}
    assert find_root("web-1", "web", T0, {"web": frozenset({"db"})}, silent, window) is None


def test_a_root_is_as_bad_as_its_worst_symptom() -> None:
    open_incidents = [
        OpenIncident("db-1", "db", T0, "SEV4"),
        OpenIncident("api-1", "api", T0, "SEV2", root="db-1"),
        OpenIncident("web-1", "web", T0, "SEV1", root="db-1"),
        OpenIncident("other", "x", T0, "SEV1", root="elsewhere"),
    ]
    assert worst_symptom("db-1", open_incidents) == ("SEV1", ["api-1", "web-1"])
    assert worst_symptom("api-1", open_incidents) == (None, [])


def test_a_service_name_cannot_break_out_of_a_named_query() -> None:
    template = 'sum(x{service="$service",namespace="$namespace"}) / sum(y{pod=~"$service_re-.*"})'
    hostile = "a" * 252 + '"'  # cut after escaping, this would leave a lone backslash before the closing quote
    filled = fill(template, "shop", hostile)
    assert 'service="' + "a" * 252 + '\\""' in filled
    breakout = fill(template, "shop", '"} or vector(1) or x{a="')
    assert 'service="\\"} or vector(1) or x{a=\\""' in breakout
    assert fill('{pod=~"$service_re"}', "n", "a.b*") == '{pod=~"a\\\\.b\\\\*"}'
