"""DetectionRule benchmark: N rules at a fixed interval against the real Prometheus and a real operator.

Creates N rules (a few of them firing), lets the operator evaluate them for a while, then reports:
- evaluations done against those due (missed = rules not evaluated within interval + 1 s at the end),
- evaluation lag p50/p99 (how late each evaluation started against its rule's schedule, from the
  operator's own histogram),
- the operator's CPU (share of one core) and memory (RSS) over the run,
- Prometheus' query load (instant queries per second, from its own /metrics).
Prints figures; asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client as k8s
from measure import fresh_namespace

from localenv.controlplane import api_client, use_or_start_cluster
from localenv.crds import install_crds
from localenv.monitoring import Prometheus
from localenv.operator_process import OperatorProcess

GROUP, VERSION = "incidentops.dev", "v1alpha1"


def rule(index: int, interval: str, firing: bool) -> dict[str, Any]:
    vector = f'label_replace(vector({index % 7}), "shard", "s{index}", "", "")'
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DetectionRule",
        "metadata": {"name": f"rule-{index:04d}"},
        "spec": {"expr": vector if firing else f"{vector} > 100", "interval": interval, "service": f"svc-{index}"},
    }


def histogram_quantile(before: str, after: str, name: str, q: float) -> float:
    """A quantile of what the histogram gained between two scrapes (the warm-up left out)."""

    def buckets(metrics: str) -> list[tuple[float, float]]:
        return [(float(le), float(n)) for le, n in re.findall(rf'{name}_bucket\{{le="([^"]+)"\}} (\S+)', metrics)]

    gained = [(le, n - m) for (le, n), (_, m) in zip(buckets(after), buckets(before), strict=True)]
    total = gained[-1][1] if gained else 0.0
    return next((le for le, n in gained if n >= q * total), float("inf"))


def counter(metrics: str, pattern: str) -> float:
    return sum(float(v) for v in re.findall(pattern, metrics))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--interval", default="30s")
    parser.add_argument("--firing", type=int, default=10, help="how many of the rules fire")
    parser.add_argument("--seconds", type=float, default=150.0, help="how long to measure, after the warm-up")
    args = parser.parse_args()
    interval = float(args.interval.rstrip("s"))
    kubeconfig = use_or_start_cluster()
    os.environ["KUBECONFIG"] = str(kubeconfig)
    api = api_client(kubeconfig)
    install_crds(api)
    logs = kubeconfig.parent / "bench"
    logs.mkdir(exist_ok=True)
    namespace = fresh_namespace(api, "bench-rules")
    prometheus = Prometheus(logs / "rules-prometheus").start()
    custom = k8s.CustomObjectsApi(api)
    print(f"== {args.rules} rules every {args.interval} ({args.firing} firing), measured for {args.seconds:.0f}s")
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, "detectionrules", rule(i, args.interval, i < args.firing)
                ),
                range(args.rules),
            )
        )
    env = {"INCIDENTOPS_WEBHOOK_TOKEN": "bench", "INCIDENTOPS_PROMETHEUS_URL": prometheus.url}
    operator = OperatorProcess(
        kubeconfig=kubeconfig, namespaces=[namespace], log_path=logs / "rules.log", extra_env=env
    ).start(ready_timeout=120)
    pid = operator.process.pid
    assert pid is not None
    try:
        time.sleep(interval + 5)  # warm-up: every rule found and on its grid
        before_metrics = httpx.get(f"{operator.url}/metrics", timeout=30).text
        before_prom = httpx.get(f"{prometheus.url}/metrics", timeout=30).text
        before_cpu, started = cpu_seconds(pid), time.monotonic()
        baseline = peak = rss_mib(pid)
        while time.monotonic() - started < args.seconds:
            time.sleep(5)
            peak = max(peak, rss_mib(pid))
        elapsed = time.monotonic() - started
        cpu = (cpu_seconds(pid) - before_cpu) / elapsed
        after_metrics = httpx.get(f"{operator.url}/metrics", timeout=30).text
        after_prom = httpx.get(f"{prometheus.url}/metrics", timeout=30).text
        now = datetime.now(UTC)
        items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "detectionrules")["items"]
    finally:
        operator.stop()
        prometheus.stop()
    evaluations = counter(after_metrics, r"incidentops_rule_evaluations_total\{[^}]*\} (\S+)") - counter(
        before_metrics, r"incidentops_rule_evaluations_total\{[^}]*\} (\S+)"
    )
    expected = args.rules * elapsed / interval
    stale = 0
    for item in items:
        last = (item.get("status") or {}).get("lastEvaluation")
        age = (now - datetime.fromisoformat(last.replace("Z", "+00:00"))).total_seconds() if last else 1e9
        stale += age > max(interval, 60) + 1 + 5  # lastEvaluation is written at least once a minute
    queries = r'prometheus_http_requests_total\{code="200",handler="/api/v1/query"\} (\S+)'
    query_rate = (counter(after_prom, queries) - counter(before_prom, queries)) / elapsed
    firing = sum(1 for i in items if (i.get("status") or {}).get("state") == "Firing")
    print(f"evaluations         {evaluations:8.0f} done, {expected:8.0f} due ({evaluations / expected:.1%})")
    print(f"rules behind        {stale:8d} (last evaluation older than max(interval, 1m) + 1 s at the end)")
    writes = r'incidentops_rule_status_writes_total\{result="written"\} (\S+)'
    written = (counter(after_metrics, writes) - counter(before_metrics, writes)) / elapsed
    print(
        f"status writes       {written:8.2f} per second ({written * elapsed:.0f} in {elapsed:.0f} s; a write when "
        "something changed, the evaluation time at most once a minute)"
    )
    lag = "incidentops_rule_evaluation_lag_seconds"
    print(
        f"evaluation lag      p50 <= {histogram_quantile(before_metrics, after_metrics, lag, 0.5) * 1000:.0f} ms   "
        f"p99 <= {histogram_quantile(before_metrics, after_metrics, lag, 0.99) * 1000:.0f} ms "
        "(the operator's histogram buckets)"
    )
    print(f"operator            {cpu:8.1%} of one core, {baseline:.0f} MiB RSS after warm-up, {peak:.0f} MiB at most")
    print(f"Prometheus          {query_rate:8.1f} instant queries/s")
    print(f"rules firing        {firing:8d} (expected {args.firing})")
    k8s.CoreV1Api(api).delete_namespace(namespace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
