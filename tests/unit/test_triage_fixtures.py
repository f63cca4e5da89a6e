"""The rules triage against a table of labelled alerts: its accuracy is measured, and held.

Each fixture goes the way a real alert goes: normalized from an Alertmanager payload, folded into a
new incident's status, triaged by the rules; the incident's severity after triage (the alert's, or
the signals' when worse) and triage's category are compared with what an SRE labelled. The table
lives in data/triage_fixtures.yaml; `python bench/triage_rules.py` prints it with every miss.
"""

from __future__ import annotations

from pathlib import Path

from localenv.triage_accuracy import Fixture, load, score

TABLE = Path(__file__).parent / "data" / "triage_fixtures.yaml"


def test_the_table_is_large_enough_to_mean_something() -> None:
    fixtures = load(TABLE)
    assert len(fixtures) >= 30
    assert {f.expected_category for f in fixtures} >= {
        "availability", "performance", "data-integrity", "security", "capacity", "dependency", "configuration",
        "model-quality",
    }  # fmt: skip


def test_rules_classify_the_labelled_alerts() -> None:
    result = score(load(TABLE))
    misses = "\n".join(f"  {m}" for m in result.misses)
    assert result.severity_accuracy >= 0.95, f"severity accuracy {result.severity_accuracy:.0%}:\n{misses}"
    assert result.category_accuracy >= 0.9, f"category accuracy {result.category_accuracy:.0%}:\n{misses}"


def test_a_fixture_that_is_wrong_counts_as_a_miss() -> None:
    wrong = Fixture(alert="ServiceDown", severity="critical", expected_severity="SEV5", expected_category="security")
    result = score([wrong])
    assert result.severity_accuracy == 0 and result.category_accuracy == 0 and len(result.misses) == 1
