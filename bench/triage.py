"""Triage benchmark: what a model's investigation adds, and what a storm costs, on the real local cluster.

The model is the Messages API stand-in in auto mode (it calls every read tool it is offered, then
answers), each answer delayed by --latency seconds (1 s: a fast model's answer). Two phases, each
with a fresh operator in a fresh namespace:
  1. latency   N incidents, one every --every seconds (rules answer at once; the model after): per
               incident, rules result -> model result (llm.startedAt, the first look that wrote the
               rules' result and the claim, -> llm.finishedAt), for max tool calls 3 and 6.
  2. storm     50 incidents at once, default budgets: model calls per incident, the total against
               the hourly budget, how many fell back on it.
Prints figures; asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client as k8s
from measure import fresh_namespace, percentile

from localenv.controlplane import api_client, use_or_start_cluster
from localenv.crds import install_crds
from localenv.objects import listed, status
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_alert, am_webhook
from localenv.procs import wait_until
from localenv.standins import StandIns

TOKEN = "bench-token"


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def operator(kubeconfig: Path, namespace: str, standins: StandIns, env: dict[str, str]) -> OperatorProcess:
    settings = {
        "INCIDENTOPS_WEBHOOK_TOKEN": TOKEN,
        "INCIDENTOPS_ESCALATION": "false",
        "INCIDENTOPS_REMEDIATION": "false",
        "ANTHROPIC_API_KEY": "sk-ant-bench-key-0000",
        "ANTHROPIC_BASE_URL": standins.base("anthropic"),
        **env,
    }
    handle = OperatorProcess(
        kubeconfig=kubeconfig,
        namespaces=[namespace],
        extra_env=settings,
        log_path=Path(f"/tmp/bench-triage-{namespace}.log"),
    )
    return handle.start(ready_timeout=60)


def fire(url: str, namespace: str, services: list[str]) -> None:
    alerts = [
        am_alert(
            {"alertname": "CheckoutErrors", "namespace": namespace, "service": s, "severity": "warning"},
            summary=f"{s} errors",
            annotations={"errorRatio": "0.2"},
        )
        for s in services
    ]
    answer = httpx.post(
        f"{url}/api/v1/alertmanager", json=am_webhook(alerts), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    )
    answer.raise_for_status()


def finished(api: k8s.ApiClient, namespace: str, count: int, timeout: float) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        found = listed(api, namespace)
        over = [i for i in found if status(i, "triage", "llm", "state") in ("Answered", "FellBack")]
        return over if len(over) >= count else None

    result: list[dict[str, Any]] = wait_until(done, timeout=timeout, interval=0.5, what=f"{count} investigations")
    return result


def latency(api: k8s.ApiClient, kubeconfig: Path, standins: StandIns, count: int, every: float, tools: int) -> None:
    namespace = fresh_namespace(api, f"bench-triage-t{tools}")
    standins.clear_requests()
    # A budget that does not bind here: this phase measures time; the storm phase measures the budget.
    settings = {"INCIDENTOPS_LLM_MAX_TOOL_CALLS": str(tools), "INCIDENTOPS_LLM_CALLS_PER_HOUR": "1000"}
    handle = operator(kubeconfig, namespace, standins, settings)
    try:
        for index in range(count):
            fire(handle.url, namespace, [f"svc-{index:03d}"])
            time.sleep(every)  # an arrival rate, not a wait for a condition
        incidents = finished(api, namespace, count, timeout=60 + count * 10)
    finally:
        handle.stop()
    added = [
        (
            parse(status(i, "triage", "llm", "finishedAt")) - parse(status(i, "triage", "llm", "startedAt"))
        ).total_seconds()
        for i in incidents
    ]
    model = [float(status(i, "triage", "llm", "seconds") or 0) for i in incidents]
    calls = [int(status(i, "triage", "llm", "calls") or 0) for i in incidents]
    answered = sum(1 for i in incidents if status(i, "triage", "llm", "state") == "Answered")
    print(
        f"  max tool calls {tools}: {count} incidents, {answered} answered, {sum(calls) / count:.1f} calls each; "
        f"rules result -> model result p50 {percentile(added, 0.5):.2f} s, p99 {percentile(added, 0.99):.2f} s "
        f"(of which the investigation itself p50 {percentile(model, 0.5):.2f} s)"
    )


def storm(api: k8s.ApiClient, kubeconfig: Path, standins: StandIns, count: int) -> None:
    namespace = fresh_namespace(api, "bench-triage-storm")
    standins.clear_requests()
    handle = operator(kubeconfig, namespace, standins, {})
    try:
        fire(handle.url, namespace, [f"svc-{i:03d}" for i in range(count)])
        incidents = finished(api, namespace, count, timeout=600)
    finally:
        handle.stop()
    calls = [int(status(i, "triage", "llm", "calls") or 0) for i in incidents]
    reasons: dict[str, int] = {}
    for incident in incidents:
        key = status(incident, "triage", "llm", "fallback") or "answered"
        reasons[key] = reasons.get(key, 0) + 1
    received = len(standins.received("anthropic"))
    print(
        f"  {count} incidents at once: {sum(calls)} model calls in all (stand-in received {received}; the "
        f"hourly budget is 120), per incident mean {sum(calls) / count:.2f}, max {max(calls)}; outcomes {reasons}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=20)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between incidents in the latency phase")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds the stand-in takes per answer")
    parser.add_argument("--storm", type=int, default=50)
    args = parser.parse_args()
    kubeconfig = use_or_start_cluster()
    api = api_client(kubeconfig)
    install_crds(api)
    with StandIns() as standins:
        standins.anthropic_auto(latency=args.latency)
        print(f"triage with a model answering in {args.latency:g} s (the local stand-in, auto mode)")
        for tools in (3, 6):
            latency(api, kubeconfig, standins, args.incidents, args.every, tools)
        storm(api, kubeconfig, standins, args.storm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
