"""How bad it got: the peak of each query behind the incident, over the incident's window, from Prometheus.

The queries are the ones the incident was judged by: its alerts' rules (the expression in an
Alertmanager alert's generatorURL, a DetectionRule's compiled query) and its runbook's verify
query. An alert's generatorURL is untrusted text, so its expression is bounded in length and in
number, and Prometheus answers it read-only within the usual timeout.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from incidentops.api.v1alpha1.incident import IncidentStatus
from incidentops.api.v1alpha1.postmortem import Peak
from incidentops.api.v1alpha1.resources import DETECTION_RULE, RUNBOOK
from incidentops.kube import AsyncKube, KubeError
from incidentops.prometheus import Prometheus, PrometheusError

MAX_QUERIES = 5
MAX_LINKED = 2  # expressions from alerts' graph links: at most two, after the trusted ones
MAX_EXPR = 1024
RULE_LABEL = "incidentops_rule"


@dataclass(frozen=True)
class Source:
    query: str
    source: str


def generator_expr(url: str | None) -> str | None:
    """The PromQL of a Prometheus graph link (g0.expr), if it carries one."""
    if not url:
        return None
    try:
        values = parse_qs(urlsplit(url).query).get("g0.expr")
    except ValueError:
        return None
    expr = values[0].strip() if values else ""
    return expr if 0 < len(expr) <= MAX_EXPR else None


async def sources(kube: AsyncKube, namespace: str, status: IncidentStatus, labels: dict[str, str]) -> list[Source]:
    """The queries, trusted first: the DetectionRule's and the runbook's verify query (written by the cluster's
    users), then the expressions in the alerts' graph links (anyone who may send alerts wrote those)."""
    trusted: list[Source] = []
    linked: list[Source] = []
    rules = {labels[RULE_LABEL]} if labels.get(RULE_LABEL) else set()
    for alert in status.alerts.recent:
        if alert.labels.get(RULE_LABEL):
            rules.add(alert.labels[RULE_LABEL])
        expr = generator_expr(alert.generator_url)
        if expr:
            linked.append(Source(expr, f"alert {alert.name}"))
    for rule in sorted(rules)[:MAX_QUERIES]:
        try:
            obj = await kube.get(DETECTION_RULE, namespace, rule)
        except KubeError:
            continue
        query = (obj.get("status") or {}).get("query") or (obj.get("spec") or {}).get("expr")
        if query:
            trusted.append(Source(str(query)[:MAX_EXPR], f"rule {rule}"))
    runbook = status.remediation.runbook if status.remediation else None
    if runbook:
        try:
            obj = await kube.get(RUNBOOK, namespace, runbook)
            query = ((obj.get("spec") or {}).get("verify") or {}).get("query")
            if query:
                trusted.append(Source(str(query)[:MAX_EXPR], f"runbook {runbook}'s verify"))
        except KubeError:
            pass
    unique: dict[str, Source] = {}
    for item in [*trusted, *linked[:MAX_LINKED]]:
        unique.setdefault(item.query, item)
    return list(unique.values())[:MAX_QUERIES]


def _step(seconds: float) -> int:
    return max(1, math.ceil(seconds / 120))


async def peaks(prometheus: Prometheus | None, found: Iterable[Source], start: datetime, end: datetime) -> list[Peak]:
    """The highest value each query reached between start and end (a subquery evaluated at end)."""
    window = max(1.0, (end - start).total_seconds())
    out: list[Peak] = []
    for item in found:
        if prometheus is None:
            out.append(Peak(query=item.query, source=item.source, error="no Prometheus is configured"))
            continue
        expr = f"max(max_over_time(({item.query})[{math.ceil(window)}s:{_step(window)}s]))"
        try:
            series = await asyncio.to_thread(prometheus.query, expr, end)
        except PrometheusError as error:
            out.append(Peak(query=item.query, source=item.source, error=str(error)[:512]))
            continue
        values = [s.value for s in series if math.isfinite(s.value)]
        out.append(
            Peak(
                query=item.query,
                source=item.source,
                peak=round(max(values), 6) if values else None,
                error=None if values else "no samples in the incident's window",
            )
        )
    return out
