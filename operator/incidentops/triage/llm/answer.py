"""The model advises, code decides: an answer is validated, then applied within bounds. Pure.

Validation: every field is checked against the enums the model was offered (the runbooks that
match this incident, plus none); anything else makes the answer invalid and the rules' result
stands. Text is bounded and redacted before it is stored.

Application, on a valid answer:
- runbook: the model's choice among the matching runbooks (or none); its confidence is capped at
  0.95, as the rules' is: only a human's word is certain;
- severity: raised at most one level above the worse of the rules' and the incident's, never
  lowered (a model cannot hide an outage, nor page the executives on a whim);
- category: taken, except that security is never taken away (a security incident never runs
  anything automatically), and a model's "security" is always taken.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from incidentops.api.v1alpha1.common import Category, Severity
from incidentops.api.v1alpha1.incident import TriageAnswer
from incidentops.redaction import redact
from incidentops.triage.llm.tools import NONE

CONFIDENCE_CEILING = 0.95
KNOWN = frozenset({"severity", "category", "runbook", "confidence", "reasoning", "suspectedCause"})


class InvalidAnswer(ValueError):
    """The answer broke the schema it was offered; the message says how."""


def _text(value: Any, limit: int, secrets: Sequence[str], field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidAnswer(f"{field} must be text")
    flat = redact(value, secrets).strip()
    return flat[: limit - 12] + " [truncated]" if len(flat) > limit else flat


def validate(raw: Any, allowed_runbooks: Sequence[str], secrets: Sequence[str] = ()) -> tuple[TriageAnswer, list[str]]:
    """The answer as a TriageAnswer, and the fields it sent that nobody asked for; InvalidAnswer if broken."""
    if not isinstance(raw, dict):
        raise InvalidAnswer("the answer must be an object")
    missing = [f for f in ("severity", "category", "runbook", "confidence", "reasoning") if f not in raw]
    if missing:
        raise InvalidAnswer(f"missing {', '.join(missing)}")
    try:
        severity = Severity(str(raw["severity"]))
    except ValueError:
        raise InvalidAnswer(f"severity {str(raw['severity'])[:20]!r} is not SEV1..SEV5") from None
    try:
        category = Category(str(raw["category"]))
    except ValueError:
        raise InvalidAnswer(f"category {str(raw['category'])[:40]!r} is not one of the eight") from None
    runbook = raw["runbook"]
    if not isinstance(runbook, str) or (runbook != NONE and runbook not in allowed_runbooks):
        shown = ", ".join([*allowed_runbooks, NONE])
        raise InvalidAnswer(f"runbook {str(runbook)[:64]!r} is not one that matches this incident ({shown})")
    confidence = raw["confidence"]
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not math.isfinite(confidence):
        raise InvalidAnswer("confidence must be a number")
    if not 0 <= confidence <= 1:
        raise InvalidAnswer(f"confidence {confidence} is not between 0 and 1")
    answer = TriageAnswer(
        severity=severity,
        category=category,
        runbook=None if runbook == NONE else runbook,
        confidence=round(float(confidence), 3),
        reasoning=_text(raw["reasoning"], 2048, secrets, "reasoning"),
        suspected_cause=_text(raw.get("suspectedCause"), 1024, secrets, "suspectedCause"),
    )
    return answer, sorted(str(k)[:40] for k in raw if k not in KNOWN)[:10]


@dataclass(frozen=True)
class Applied:
    severity: Severity
    category: Category | None
    runbook: str | None
    confidence: float | None
    said: str  # what code took and refused, in words


def apply(
    answer: TriageAnswer,
    *,
    current: Severity,
    rules_severity: Severity | None,
    rules_category: Category | None,
    security: bool,
    ignored: Sequence[str] = (),
) -> Applied:
    """What the incident takes of a valid answer."""
    said: list[str] = []
    floor = min(current, rules_severity) if rules_severity else current  # the worse of the two (SEV1 < SEV2)
    proposed = Severity(answer.severity) if answer.severity else floor
    severity = floor
    if proposed < floor:
        ceiling = list(Severity)[max(0, list(Severity).index(floor) - 1)]
        severity = max(proposed, ceiling)
        said.append(
            f"severity raised to {severity}"
            + (f" (the model said {proposed}; at most one level above {floor})" if severity != proposed else "")
        )
    elif proposed > floor:
        said.append(f"severity {proposed} refused: triage never lowers it below {floor}")
    category = Category(answer.category) if answer.category else rules_category
    if security and category != Category.SECURITY:
        said.append(f"category {category} refused: the incident is security (never automatic)")
        category = Category.SECURITY
    elif rules_category and category != rules_category:
        said.append(f"category {category} (rules said {rules_category})")
    confidence = None
    if answer.runbook:
        confidence = min(CONFIDENCE_CEILING, answer.confidence or 0.0)
        said.append(f"runbook {answer.runbook} at confidence {confidence:.2f}")
    else:
        said.append("no runbook")
    if ignored:
        said.append(f"ignored fields nobody asked for: {', '.join(ignored)}")
    return Applied(severity, category, answer.runbook, confidence, "; ".join(said))
