"""The model's read-only tools, and submit_triage, the only way it answers.

Every tool reads the incident's own namespace and nothing else; none reads a Secret or an
environment value. Each result is JSON, redacted of anything shaped like a credential, cut to a
bound, and handed over between <untrusted-data> delimiters that the data itself cannot close:
it is evidence to weigh, never instructions. A tool call the model makes up, with arguments it
makes up, is refused in words, never run.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.common import Category, Severity, format_time, parse_time
from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentStatus
from incidentops.api.v1alpha1.runbook import RunbookSpec
from incidentops.kube import AsyncKube, KubeError, NotFound
from incidentops.prometheus import Prometheus, PrometheusError
from incidentops.redaction import redact
from incidentops.triage.llm.changes import history

SUBMIT = "submit_triage"
NONE = "none"
EVENTS_SINCE = timedelta(minutes=30)
MAX_EVENTS = 30
EVENTS_LISTED = 1000
MAX_SERIES = 20
_OPEN = re.compile(r"<\s*/?\s*untrusted-data", re.IGNORECASE)


@dataclass(frozen=True)
class OpenIncident:
    name: str
    service: str
    severity: str | None
    state: str


@dataclass(frozen=True)
class Evidence:
    """What the tools answer from, gathered before the investigation starts (reads only)."""

    namespace: str
    name: str
    spec: IncidentSpec
    status: IncidentStatus
    runbooks: Mapping[str, RunbookSpec]  # the ones that match this incident: the only choices
    queries: Mapping[str, tuple[str, str]]  # name -> (PromQL, description), already filled in
    upstream: tuple[str, ...] = ()
    downstream: tuple[str, ...] = ()
    related: tuple[OpenIncident, ...] = ()
    free_promql: bool = False
    workloads: tuple[str, ...] = ()  # Deployments of the incident (affected workloads, else the service)


@dataclass
class Toolbox:
    """The tools, bound to one incident's evidence and the operator's read-only clients."""

    evidence: Evidence
    kube: AsyncKube
    prometheus: Prometheus | None
    limit: int
    clock: Callable[[], datetime]
    secrets: Sequence[str] = ()
    _tools: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._tools = {
            "alerts": self._alerts,
            "recent_changes": self._changes,
            "events": self._events,
            "metrics": self._metrics,
            "dependencies": self._dependencies,
            "runbooks": self._runbooks,
        }

    # -- what the model is offered ------------------------------------------------------------------

    def definitions(self, *, submit_only: bool = False) -> list[dict[str, Any]]:
        submit = {
            "name": SUBMIT,
            "description": "Give your triage. Call it exactly once, when you have looked at the evidence. The operator "
            "validates it: runbook must be one listed, and every guard and approval still applies.",
            "input_schema": self.answer_schema(),
        }
        if submit_only:
            return [submit]
        queries = sorted(self.evidence.queries)
        metrics: dict[str, Any] = {
            "type": "object",
            "properties": {"query": {"type": "string", "enum": queries or ["none"], "description": "A named query."}},
            "required": ["query"],
        }
        if self.evidence.free_promql:
            metrics["properties"]["promql"] = {"type": "string", "maxLength": 1024, "description": "Own PromQL."}
            metrics["required"] = []
        empty: dict[str, Any] = {"type": "object", "properties": {}}
        return [
            {"name": "alerts", "description": "The incident's alerts: names, labels, summaries, signals.",
             "input_schema": empty},
            {"name": "recent_changes", "description": "Recent rollouts of the service's Deployments: when, which "
             "images, which environment variables changed (names only).", "input_schema": empty},
            {"name": "events", "description": "Recent Kubernetes Events of the service's workloads and pods.",
             "input_schema": empty},
            {"name": "metrics", "description": "Current value of a named metric query: "
             + "; ".join(f"{n}: {self.evidence.queries[n][1] or self.evidence.queries[n][0]}" for n in queries)[:1500],
             "input_schema": metrics},
            {"name": "dependencies", "description": "Services this one depends on and that depend on it, with their "
             "open incidents.", "input_schema": empty},
            {"name": "runbooks", "description": "The runbooks that match this incident (the only ones you may choose).",
             "input_schema": empty},
            submit,
        ]  # fmt: skip

    def answer_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "severity": {"type": "string", "enum": [str(s) for s in Severity]},
                "category": {"type": "string", "enum": [str(c) for c in Category]},
                "runbook": {"type": "string", "enum": [*sorted(self.evidence.runbooks), NONE]},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "reasoning": {"type": "string", "maxLength": 2000},
                "suspectedCause": {"type": "string", "maxLength": 1000},
            },
            "required": ["severity", "category", "runbook", "confidence", "reasoning"],
        }

    # -- running one ----------------------------------------------------------------------------------

    async def run(self, name: str, arguments: Any) -> tuple[str, str | None]:
        """(the result as handed to the model, why it was refused or None)."""
        tool = self._tools.get(name)
        if tool is None:
            return self.wrap(name, {"error": f"there is no tool {name[:64]!r}"}), f"unknown tool {name[:64]}"
        if not isinstance(arguments, dict):
            return self.wrap(name, {"error": "arguments must be an object"}), "arguments were not an object"
        try:
            result = await tool(arguments)
        except ToolRefusal as refusal:
            return self.wrap(name, {"error": str(refusal)}), str(refusal)
        except (KubeError, PrometheusError) as error:
            return self.wrap(name, {"error": f"could not read: {redact(str(error), self.secrets)[:300]}"}), None
        return self.wrap(name, result), None

    def wrap(self, name: str, result: Any) -> str:
        """JSON, redacted, bounded, between delimiters the data cannot close."""
        text = redact(json.dumps(result, default=str, ensure_ascii=False, sort_keys=True), self.secrets)
        text = _OPEN.sub("(untrusted-data)", text)
        if len(text.encode()) > self.limit:
            cut = text.encode()[: self.limit].decode("utf-8", errors="ignore")
            text = cut + f" [cut: the result was longer than {self.limit} bytes]"
        return f'<untrusted-data tool="{name}">\n{text}\n</untrusted-data>'

    # -- the tools ----------------------------------------------------------------------------------

    async def _alerts(self, arguments: dict[str, Any]) -> Any:
        spec, status = self.evidence.spec, self.evidence.status
        return {
            "title": spec.title,
            "summary": spec.summary,
            "service": spec.service,
            "severity": status.severity,
            "labels": spec.labels or {},
            "firing": status.alerts.firing,
            "count": status.alerts.count,
            "names": status.alerts.names,
            "signals": status.alerts.signals.wire() if status.alerts.signals else None,
            "recent": [
                {
                    "name": a.name,
                    "status": a.status,
                    "labels": a.labels,
                    "summary": a.summary,
                    "startsAt": format_time(a.starts_at) if a.starts_at else None,
                }
                for a in status.alerts.recent
            ],
        }

    async def _changes(self, arguments: dict[str, Any]) -> Any:
        out: dict[str, Any] = {}
        for name in self.evidence.workloads:
            try:
                live = await self.kube.deployment(self.evidence.namespace, name)
            except NotFound:
                out[name] = {"error": "no such Deployment"}
                continue
            labels = ((live.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            replica_sets = await self.kube.replica_sets(self.evidence.namespace, selector) if selector else []
            status = live.get("status") or {}
            out[name] = {
                "generation": (live.get("metadata") or {}).get("generation"),
                "replicas": (live.get("spec") or {}).get("replicas"),
                "readyReplicas": status.get("readyReplicas", 0),
                "revisions": history(replica_sets, (live.get("metadata") or {}).get("uid")),
            }
        return out or {"note": "no Deployment is known for this incident"}

    async def _events(self, arguments: dict[str, Any]) -> Any:
        since = self.clock() - EVENTS_SINCE
        prefixes = tuple(self.evidence.workloads)
        namespace = self.evidence.namespace
        seen: dict[str, Any] = {}
        batches = [await self.kube.events(namespace, f"involvedObject.name={name}") for name in prefixes]
        for kind in ("ReplicaSet", "Pod"):  # theirs are named after the Deployment: kept by prefix
            batches.append(await self.kube.events(namespace, f"involvedObject.kind={kind}", EVENTS_LISTED))
        for event in (e for batch in batches for e in batch):
            involved = event.get("involvedObject") or {}
            name = str(involved.get("name", ""))
            uid = str((event.get("metadata") or {}).get("uid", ""))
            if not prefixes or not name.startswith(prefixes) or uid in seen:
                continue
            when = (
                event.get("lastTimestamp")
                or event.get("eventTime")
                or (event.get("metadata") or {}).get("creationTimestamp")
            )
            try:
                at = parse_time(str(when))
            except ValueError:
                continue
            if at < since:
                continue
            seen[uid] = {
                "at": format_time(at),
                "type": event.get("type"),
                "reason": event.get("reason"),
                "object": f"{involved.get('kind')}/{name}",
                "message": str(event.get("message", ""))[:500],
                "count": event.get("count"),
            }
        found = sorted(seen.values(), key=lambda e: str(e["at"]), reverse=True)
        return found[:MAX_EVENTS]

    async def _metrics(self, arguments: dict[str, Any]) -> Any:
        name = arguments.get("query")
        promql = arguments.get("promql")
        if promql is not None:
            if not self.evidence.free_promql:
                raise ToolRefusal("free PromQL is not allowed here (INCIDENTOPS_LLM_FREE_PROMQL): use a named query")
            if not isinstance(promql, str) or not promql.strip() or len(promql) > 1024:
                raise ToolRefusal("promql must be a query of up to 1024 characters")
            query = promql
        elif isinstance(name, str) and name in self.evidence.queries:
            query = self.evidence.queries[name][0]
        else:
            raise ToolRefusal(
                f"unknown query {str(name)[:64]!r}; choose one of {', '.join(sorted(self.evidence.queries))}"
            )
        if self.prometheus is None:
            return {"error": "no Prometheus is configured"}
        series = await asyncio.to_thread(self.prometheus.query, query)
        return {
            "query": query,
            "series": [{"labels": s.labels, "value": s.value} for s in series[:MAX_SERIES]],
            "more": max(0, len(series) - MAX_SERIES),
        }

    async def _dependencies(self, arguments: dict[str, Any]) -> Any:
        return {
            "dependsOn": list(self.evidence.upstream),
            "dependedOnBy": list(self.evidence.downstream),
            "openIncidents": [
                {"name": i.name, "service": i.service, "severity": i.severity, "state": i.state}
                for i in self.evidence.related
            ],
        }

    async def _runbooks(self, arguments: dict[str, Any]) -> Any:
        return [
            {
                "name": name,
                "description": rb.description,
                "automatic": rb.automatic,
                "minConfidence": rb.min_confidence,
                "risk": rb.effective_risk(),
                "steps": [{"name": s.name, "action": str(s.action)} for s in rb.steps],
                "verify": rb.verify.query if rb.verify else None,
            }
            for name, rb in sorted(self.evidence.runbooks.items())
        ]


class ToolRefusal(Exception):
    """A call the tool will not run, with the reason the model is told."""
