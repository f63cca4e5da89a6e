"""Who watches the watchman: the chart's dashboard and PrometheusRule, queried against a real Prometheus.

A real Prometheus scrapes a real operator (as the chart's ServiceMonitor would: job = the release's
Service) while an incident is opened, paged, acknowledged and resolved and one delivery is refused.
Then every PromQL query the chart ships returns data: a query with a typo, a renamed metric or a
label the operator does not export fails here, not on a dashboard at 3 a.m.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from localenv.controlplane import KubeCluster
from localenv.helm import render
from localenv.monitoring import Prometheus
from localenv.objects import create, get, listed, patch_spec, status
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_webhook, service_alert
from localenv.procs import wait_until
from localenv.standins import StandIns

pytestmark = pytest.mark.e2e
RELEASE, JOB = "io", "io-incidentops"  # the ServiceMonitor's job label is the release's Service
TOKEN = "monitoring-token"
MONITORING = ("monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule")
# Grafana's variables, as a dashboard over the last few minutes would set them
GRAFANA = {"$__rate_interval": "1m", "$__range": "5m"}
_COMPARISON = re.compile(r"\s*(>|<|==|!=|>=|<=)\s*[0-9.]+\s*$")


def chart_queries() -> dict[str, str]:
    """Every PromQL expression of the rendered chart: the rules' query parts and the dashboard's targets."""
    objects = render(RELEASE, "incidentops", api_versions=MONITORING)
    queries: dict[str, str] = {}
    [rule_object] = [o for o in objects if o["kind"] == "PrometheusRule"]
    for group in rule_object["spec"]["groups"]:
        for rule in group["rules"]:
            expr = _COMPARISON.sub("", rule["expr"])  # the signal, without its threshold
            inner = re.fullmatch(r"absent\((.*)\)", expr)
            queries[f"rule {rule['alert']}"] = inner.group(1) if inner else expr  # absent(x): x must exist
    [dashboard] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard")]
    for panel in json.loads(dashboard["data"]["incidentops.json"])["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA.items():
                expr = expr.replace(variable, value)
            queries[f"panel {panel['title']} {target['refId']}"] = expr
    return queries


def test_every_query_of_the_dashboard_and_the_rules_returns_data(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    prometheus_factory: Callable[..., Prometheus],
    standins: StandIns,
) -> None:
    api = kube_cluster.api
    level = {
        "name": "primary",
        "after": "0s",
        "targets": [{"type": "user", "name": "alice"}],
        "channels": [{"type": "webhook", "url": standins.base("webhook") + "/page"}],
    }
    create(api, namespace, "EscalationPolicy", "page", {"levels": [level]})
    env = {"INCIDENTOPS_WEBHOOK_TOKEN": TOKEN, "INCIDENTOPS_NOTIFY_ALLOW": standins.allow, "INCIDENTOPS_LLM": "off"}
    operator = operator_factory([namespace], env)
    prometheus = prometheus_factory(scrape_targets=[f"127.0.0.1:{operator.port}"], job_name=JOB)
    # scraped before anything happens, as a long-running operator is: its counters start at zero there
    prometheus.wait_for_value(f'up{{job="{JOB}"}}', lambda v: v == 1, timeout=30)

    url = f"{operator.url}/api/v1/alertmanager"
    refused = httpx.post(url, json=am_webhook([]), headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert refused.status_code == 401
    alert = am_webhook([service_alert("checkout", namespace)])
    assert httpx.post(url, json=alert, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).status_code == 200
    standins.wait_for("webhook", 1, timeout=30)
    [incident] = wait_until(lambda: listed(api, namespace), timeout=30, what="the incident")
    name = incident["metadata"]["name"]
    patch_spec(api, namespace, "Incident", name, {"acknowledgement": {"by": "alice"}})
    wait_until(
        lambda: status(get(api, namespace, "Incident", name), "state") == "Acknowledged",
        timeout=30,
        what="acknowledged",
    )
    patch_spec(api, namespace, "Incident", name, {"resolution": {"by": "alice", "summary": "rolled back"}})
    prometheus.wait_for_value(
        f'sum(incidentops_time_to_resolve_seconds_count{{job="{JOB}"}})', lambda v: v >= 1, timeout=60
    )
    prometheus.wait_for_value(f'sum(incidentops_alerts_rejected_total{{job="{JOB}"}})', lambda v: v >= 1, timeout=30)

    empty: list[str] = []
    answered: dict[str, list[dict[str, Any]]] = {}
    for title, query in chart_queries().items():
        result = prometheus.query(query)  # a malformed query raises with Prometheus's own message
        answered[title] = result
        if not result:
            empty.append(f"{title}: {query}")
    assert not empty, "queries that returned no data:\n" + "\n".join(empty)
    assert len(answered) >= 15  # every rule and every panel target was found and run

    def values(title: str) -> dict[str, float]:
        return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in answered[title]}

    # not only zeros from series that start at zero: what this scenario did shows, as counted
    assert sum(values("panel Alerts received A").values()) > 0
    assert sum(values("panel Incidents opened by severity A").values()) > 0
    delivered = values("panel Notifications by result A")
    assert delivered[json.dumps({"channel": "webhook", "result": "delivered"})] > 0
    assert values("rule IncidentopsWebhookFailures") and max(values("rule IncidentopsWebhookFailures").values()) > 0
    # the numbers mean what the panels say: MTTA of this incident's severity is a real duration
    severity = incident["spec"]["severity"]
    mtta = values("panel MTTA by severity (mean time to acknowledge) A")
    assert math.isfinite(mtta[json.dumps({"severity": severity})]) and mtta[json.dumps({"severity": severity})] >= 0
    lateness = next(iter(values("panel Escalation lateness (p50, p99) A").values()))
    assert math.isfinite(lateness)  # one page was sent, so its lateness is known
    [up] = answered["rule IncidentopsOperatorDown"]
    assert up["metric"]["job"] == JOB and float(up["value"][1]) == 1.0  # up, so the rule stays quiet
