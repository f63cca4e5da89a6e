"""Which of the eight categories an incident is, from its alert names and labels. Pure.

An alert's own `category` label wins. Otherwise the first rule that matches decides: the rules of
the triage ConfigMap (key `categories`) first, then the built-in ones below, in order (security
first, so that nothing security-like is ever filed as something an automatic runbook may fix).
A rule matches an alert name by regular expression (searched, case-insensitive) and/or labels
(each a regular expression that must match the label's whole value).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from incidentops.api.v1alpha1.common import Category
from incidentops.api.v1alpha1.incident import AlertSignals

MAX_PATTERN = 512


@dataclass(frozen=True)
class CategoryRule:
    category: Category
    alertname: re.Pattern[str] | None = None
    labels: Mapping[str, re.Pattern[str]] = field(default_factory=dict)
    source: str = "built-in"

    def matches(self, names: Iterable[str], label_sets: Iterable[Mapping[str, str]]) -> str | None:
        """What matched, in words, or None."""
        if self.alertname is not None:
            name = next((n for n in names if self.alertname.search(n)), None)
            if name is None:
                return None
            if not self.labels:
                return f"alert {name}"
        wanted = self.labels.items()
        for labels in label_sets:
            if all(k in labels and p.fullmatch(labels[k]) for k, p in wanted):
                shown = ", ".join(f"{k}={labels[k]}" for k, _ in wanted)
                return f"labels {shown}" if self.alertname is None else f"alert name and labels {shown}"
        return None


def _rule(category: Category, alertname: str | None = None, **labels: str) -> CategoryRule:
    return CategoryRule(
        category,
        re.compile(alertname, re.IGNORECASE) if alertname else None,
        {k: re.compile(v, re.IGNORECASE) for k, v in labels.items()},
    )


BUILT_IN: tuple[CategoryRule, ...] = (
    _rule(
        Category.SECURITY,
        r"secur|intrus|unauthori[sz]|forbidden|auth(entication)?.?fail|brute.?force|login.?fail|cve|vulnerab|malware|"
        r"breach|exfiltrat|suspicious|privilege|waf|ddos|certificate.?revoked|leaked|crypto.?min",
    ),
    _rule(
        Category.DATA_INTEGRITY,
        r"corrupt|integrity|checksum|data.?loss|inconsisten|mismatch|replication.?(broken|error|fail)|backup.?fail|"
        r"duplicate.?(records|writes)|lost.?writes|split.?brain",
    ),
    _rule(
        Category.MODEL_QUALITY,
        r"model|quality|accuracy|drift|hallucinat|score.?drop|relevance|precision|recall|prediction|inference.?error",
    ),
    _rule(
        Category.CONFIGURATION,
        r"config|misconfig|invalid.?(setting|flag|env)|feature.?flag|certificate.?expir|cert.?expir|"
        r"secret.?missing|image.?pull|errimagepull|createcontainerconfig",
    ),
    _rule(Category.CAPACITY, r"(pool|connections?|threads?|workers?).?(exhaust|saturat|limit|max|full)"),
    _rule(
        Category.DEPENDENCY,
        r"(database|db|postgres|mysql|redis|kafka|rabbit|mongo|elastic|upstream|downstream|dependency|third.?party|"
        r"external|api|dns|s3|queue|broker|cache).*(connect|unreachable|unavailable|down|timeout|refused|fail|error)|"
        r"connection.?(refused|fail|error|timeout|reset)|upstream|dependency|third.?party",
    ),
    _rule(
        Category.CAPACITY,
        r"disk|filesystem|volume|pvc|inode|memory|oom|cpu|throttl|quota|capacity|saturat|full|exhaust|evict|"
        r"ephemeral|too.?many|backlog|queue.?(depth|length|size)|pool",
    ),
    _rule(
        Category.PERFORMANCE,
        r"latency|slow|p9[059]|percentile|response.?time|duration|apdex|timeouts?$|lag\b|sluggish|"
        r"(consumer|replication|replica).?lag|lag.?(high|seconds|growing|increas)",
    ),
    _rule(
        Category.AVAILABILITY,
        r"down|unavailable|unreachable|5xx|error|errors|crash|restart|health|probe|outage|fail|absent|^up$|"
        r"target.?missing|not.?ready|replicas.?mismatch|no.?endpoints|partition",
    ),
)


@dataclass(frozen=True)
class Classified:
    category: Category | None
    reasoning: str


def classify(
    names: Sequence[str],
    label_sets: Sequence[Mapping[str, str]],
    *,
    label: str | None = None,
    rules: Sequence[CategoryRule] = (),
    signals: AlertSignals | None = None,
) -> Classified:
    """The category: the alerts' category label, else the first matching rule (configured, then built-in), else
    what the alerts' impact signals say (users or requests failing: availability; slow: performance)."""
    if label:
        try:
            return Classified(Category(label), f"the alerts say category {label}")
        except ValueError:
            pass
    for rule in [*rules, *BUILT_IN]:
        matched = rule.matches(names, label_sets)
        if matched is not None:
            where = "" if rule.source == "built-in" else f" ({rule.source})"
            return Classified(rule.category, f"{matched} reads as {rule.category}{where}")
    if signals is not None and (signals.users_affected or signals.error_ratio):
        return Classified(Category.AVAILABILITY, "no rule matches; the alerts report users or requests failing")
    if signals is not None and signals.latency_multiple:
        return Classified(Category.PERFORMANCE, "no rule matches; the alerts report slow responses")
    return Classified(None, "no category rule matches the alert names or labels")


def parse_rules(items: Any, source: str) -> tuple[list[CategoryRule], list[str]]:
    """Rules from the triage ConfigMap's `categories` (a YAML list); bad entries are skipped and named."""
    rules: list[CategoryRule] = []
    problems: list[str] = []
    if not isinstance(items, list):
        return rules, [f"{source}: expected a list of rules (category, alertname, labels)"]
    for index, item in enumerate(items):
        where = f"{source}[{index}]"
        try:
            if not isinstance(item, dict):
                raise ValueError("expected a mapping with category, alertname and/or labels")
            category = Category(str(item.get("category", "")))
            alertname = item.get("alertname")
            labels = item.get("labels") or {}
            if not alertname and not labels:
                raise ValueError("give alertname, labels or both")
            if not isinstance(labels, dict):
                raise ValueError("labels must be a mapping of label name to regular expression")
            patterns = [str(alertname or ""), *(str(v) for v in labels.values())]
            if any(len(p) > MAX_PATTERN for p in patterns):
                raise ValueError(f"patterns are limited to {MAX_PATTERN} characters")
            rules.append(
                CategoryRule(
                    category,
                    re.compile(str(alertname), re.IGNORECASE) if alertname else None,
                    {str(k): re.compile(str(v), re.IGNORECASE) for k, v in labels.items()},
                    source=where,
                )
            )
        except (ValueError, re.error) as error:
            problems.append(f"{where}: {error}")
    return rules, problems
