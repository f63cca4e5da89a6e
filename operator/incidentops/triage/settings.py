"""What triage is told beyond the alerts: category rules, declared dependencies, named metric queries.

All three come from one ConfigMap (INCIDENTOPS_TRIAGE_CONFIGMAP=namespace/name, re-read every
minute), keys `categories`, `dependencies` and `queries`, each YAML. Without it the built-in
category rules and queries apply, and dependencies come from workload annotations only. A bad
entry is skipped and logged; the rest still applies.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import yaml

from incidentops.kube import AsyncKube, KubeError
from incidentops.triage.categories import CategoryRule, parse_rules

log = logging.getLogger(__name__)
REFRESH = timedelta(minutes=1)
MAX_QUERIES = 30
QUERY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class NamedQuery:
    """A PromQL query the model may ask for by name: `$namespace`, `$service` (and `$service_re`) filled in."""

    name: str
    query: str
    description: str = ""
    services: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    def applies(self, service: str | None, labels: Mapping[str, str]) -> bool:
        if self.services and service not in self.services:
            return False
        return all(labels.get(k) == v for k, v in self.labels.items())


_HTTP = '{namespace="$namespace",service="$service"'
BUILT_IN_QUERIES: tuple[NamedQuery, ...] = (
    NamedQuery(
        "error_ratio",
        f'sum(rate(http_requests_total{_HTTP},code=~"5.."}}[5m])) / sum(rate(http_requests_total{_HTTP}}}[5m]))',
        "share of HTTP requests answered 5xx over 5 minutes",
    ),
    NamedQuery(
        "latency_p99",
        f"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{_HTTP}}}[5m])))",
        "99th percentile HTTP latency in seconds over 5 minutes",
    ),
    NamedQuery(
        "restarts",
        'sum(increase(kube_pod_container_status_restarts_total{namespace="$namespace",pod=~"$service_re-.*"}[15m]))',
        "container restarts of the service's pods in 15 minutes",
    ),
    NamedQuery(
        "cpu_saturation",
        'sum(rate(container_cpu_usage_seconds_total{namespace="$namespace",pod=~"$service_re-.*"}[5m])) / '
        'sum(kube_pod_container_resource_limits{namespace="$namespace",pod=~"$service_re-.*",resource="cpu"})',
        "CPU used as a share of the limits",
    ),
    NamedQuery(
        "memory_saturation",
        'sum(container_memory_working_set_bytes{namespace="$namespace",pod=~"$service_re-.*"}) / '
        'sum(kube_pod_container_resource_limits{namespace="$namespace",pod=~"$service_re-.*",resource="memory"})',
        "memory used as a share of the limits",
    ),
)


@dataclass(frozen=True)
class TriageSettings:
    category_rules: tuple[CategoryRule, ...] = ()
    dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # "ns/service" or "service" -> upstream
    queries: tuple[NamedQuery, ...] = BUILT_IN_QUERIES
    problems: tuple[str, ...] = ()


def _load(text: str | None, key: str, problems: list[str]) -> Any:
    if not text:
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        problems.append(f"{key}: not YAML ({str(error).splitlines()[0]})")
        return None


def _dependencies(items: Any, problems: list[str]) -> dict[str, tuple[str, ...]]:
    if items is None:
        return {}
    if not isinstance(items, dict):
        problems.append("dependencies: expected a mapping of service to the services it depends on")
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for service, upstream in items.items():
        names = upstream.split(",") if isinstance(upstream, str) else upstream if isinstance(upstream, list) else None
        if names is None:
            problems.append(f"dependencies.{service}: expected a list or a comma-separated string")
            continue
        out[str(service)] = tuple(str(n).strip() for n in names if str(n).strip())[:20]
    return out


def _queries(items: Any, problems: list[str]) -> tuple[NamedQuery, ...]:
    if items is None:
        return BUILT_IN_QUERIES
    if not isinstance(items, list):
        problems.append("queries: expected a list of {name, query, description, services, labels}")
        return BUILT_IN_QUERIES
    found: dict[str, NamedQuery] = {}
    for index, item in enumerate(items[:MAX_QUERIES]):
        if not isinstance(item, dict) or not QUERY_NAME.match(str(item.get("name", ""))) or not item.get("query"):
            problems.append(f"queries[{index}]: needs a name (lower_case, up to 63) and a query")
            continue
        services = item.get("services") or []
        labels = item.get("labels") or {}
        if not isinstance(services, list) or not isinstance(labels, dict):
            problems.append(f"queries[{index}]: services must be a list and labels a mapping")
            continue
        query = NamedQuery(
            str(item["name"]),
            str(item["query"])[:2048],
            str(item.get("description") or "")[:256],
            tuple(str(s) for s in services),
            {str(k): str(v) for k, v in labels.items()},
        )
        found.setdefault(query.name, query)
    built_in = [q for q in BUILT_IN_QUERIES if q.name not in found]
    return (*found.values(), *built_in)


def parse(data: Mapping[str, str]) -> TriageSettings:
    """Settings from the ConfigMap's data; what cannot be read is named in problems and left out."""
    problems: list[str] = []
    rules, bad = parse_rules(_load(data.get("categories"), "categories", problems) or [], "categories")
    problems += bad
    dependencies = _dependencies(_load(data.get("dependencies"), "dependencies", problems), problems)
    queries = _queries(_load(data.get("queries"), "queries", problems), problems)
    return TriageSettings(tuple(rules), dependencies, queries, tuple(problems))


class SettingsSource:
    """The triage ConfigMap, read at most once a minute; its last good reading outlives a failed one."""

    def __init__(self, kube: AsyncKube, ref: str, clock: Callable[[], datetime]) -> None:
        self.kube = kube
        self.ref = ref
        self.clock = clock
        self._settings = TriageSettings()
        self._read_at: datetime | None = None
        self._told: set[str] = set()

    async def current(self) -> TriageSettings:
        now = self.clock()
        if not self.ref or (self._read_at is not None and now - self._read_at < REFRESH):
            return self._settings
        self._read_at = now
        namespace, _, name = self.ref.partition("/")
        try:
            data = await self.kube.configmap_data(namespace, name)
        except KubeError as error:
            self._tell(f"cannot read the triage ConfigMap {self.ref} ({error}); using what was read before")
            return self._settings
        self._settings = parse(data)
        for problem in self._settings.problems:
            self._tell(f"triage ConfigMap {self.ref}: {problem}; that entry is left out")
        return self._settings

    def _tell(self, message: str) -> None:
        if message not in self._told:
            self._told.add(message)
            log.warning("%s", message)
