"""Alert-storm benchmark against the real local control plane.

Three phases, each against a fresh namespace and a real operator process:
  1. storm     N alerts over K correlation keys, sent open-loop at a fixed rate (one alert per
               webhook, as Alertmanager does per group), reporting the sustained ingest rate,
               incidents created (must equal K), webhook latency p50/p99 (2xx means persisted)
               and alert-to-Incident-visible latency (first alert of a key sent → the Incident
               seen by a watch).
  2. creation  C single-alert webhooks for C new keys, as fast as the operator takes them: the
               Incident creation rate through ingestion.
  3. ceiling   the same C Incidents (create + status write) by a plain client with the same
               apiserver concurrency: the raw rate, the ceiling for phase 2.
Prints figures; asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import aiohttp
import httpx
from kubernetes import client as k8s
from kubernetes import watch
from measure import fresh_namespace, percentile

from localenv.controlplane import api_client, use_or_start_cluster
from localenv.crds import install_crds
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_webhook, service_alert
from localenv.procs import wait_until

TOKEN = "bench-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
GROUP, VERSION = "incidentops.dev", "v1alpha1"


def apiserver_requests(api: k8s.ApiClient) -> tuple[float, float]:
    """Requests on Incidents the apiserver answered so far: (409s, status writes that landed), any writer."""
    conflicts = writes = 0.0
    for labels, value in re.findall(r"^apiserver_request_total\{([^}]*)\} (\S+)$", _raw_metrics(api), re.M):
        if 'resource="incidents"' not in labels:
            continue
        if 'code="409"' in labels:
            conflicts += float(value)
        elif 'code="200"' in labels and 'subresource="status"' in labels and 'verb="PUT"' in labels:
            writes += float(value)
    return conflicts, writes


def _raw_metrics(api: k8s.ApiClient) -> str:
    """The apiserver's own /metrics, through the same connection settings as the client."""
    from kubernetes.client.api_client import ApiClient  # noqa: PLC0415

    assert isinstance(api, ApiClient)
    answer = api.rest_client.pool_manager.request("GET", f"{api.configuration.host}/metrics", headers=_auth(api))
    return str(answer.data.decode())


def _auth(api: k8s.ApiClient) -> dict[str, str]:
    token = api.configuration.api_key.get("authorization") or api.configuration.api_key.get("BearerToken")
    return {"Authorization": token} if token else {}


def server_quantile(metrics: str, q: float) -> float:
    """A quantile of incidentops_webhook_duration_seconds, read from the operator's own histogram."""
    buckets = [
        (float(le), float(count))
        for le, count in re.findall(
            r'incidentops_webhook_duration_seconds_bucket\{endpoint="alertmanager",le="([^"]+)"\} (\S+)', metrics
        )
    ]
    total = buckets[-1][1]
    return next(le for le, count in buckets if count >= q * total)


class IncidentWatch:
    """Records when each service's Incident first became visible to a watcher."""

    def __init__(self, api: k8s.ApiClient, namespace: str) -> None:
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._api, self._namespace = api, namespace
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        custom = k8s.CustomObjectsApi(self._api)
        while not self._stop.is_set():
            stream = watch.Watch()
            for event in stream.stream(
                custom.list_namespaced_custom_object, GROUP, VERSION, self._namespace, "incidents", timeout_seconds=5
            ):
                service = event["object"].get("spec", {}).get("service")
                if service and service not in self.seen:
                    self.seen[service] = time.monotonic()
                if self._stop.is_set():
                    stream.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def incidents(api: k8s.ApiClient, namespace: str) -> list[dict[str, Any]]:
    listing = k8s.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, "incidents")
    items: list[dict[str, Any]] = cast(dict[str, Any], listing)["items"]
    return items


