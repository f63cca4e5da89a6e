"""Runs one investigation for an incident: gathers what the tools may read, then lets the model loose on it.

Everything the model could reach is fixed here, before it says a word: the incident's own
namespace, its Deployments, the runbooks that match it, the named queries that apply to it.
Whatever goes wrong ends in an Outcome with a fallback reason, never in an exception: the rules'
result then stands.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.incident import ENDED_STATES, IncidentSpec, IncidentStatus, RulesTriage
from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.api.v1alpha1.runbook import RunbookSpec
from incidentops.kube import AsyncKube, KubeError, Obj
from incidentops.llm import Llm
from incidentops.prometheus import Prometheus
from incidentops.triage.dependencies import Dependencies
from incidentops.triage.llm.investigation import Limits, Outcome, investigate
from incidentops.triage.llm.prompt import prompt
from incidentops.triage.llm.tools import Evidence, OpenIncident, Toolbox
from incidentops.triage.settings import SettingsSource

log = logging.getLogger(__name__)
CONCURRENT = 4  # investigations at once per process: a storm queues them rather than opening 50 calls at once
_REGEX_SPECIAL = re.compile(r"([\\.^$|?*+()\[\]{}])")


def _literal(value: str) -> str:
    """A value inside a PromQL double-quoted string: backslashes and quotes escaped, one line.

    Cut before it is escaped: cutting after could leave a lone backslash that escapes the closing quote.
    """
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("\r", " ")


def fill(template: str, namespace: str, service: str) -> str:
    """A named query with the incident's namespace and service in it, escaped (alert text is hostile)."""
    service, namespace = service[:253], namespace[:63]
    return (
        template.replace("$service_re", _literal(_REGEX_SPECIAL.sub(r"\\\1", service)))
        .replace("$service", _literal(service))
        .replace("$namespace", _literal(namespace))
    )


class Investigator:
    """The model with its bounds, and the reads its tools may make."""

    def __init__(
        self,
        llm: Llm,
        kube: AsyncKube,
        prometheus: Prometheus | None,
        settings: SettingsSource,
        dependencies: Dependencies,
        clock: Callable[[], datetime],
        *,
        timeout: timedelta,
        max_tool_calls: int,
        token_budget: int,
        result_bytes: int,
        free_promql: bool,
    ) -> None:
        self.llm = llm
        self.kube = kube
        self.prometheus = prometheus
        self.settings = settings
        self.dependencies = dependencies
        self.clock = clock
        self.timeout = timeout
        self.max_tool_calls = max_tool_calls
        self.token_budget = token_budget
        self.result_bytes = result_bytes
        self.free_promql = free_promql
        self._slots = asyncio.Semaphore(CONCURRENT)

    @property
    def model(self) -> str:
        return self.llm.model

    async def close(self) -> None:
        await self.llm.close()

    async def evidence(self, obj: Obj, runbooks: Mapping[str, RunbookSpec]) -> Evidence:
        meta = obj["metadata"]
        namespace = str(meta["namespace"])
        spec = IncidentSpec.model_validate(obj.get("spec") or {})
        status = IncidentStatus.model_validate(obj.get("status") or {})
        service = spec.service or ""
        settings = await self.settings.current()
        labels = dict(spec.labels or {})
        queries = {
            q.name: (fill(q.query, namespace, service), q.description)
            for q in settings.queries
            if q.applies(spec.service, labels)
        }
        for name, runbook in runbooks.items():
            if runbook.verify is not None:
                queries[f"verify_{re.sub(r'[^a-z0-9_]', '_', name.lower())}"[:63]] = (
                    runbook.verify.query,
                    f"runbook {name}'s verification query",
                )
        graph = await self.dependencies.graph(namespace, settings.dependencies)
        upstream = tuple(sorted(graph.get(service, frozenset())))
        downstream = tuple(sorted(s for s, ups in graph.items() if service in ups))
        related: list[OpenIncident] = []
        linked = set(upstream) | set(downstream)
        if linked:
            try:
                for item in await self.kube.list(INCIDENT, namespace):
                    item_status = item.get("status") or {}
                    other = (item.get("spec") or {}).get("service")
                    if other in linked and item_status.get("state") not in ENDED_STATES:
                        related.append(
                            OpenIncident(
                                str(item["metadata"]["name"]),
                                str(other),
                                item_status.get("severity"),
                                str(item_status.get("state")),
                            )
                        )
            except KubeError as error:
                log.warning("the investigation of %s/%s cannot list incidents: %s", namespace, meta["name"], error)
        workloads = [w.name for w in spec.affected_workloads if w.kind == "Deployment" and w.name]
        if not workloads and service:
            workloads = [service]
        return Evidence(
            namespace=namespace,
            name=str(meta["name"]),
            spec=spec,
            status=status,
            runbooks=dict(runbooks),
            queries=queries,
            upstream=upstream,
            downstream=downstream,
            related=tuple(related[:20]),
            free_promql=self.free_promql,
            workloads=tuple(workloads[:10]),
        )

    async def investigate(self, obj: Obj, runbooks: Mapping[str, RunbookSpec], rules: RulesTriage) -> Outcome:
        """The model's outcome for this incident; a fallback outcome for anything that goes wrong."""
        async with self._slots:
            return await self._investigate(obj, runbooks, rules)

    def _kept_for_the_worst(self, obj: Obj) -> str | None:
        """Why this investigation may not start: the last quarter of the hourly budget is for SEV1 and SEV2."""
        severity = str((obj.get("status") or {}).get("severity") or (obj.get("spec") or {}).get("severity"))
        budget = self.llm.budget
        needs = self.max_tool_calls + 2  # what this investigation may spend: the quarter stays whole after it
        if severity in ("SEV1", "SEV2") or (budget.left() - needs) * 4 >= budget.per_hour:
            return None
        return f"{budget.left()} of {budget.per_hour} hourly model calls are left, kept for SEV1 and SEV2 incidents"

    async def _investigate(self, obj: Obj, runbooks: Mapping[str, RunbookSpec], rules: RulesTriage) -> Outcome:
        kept = self._kept_for_the_worst(obj)
        if kept is not None:
            return Outcome(fallback="call_budget", message=kept)
        started = time.monotonic()
        deadline = started + self.timeout.total_seconds()
        try:
            evidence = await self.evidence(obj, runbooks)
            tools = Toolbox(evidence, self.kube, self.prometheus, self.result_bytes, self.clock, self.llm.secrets)
            text = prompt(evidence.namespace, evidence.name, evidence.spec, evidence.status, rules, tools)
            limits = Limits(self.max_tool_calls, self.token_budget, deadline)
            return await asyncio.wait_for(
                investigate(self.llm, tools, text, limits, self.clock), timeout=self.timeout.total_seconds() + 1
            )
        except TimeoutError:
            return Outcome(fallback="timeout", message="the investigation ran out of time",
                           seconds=round(time.monotonic() - started, 3))  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug must cost an answer, never the operator
            log.exception("the investigation of %s failed", obj["metadata"].get("name"))
            return Outcome(fallback="error", message=type(error).__name__, seconds=round(time.monotonic() - started, 3))


def investigator_settings(config: Any) -> dict[str, Any]:
    """The Investigator's bounds from the operator's settings."""
    return {
        "timeout": timedelta(seconds=config.seconds("llm_timeout")),
        "max_tool_calls": config.llm_max_tool_calls,
        "token_budget": config.llm_token_budget,
        "result_bytes": config.llm_tool_result_bytes,
        "free_promql": config.llm_free_promql,
    }
