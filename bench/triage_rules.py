"""Prints the rules triage's accuracy on the labelled alert table (tests/unit/data/triage_fixtures.yaml)."""

from __future__ import annotations

from pathlib import Path

from localenv.triage_accuracy import load, score

TABLE = Path(__file__).resolve().parents[1] / "tests" / "unit" / "data" / "triage_fixtures.yaml"


def main() -> None:
    result = score(load(TABLE))
    print(f"{'alert':<32} {'got':<24} {'labelled':<24}")
    for o in result.outcomes:
        mark = "" if o.right else "   <- miss"
        got = f"{o.severity} {o.category}"
        want = f"{o.fixture.expected_severity} {o.fixture.expected_category}"
        print(f"{o.fixture.alert:<32} {got:<24} {want:<24}{mark}")
    n = len(result.outcomes)
    print(
        f"\n{n} labelled alerts: severity {result.severity_accuracy:.1%}, category {result.category_accuracy:.1%}, "
        f"both right {sum(o.right for o in result.outcomes) / n:.1%}"
    )


if __name__ == "__main__":
    main()
