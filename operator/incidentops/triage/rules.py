"""A rules-based confidence that a runbook fits an incident (the LLM triage adds another source later).

The more of the incident a runbook's match pins down, the surer the fit: a runbook that names
the alert and the category is a deliberate pairing; one that matches everything is a guess.
A runbook a human (or a DetectionRule) named in spec.runbookRef is certain. The figures are
simple on purpose, so that a responder can predict them from the runbook:
- named in spec.runbookRef: 1.0;
- alertnames matched: 0.7, else 0.3;
- each further criterion given (severities, categories, services, each required label): +0.1;
- at most 0.95 without a human's word.
"""

from __future__ import annotations

from dataclasses import dataclass

from incidentops.api.v1alpha1.runbook import RunbookMatch

NAMED = 1.0
BY_ALERTNAME = 0.7
BY_OTHER = 0.3
PER_CRITERION = 0.1
CEILING = 0.95


@dataclass(frozen=True)
class Assessment:
    confidence: float
    reasoning: str


def runbook_fit(match: RunbookMatch, *, named: bool) -> Assessment:
    """How well the chosen runbook fits, and why, in words a responder can check."""
    if named:
        return Assessment(NAMED, "the runbook was named in spec.runbookRef")
    base = BY_ALERTNAME if match.alertnames else BY_OTHER
    given = [
        name
        for name, present in (
            ("severities", match.severities),
            ("categories", match.categories),
            ("services", match.services),
        )
        if present
    ] + [f"label {key}" for key in sorted(match.labels)]
    confidence = round(min(CEILING, base + PER_CRITERION * len(given)), 2)
    what = "the alert name" if match.alertnames else "no alert name"
    extra = f" and {', '.join(given)}" if given else ""
    return Assessment(confidence, f"rules: the runbook's match names {what}{extra}")
