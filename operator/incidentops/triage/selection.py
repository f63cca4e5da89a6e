"""Which Runbook an Incident gets: spec.runbookRef wins, else the most specific match in its namespace."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from incidentops.api.v1alpha1.common import Category
from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentStatus, current_severity
from incidentops.api.v1alpha1.runbook import RunbookMatch, RunbookSpec


@dataclass(frozen=True)
class IncidentFacts:
    """What a runbook's match is checked against: the incident and the alerts it has seen."""

    severity: str
    category: str | None
    service: str | None
    alertnames: frozenset[str]
    label_sets: tuple[Mapping[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, spec: IncidentSpec, status: IncidentStatus | None) -> IncidentFacts:
        """Alert names and labels from the recent alerts, each on top of the labels they all share."""
        common = dict(spec.labels or {})
        recent = status.alerts.recent if status is not None else []
        names = {a.name for a in recent} | ({common["alertname"]} if "alertname" in common else set())
        if status is not None:
            names |= set(status.alerts.names)
        label_sets = tuple({**common, **a.labels} for a in recent) or (common,)
        category = effective_category(spec, status)
        return cls(str(current_severity(spec, status)), category, spec.service, frozenset(names), label_sets)


def effective_category(spec: IncidentSpec, status: IncidentStatus | None) -> str | None:
    """The incident's category: security when anyone says so (the alerts, the rules, a model), else the
    alerts' category label, else triage's. Security is sticky: nothing runs automatically for it."""
    triage = status.triage if status is not None else None
    said = [
        spec.category,
        triage.category if triage else None,
        triage.rules.category if triage and triage.rules else None,
    ]
    signals = status.alerts.signals if status is not None else None
    if Category.SECURITY in said or (signals is not None and signals.security):
        return str(Category.SECURITY)
    chosen = spec.category or (triage.category if triage else None)
    return str(chosen) if chosen else None


@dataclass(frozen=True)
class Choice:
    """The runbook chosen (None: none applies) and why, for status.remediation and the timeline."""

    runbook: str | None
    reason: str


def matches(match: RunbookMatch, facts: IncidentFacts) -> bool:
    """Every list the runbook gives must match; an empty list matches anything."""
    if match.alertnames and not facts.alertnames & set(match.alertnames):
        return False
    if match.severities and facts.severity not in match.severities:
        return False
    if match.categories and facts.category not in match.categories:
        return False
    if match.services and facts.service not in match.services:
        return False
    wanted = match.labels.items()
    return not wanted or any(all(labels.get(k) == v for k, v in wanted) for labels in facts.label_sets)


def specificity(match: RunbookMatch) -> int:
    """How much a match asks for: each list given counts one, each required label one."""
    lists = (match.alertnames, match.severities, match.categories, match.services)
    return sum(1 for given in lists if given) + len(match.labels)


def choose(spec: IncidentSpec, facts: IncidentFacts, runbooks: Iterable[tuple[str, RunbookSpec]]) -> Choice:
    """spec.runbookRef wins; otherwise the most specific matching runbook, ties broken by name."""
    available = dict(runbooks)
    if spec.runbook_ref is not None:
        name = spec.runbook_ref.name
        if name in available:
            return Choice(name, f"runbook {name} named by spec.runbookRef")
        return Choice(None, f"spec.runbookRef names runbook {name}, which does not exist in this namespace")
    fitting = [(name, rb) for name, rb in available.items() if matches(rb.match, facts)]
    if not fitting:
        return Choice(None, f"none of the {len(available)} runbooks in this namespace matches")
    best = min(fitting, key=lambda item: (-specificity(item[1].match), item[0]))
    others = len(fitting) - 1
    tail = f" (the most specific of {others + 1} matching)" if others else ""
    return Choice(best[0], f"runbook {best[0]} matches{tail}")
