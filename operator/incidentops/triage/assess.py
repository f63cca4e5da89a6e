"""Rules triage, whole: severity from the signals, category from the rules, the runbook that fits. Pure.

Immediate and always on: its result is in status before anything waits on it, and it is what
escalation pages from at once. A model, when configured, may answer after it (llm/).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from incidentops.api.v1alpha1.common import Severity
from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentStatus, RulesTriage, TriageResult
from incidentops.api.v1alpha1.runbook import RunbookSpec
from incidentops.triage.categories import CategoryRule, classify
from incidentops.triage.rules import runbook_fit
from incidentops.triage.selection import IncidentFacts, choose, matches, specificity
from incidentops.triage.severity import assess

MAX_MATCHING = 50  # status.triage.matching's bound


@dataclass(frozen=True)
class Assessment:
    rules: RulesTriage
    choice: str  # why this runbook, or none
    candidates: int
    matching: tuple[str, ...]


def alert_names(status: IncidentStatus | None, spec: IncidentSpec) -> list[str]:
    names = list(status.alerts.names) if status is not None else []
    for recent in status.alerts.recent if status is not None else []:
        if recent.name not in names:
            names.append(recent.name)
    common = (spec.labels or {}).get("alertname")
    if common and common not in names:
        names.append(common)
    return names


def evidence_key(names: Iterable[str], severity: str | None) -> str:
    """What triage looked at, comparable later: the severity and the distinct alert names (bounded)."""
    return json.dumps([severity or "", sorted({str(n)[:40] for n in names})[:20]], separators=(",", ":"))


def evidence_parts(key: str | None) -> tuple[str, frozenset[str]] | None:
    try:
        severity, names = json.loads(key or "")
        return str(severity), frozenset(str(n) for n in names)
    except (ValueError, TypeError):
        return None


def new_evidence(before: str | None, now: str) -> bool:
    """A new alert name, or a worse severity, than an earlier investigation saw."""
    old, new = evidence_parts(before), evidence_parts(now)
    if old is None or new is None:
        return True
    worse = bool(new[0]) and (not old[0] or Severity(new[0]) < Severity(old[0]))
    return worse or not new[1] <= old[1]


def rules_triage(
    spec: IncidentSpec,
    status: IncidentStatus,
    runbooks: Sequence[tuple[str, RunbookSpec]],
    category_rules: Sequence[CategoryRule] = (),
) -> Assessment:
    names = alert_names(status, spec)
    label_sets = [{**(spec.labels or {}), **a.labels} for a in status.alerts.recent] or [dict(spec.labels or {})]
    classified = classify(names, label_sets, label=spec.category, rules=category_rules, signals=status.alerts.signals)
    assessed = assess(status.alerts.signals, classified.category or spec.category)
    seen = status.model_copy(update={"triage": TriageResult(category=classified.category), "alerts": status.alerts})
    facts = IncidentFacts.of(spec, seen)
    picked = choose(spec, facts, runbooks)
    available: Mapping[str, RunbookSpec] = dict(runbooks)
    # bounded as status keeps it: the most specific first, so a namespace of many runbooks never breaks a turn
    fitting = sorted(
        (rb for rb in runbooks if matches(rb[1].match, facts)), key=lambda i: (-specificity(i[1].match), i[0])
    )
    matching = tuple(sorted(name for name, _ in fitting[:MAX_MATCHING]))
    chosen = available.get(picked.runbook or "")
    runbook = confidence = None
    fit_said = ""
    if chosen is not None:
        named = spec.runbook_ref is not None and spec.runbook_ref.name == picked.runbook
        fit = runbook_fit(chosen.match, named=named)
        runbook, confidence, fit_said = picked.runbook, fit.confidence, fit.reasoning
    reasoning = "; ".join(
        part
        for part in (
            f"severity: {assessed.reasoning}",
            f"category: {classified.reasoning}",
            f"runbook: {picked.reason}" + (f" ({fit_said})" if fit_said else ""),
        )
        if part
    )
    result = RulesTriage(
        severity=assessed.severity,
        category=classified.category,
        runbook=runbook,
        confidence=confidence,
        reasoning=reasoning[:2048],
    )
    return Assessment(result, picked.reason, len(runbooks), matching)
