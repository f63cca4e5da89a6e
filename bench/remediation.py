"""Remediation benchmark against the real local control plane and a real operator process.

Two phases, each in a fresh namespace:
  1. latency   N incidents one after another, each on its own Deployment, matching an automatic
               restart runbook. Measured per incident, all with the same clock (this machine):
               - webhook sent → the Deployment changed (seen by a watch on Deployments), and
               - Incident detected → first step's intent recorded (status.detectedAt →
                 steps[0].startedAt, the operator's own timestamps).
  2. storm     S incidents at once (one Alertmanager group of S services), all matching one
               automatic runbook, with a storm budget B: the actions taken must equal B, the other
               S - B must wait for humans (StormBudgetSpent), and no Deployment may change twice.
Prints figures; asserts nothing about timings (the exit code says whether the storm counts held).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from datetime import datetime
from typing import Any

import httpx
from kubernetes import client as k8s
from kubernetes import watch
from measure import fresh_namespace, percentile

from localenv.controlplane import api_client, use_or_start_cluster
from localenv.crds import install_crds
from localenv.demo_workload import create_demo_deployment
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_alert, am_webhook
from localenv.procs import wait_until

TOKEN = "bench-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
GROUP, VERSION = "incidentops.dev", "v1alpha1"
KEY = "incidentops.dev/action-key"


def prepare(api: k8s.ApiClient, prefix: str, count: int) -> tuple[str, list[str]]:
    """A fresh namespace with the runbook and `count` one-replica Deployments."""
    namespace = fresh_namespace(api, prefix)
    runbook(namespace, api)
    services = [f"svc-{i:03d}" for i in range(count)]
    for service in services:
        create_demo_deployment(api, namespace, service, replicas=1)
    return namespace, services


def runbook(namespace: str, api: k8s.ApiClient) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Runbook",
        "metadata": {"name": "restart-on-crash"},
        "spec": {
            "match": {"alertnames": ["PodsCrashing"], "categories": ["availability"]},
            "steps": [{"name": "restart", "action": "restart"}],
            "automatic": True,
            "safety": {"maxExecutionsPerHour": 100, "cooldown": "0s"},
        },
    }
    k8s.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, "runbooks", body)


def alert(namespace: str, service: str) -> dict[str, Any]:
    labels = {
        "alertname": "PodsCrashing",
        "namespace": namespace,
        "service": service,
        "deployment": service,
        "severity": "warning",
        "category": "availability",
    }
    return am_alert(labels)


class DeploymentWatch:
    """When each Deployment was first changed by incidentops (its action key appeared), and how often."""

    def __init__(self, api: k8s.ApiClient, namespace: str) -> None:
        self.changed: dict[str, float] = {}
        self.keys: dict[str, set[str]] = {}
        self.generations: dict[str, set[int]] = {}
        self._stop = threading.Event()
        self._api, self._namespace = api, namespace
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        apps = k8s.AppsV1Api(self._api)
        while not self._stop.is_set():
            stream = watch.Watch()
            for event in stream.stream(apps.list_namespaced_deployment, self._namespace, timeout_seconds=5):
                obj = event["object"]
                name = obj.metadata.name
                key = (obj.metadata.annotations or {}).get(KEY)
                self.generations.setdefault(name, set()).add(obj.metadata.generation)
                if key:
                    self.keys.setdefault(name, set()).add(key)
                    self.changed.setdefault(name, time.time())
                if self._stop.is_set():
                    stream.stop()

    def stop(self) -> None:
        self._stop.set()


def incidents(api: k8s.ApiClient, namespace: str) -> list[dict[str, Any]]:
    listing = k8s.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, "incidents")
    items: list[dict[str, Any]] = listing["items"]
    return items


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def latency(api: k8s.ApiClient, kubeconfig: Any, logs: Any, count: int) -> int:
    print(f"== latency: {count} incidents one after another, each restarting its own Deployment", flush=True)
    namespace, services = prepare(api, "bench-remediate", count)
    env = {"INCIDENTOPS_WEBHOOK_TOKEN": TOKEN, "INCIDENTOPS_STORM_BUDGET": str(count + 1)}
    operator = OperatorProcess(
        kubeconfig=kubeconfig, namespaces=[namespace], log_path=logs / "remediation-latency.log", extra_env=env
    ).start()
    watcher = DeploymentWatch(api, namespace)
    sent: dict[str, float] = {}
    try:
        time.sleep(1.0)  # the watch is listening
        for service in services:
            sent[service] = time.time()
            response = httpx.post(
                f"{operator.url}/api/v1/alertmanager",
                json=am_webhook([alert(namespace, service)]),
                headers=HEADERS,
                timeout=30,
            )
            response.raise_for_status()
            wait_until(lambda s=service: s in watcher.changed, timeout=30, what=f"{service} restarted")
    finally:
        watcher.stop()
        operator.stop()
    end_to_end = [watcher.changed[s] - sent[s] for s in services]
    decided = []
    for incident in incidents(api, namespace):
        step = incident["status"]["remediation"]["steps"][0]
        decided.append((_time(step["startedAt"]) - _time(incident["status"]["detectedAt"])).total_seconds())
    ms = 1000.0
    print(
        f"webhook → Deployment changed   p50 {percentile(end_to_end, 0.5) * ms:7.1f} ms   "
        f"p99 {percentile(end_to_end, 0.99) * ms:7.1f} ms   max {max(end_to_end) * ms:7.1f} ms"
    )
    print(
        f"Incident → first action        p50 {percentile(decided, 0.5) * ms:7.1f} ms   "
        f"p99 {percentile(decided, 0.99) * ms:7.1f} ms   max {max(decided) * ms:7.1f} ms   "
        "(detectedAt → the step's recorded start)"
    )
    k8s.CoreV1Api(api).delete_namespace(namespace)
    return 0


def storm(api: k8s.ApiClient, kubeconfig: Any, logs: Any, count: int, budget: int) -> int:
    print(f"\n== storm: {count} incidents at once, one automatic runbook, storm budget {budget}", flush=True)
    namespace, services = prepare(api, "bench-remediate-storm", count)
    generations = {
        d.metadata.name: d.metadata.generation for d in k8s.AppsV1Api(api).list_namespaced_deployment(namespace).items
    }
    env = {"INCIDENTOPS_WEBHOOK_TOKEN": TOKEN, "INCIDENTOPS_STORM_BUDGET": str(budget)}
    operator = OperatorProcess(
        kubeconfig=kubeconfig, namespaces=[namespace], log_path=logs / "remediation-storm.log", extra_env=env
    ).start()
    started = time.time()
    try:
        body = am_webhook([alert(namespace, s) for s in services])
        httpx.post(f"{operator.url}/api/v1/alertmanager", json=body, headers=HEADERS, timeout=60).raise_for_status()

        def settled() -> list[dict[str, Any]] | None:
            found = incidents(api, namespace)
            phases = [((i.get("status") or {}).get("remediation") or {}).get("phase") for i in found]
            done = len(found) == count and all(p in ("Done", "AwaitingApproval", "Failed") for p in phases)
            return found if done else None

        found = wait_until(settled, timeout=180, interval=0.5, what="every incident decided")
        elapsed = time.time() - started
        time.sleep(3.0)  # anything acting twice would show by now
        metrics = httpx.get(f"{operator.url}/metrics", timeout=10).text
    finally:
        operator.stop()
    acted = [i for i in found if i["status"]["remediation"]["phase"] == "Done"]
    waiting = [i for i in found if i["status"]["remediation"]["phase"] == "AwaitingApproval"]
    reasons = {s["reason"] for i in waiting for s in i["status"]["remediation"]["steps"]}
    live = {
        d.metadata.name: d.metadata.generation for d in k8s.AppsV1Api(api).list_namespaced_deployment(namespace).items
    }
    changes = {name: live[name] - generations[name] for name in live}
    double = [name for name, delta in changes.items() if delta > 1]
    changed = sum(1 for delta in changes.values() if delta >= 1)
    print(f"incidents           {len(found):5d} (decided in {elapsed:.1f}s)")
    print(f"acted automatically {len(acted):5d} (budget {budget})")
    print(f"waiting for humans  {len(waiting):5d} (reasons: {', '.join(sorted(reasons))})")
    print(f"Deployments changed {changed:5d}; changed more than once: {len(double)}")
    blocks = [line for line in metrics.splitlines() if line.startswith("incidentops_remediation_guard_blocks_total")]
    print("guard blocks        " + "; ".join(blocks))
    k8s.CoreV1Api(api).delete_namespace(namespace)
    ok = len(acted) == budget and len(waiting) == count - budget and changed == budget and not double
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=100, help="N: incidents in the latency phase")
    parser.add_argument("--storm", type=int, default=50, help="S: incidents in the storm")
    parser.add_argument("--budget", type=int, default=5, help="B: the storm budget of automatic runs")
    args = parser.parse_args()
    kubeconfig = use_or_start_cluster()
    os.environ["KUBECONFIG"] = str(kubeconfig)
    api = api_client(kubeconfig)
    install_crds(api)
    logs = kubeconfig.parent / "bench"
    logs.mkdir(exist_ok=True)
    status = latency(api, kubeconfig, logs, args.incidents)
    return status or storm(api, kubeconfig, logs, args.storm, args.budget)


if __name__ == "__main__":
    sys.exit(main())
