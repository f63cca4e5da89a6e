"""promql-check: a query against Prometheus that must come out as configured (no series, by default).

A probe, like wait-rollout: it changes nothing and the executor checks happened() until it passes
or the step times out. A query Prometheus refuses fails the step at once (the runbook is wrong);
Prometheus not answering is only "not yet".
"""

from __future__ import annotations

from typing import Any

from incidentops.kube import KubeClient
from incidentops.prometheus import PrometheusError
from incidentops.remediation.actions.base import ActionError, Context, Plan, Replans, refused
from incidentops.remediation.targets import Target


class PromqlCheck(Replans):
    probe = True

    def plan(self, kube: KubeClient, target: Target, params: dict[str, Any], key: str, context: Context) -> Plan:
        query = params.get("query")
        if not query:
            return refused(target, "InvalidParams", "promql-check needs params.query")
        if context.prometheus is None:
            return refused(target, "NoPrometheus", "no Prometheus is configured (INCIDENTOPS_PROMETHEUS_URL)")
        wanted = params.get("passWhen") or "empty"
        check = {"query": str(query), "passWhen": wanted, "prometheus": context.prometheus}
        return Plan(
            target, check, [], {}, reason=f"until {query} returns {'no series' if wanted == 'empty' else 'series'}"
        )

    def apply(self, kube: KubeClient, plan: Plan) -> str | None:
        return None  # nothing to change: the step waits for happened()

    def happened(self, kube: KubeClient, plan: Plan, key: str) -> bool:
        check = plan.patch if isinstance(plan.patch, dict) else {}
        try:
            series = check["prometheus"].query(check["query"])
        except PrometheusError as error:
            if error.unreachable:
                return False
            raise ActionError(str(error)) from None
        return (not series) if check["passWhen"] == "empty" else bool(series)

    def undo(self, kube: KubeClient, target: Target, before: dict[str, Any], key: str, context: Context) -> Plan:
        return Plan(target, None, reason="a query changes nothing")


ACTION = PromqlCheck()