async def storm(
    operator: OperatorProcess, namespace: str, total: int, keys: int, rate: float
) -> tuple[list[float], dict[str, float], float, int]:
    latencies: list[float] = []
    first_sent: dict[str, float] = {}
    failures = 0
    bodies = [
        json.dumps(am_webhook([service_alert(f"svc{i % keys}", namespace, instance=str(i // keys))])).encode()
        for i in range(total)
    ]
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as client:

        async def send(i: int) -> None:
            nonlocal failures
            service = f"svc{i % keys}"
            start = time.monotonic()
            first_sent.setdefault(service, start)
            async with client.post(f"{operator.url}/api/v1/alertmanager", data=bodies[i], headers=HEADERS) as answer:
                await answer.read()
                failures += answer.status != 200
            latencies.append(time.monotonic() - start)

        began = time.monotonic()
        tasks = []
        for i in range(total):
            delay = began + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(i)))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - began
    return latencies, first_sent, elapsed, failures


async def creation(operator: OperatorProcess, namespace: str, count: int, concurrency: int) -> float:
    semaphore = asyncio.Semaphore(concurrency)
    bodies = [json.dumps(am_webhook([service_alert(f"new{i}", namespace)])).encode() for i in range(count)]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as client:

        async def send(i: int) -> None:
            async with (
                semaphore,
                client.post(f"{operator.url}/api/v1/alertmanager", data=bodies[i], headers=HEADERS) as answer,
            ):
                answer.raise_for_status()

        began = time.monotonic()
        await asyncio.gather(*(send(i) for i in range(count)))
        return time.monotonic() - began


def ceiling(api: k8s.ApiClient, namespace: str, template: dict[str, Any], count: int, workers: int) -> float:
    """A plain client writing the same Incidents (create, then status), `workers` at a time.

    `template` is an Incident the operator created; each copy differs only in name and key.
    """
    custom = k8s.CustomObjectsApi(api)
    meta = template["metadata"]

    def one(i: int) -> None:
        labels = {**meta.get("labels", {}), "incidentops.dev/correlation": f"{i:010d}"}
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Incident",
            "metadata": {"name": f"raw-{i}", "labels": labels, "annotations": meta.get("annotations", {})},
            "spec": template["spec"],
        }
        created = cast(
            dict[str, Any], custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", body)
        )
        created["status"] = template["status"]
        custom.replace_namespaced_custom_object_status(GROUP, VERSION, namespace, "incidents", f"raw-{i}", created)

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, range(count)))
    return time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=6000, help="N: alerts in the storm")
    parser.add_argument("--keys", type=int, default=50, help="K: correlation keys in the storm")
    parser.add_argument("--rate", type=float, default=250.0, help="alerts per second offered")
    parser.add_argument("--create", type=int, default=400, help="C: incidents in the creation phases")
    parser.add_argument("--workers", type=int, default=16, help="apiserver concurrency (operator and plain client)")
    args = parser.parse_args()

    kubeconfig = use_or_start_cluster()
    os.environ["KUBECONFIG"] = str(kubeconfig)
    api = api_client(kubeconfig)
    install_crds(api)
    env = {"INCIDENTOPS_WEBHOOK_TOKEN": TOKEN, "INCIDENTOPS_KUBE_WORKERS": str(args.workers)}
    logs = kubeconfig.parent / "bench"
    logs.mkdir(exist_ok=True)

    print(f"== storm: {args.alerts} alerts over {args.keys} keys offered at {args.rate:.0f}/s", flush=True)
    namespace = fresh_namespace(api, "bench-storm")
    operator = OperatorProcess(
        kubeconfig=kubeconfig, namespaces=[namespace], log_path=logs / "storm.log", extra_env=env
    ).start()
    watcher = IncidentWatch(api, namespace)
    conflicts_before, writes_before = apiserver_requests(api)
    try:
        latencies, first_sent, elapsed, failures = asyncio.run(
            storm(operator, namespace, args.alerts, args.keys, args.rate)
        )
        wait_until(lambda: len(watcher.seen) >= args.keys, timeout=30, what="every incident seen by the watch")
        time.sleep(2)  # the concerns' first looks after the last alert
        metrics = httpx.get(f"{operator.url}/metrics").text
        conflicts_after, writes_after = apiserver_requests(api)
        conflicts, writes = conflicts_after - conflicts_before, writes_after - writes_before
    finally:
        watcher.stop()
        operator.stop()
    found = incidents(api, namespace)
    visible = [watcher.seen[s] - t for s, t in first_sent.items() if s in watcher.seen]
    counted = sum(i["status"]["alerts"]["count"] for i in found)
    deliveries = sum(i["status"]["alerts"]["deliveries"] for i in found)
    ms = 1000.0
    print(f"ingested            {args.alerts / elapsed:8.1f} alerts/s sustained ({elapsed:.1f}s, {failures} non-2xx)")
    print(f"incidents created   {len(found):8d} (K = {args.keys}; duplicates: {len(found) - args.keys})")
    print(f"alerts recorded     {counted:8d} distinct, {deliveries} deliveries (sent {args.alerts})")
    print(
        f"webhook latency     p50 {percentile(latencies, 0.5) * ms:7.1f} ms   "
        f"p99 {percentile(latencies, 0.99) * ms:7.1f} ms   max {max(latencies) * ms:7.1f} ms"
    )
    print(
        f"  server-side       p50 <= {server_quantile(metrics, 0.5) * ms:5.0f} ms   "
        f"p99 <= {server_quantile(metrics, 0.99) * ms:5.0f} ms (the operator's own histogram buckets)"
    )
    print(
        f"alert→Incident seen p50 {percentile(visible, 0.5) * ms:7.1f} ms   "
        f"p99 {percentile(visible, 0.99) * ms:7.1f} ms"
    )
    per_1000 = conflicts / args.alerts * 1000
    print(f"write conflicts     {per_1000:8.1f} per 1,000 alerts ({conflicts:.0f} 409s on Incidents, any writer)")
    print(f"status writes       {writes / args.alerts * 1000:8.1f} per 1,000 alerts ({writes:.0f} landed, any writer)")

    print(f"\n== creation: {args.create} new incidents through the webhook, then by a plain client", flush=True)
    namespace = fresh_namespace(api, "bench-create")
    operator = OperatorProcess(
        kubeconfig=kubeconfig, namespaces=[namespace], log_path=logs / "create.log", extra_env=env
    ).start()
    try:
        ours = asyncio.run(creation(operator, namespace, args.create, concurrency=args.workers * 2))
    finally:
        operator.stop()
    made = incidents(api, namespace)
    created = len(made)
    raw_namespace = fresh_namespace(api, "bench-raw")
    raw = ceiling(api, raw_namespace, made[0], args.create, args.workers)
    print(f"through incidentops {args.create / ours:8.1f} incidents/s ({created} created)")
    print(
        f"plain client        {args.create / raw:8.1f} incidents/s "
        f"(the same Incidents: create + status, {args.workers} workers; no Events)"
    )
    print(f"ratio               {raw / ours:8.2f} of the raw rate")
    for ns in (namespace, raw_namespace):
        k8s.CoreV1Api(api).delete_namespace(ns)
    return 0 if created == args.create and len(found) == args.keys else 1


if __name__ == "__main__":
    sys.exit(main())
