"""What the operator costs at 10,000 incidents, on the real local cluster: memory, creation, a restart.

One operator process in a fresh namespace:
  1. idle        RSS with no incident, once it is ready and quiet.
  2. create      N incidents through the webhook (one alert per new service, 8 senders at once): the
                 rate, then the same Incidents by a plain client (create + status) for the ceiling.
  3. open        RSS with the N open incidents, once every first look is done.
  4. restart     the operator killed and started again over them: time to /readyz, what the webhook
                 answers meanwhile (503 with Retry-After, never a held request), a new alert sent as
                 soon as the process listens -> its Incident (retrying on 503 as Alertmanager does),
                 and RSS once it is quiet again.
Prints figures; asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from kubernetes import client as k8s
from measure import fresh_namespace
from rules import rss_mib
from storm import HEADERS, TOKEN, ceiling

from incidentops.api.v1alpha1.common import GROUP, VERSION
from localenv.controlplane import api_client, use_or_start_cluster
from localenv.crds import install_crds
from localenv.objects import listed
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_webhook, service_alert
from localenv.procs import free_port, wait_until

QUIET = 15.0  # seconds of no status write before RSS is read


async def create(url: str, namespace: str, count: int, senders: int, first: int = 0) -> float:
    semaphore = asyncio.Semaphore(senders)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as client:

        async def send(i: int) -> None:
            body = json.dumps(am_webhook([service_alert(f"svc{i:05d}", namespace, severity="warning")])).encode()
            for _ in range(20):
                async with semaphore, client.post(f"{url}/api/v1/alertmanager", data=body, headers=HEADERS) as answer:
                    if answer.status == 200:
                        return
                    await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))
            raise RuntimeError(f"alert {i} not taken")

        began = time.monotonic()
        await asyncio.gather(*(send(i) for i in range(first, first + count)))
        return time.monotonic() - began


def status_writes(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("incidentops_status_writes_total{") and 'result="ok"' in line
    )


def quiet(handle: OperatorProcess) -> float:
    """RSS once no status write happened for QUIET seconds (every first look done)."""
    last, since = status_writes(handle.url), time.monotonic()
    while time.monotonic() - since < QUIET:
        time.sleep(1.0)  # a sampling period, not a wait for a condition: the condition is its quiet
        now = status_writes(handle.url)
        if now != last:
            last, since = now, time.monotonic()
    pid = handle.process.pid
    assert pid is not None
    return rss_mib(pid)


def calls_per_incident(url: str, count: int) -> str:
    """The operator's apiserver calls by verb and resource, per incident created: what bounds the rate."""
    calls: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith("incidentops_kube_request_seconds_count{"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1 : line.index("}")].split(","))
            name = f"{labels['verb'].strip(chr(34))} {labels['resource'].strip(chr(34))}"
            calls[name] = calls.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    shown = sorted(((n, c / count) for n, c in calls.items() if c / count >= 0.05), key=lambda item: -item[1])
    return ", ".join(f"{name} {share:.2f}" for name, share in shown) + f" (total {sum(calls.values()) / count:.1f})"


def kubectl_get(kubeconfig: Path, namespace: str) -> float:
    """How long a human waits for the list (kubectl pages 500 at a time, the server prints the columns)."""
    began = time.monotonic()
    subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "get", "incidents", "-n", namespace],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - began


def operator(kubeconfig: Path, namespace: str, port: int, env: dict[str, str], log: Path) -> OperatorProcess:
    settings = {"INCIDENTOPS_WEBHOOK_TOKEN": TOKEN, "INCIDENTOPS_LLM": "off", **env}
    return OperatorProcess(kubeconfig=kubeconfig, namespaces=[namespace], extra_env=settings, port=port, log_path=log)


def restart(handle: OperatorProcess, api: k8s.ApiClient, namespace: str) -> dict[str, Any]:
    """Start the (killed) operator again; send one new alert at once and follow it to its Incident, while
    another thread watches /readyz turn 200."""
    ready: list[float] = []
    began = time.monotonic()

    def readiness() -> None:
        while time.monotonic() - began < 300:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{handle.url}/readyz", timeout=5).status_code == 200:
                    ready.append(time.monotonic() - began)
                    return
            time.sleep(0.05)

    handle.process.start()
    watcher = threading.Thread(target=readiness, daemon=True)
    watcher.start()
    wait_until(
        lambda: httpx.get(f"{handle.url}/healthz", timeout=1).status_code == 200,
        timeout=120,
        interval=0.05,
        what="the HTTP server",
        ignore=(httpx.HTTPError,),
    )
    listening = time.monotonic() - began
    body = am_webhook([service_alert("after-restart", namespace, severity="warning")])
    answers: list[tuple[int, float]] = []
    sent = time.monotonic()
    while True:
        t0 = time.monotonic()
        answer = httpx.post(f"{handle.url}/api/v1/alertmanager", json=body, headers=HEADERS, timeout=60)
        answers.append((answer.status_code, time.monotonic() - t0))
        if answer.status_code == 200:
            break
        time.sleep(float(answer.headers.get("Retry-After", "1")) / 10)  # the bench retries sooner than Alertmanager
    taken = time.monotonic() - sent
    custom = k8s.CustomObjectsApi(api)
    wait_until(  # by its service label: a LIST of all 10,000 would take the bench itself seconds
        lambda: custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "incidents", label_selector="incidentops.dev/service=after-restart"
        )["items"],
        timeout=60,
        interval=0.05,
        what="the incident",
    )
    visible = time.monotonic() - sent
    watcher.join(timeout=300)
    return {"listening": listening, "ready": ready[0] if ready else float("nan"), "taken": taken,
            "visible": visible, "answers": answers}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="an operator setting")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    kubeconfig = use_or_start_cluster()
    api = api_client(kubeconfig)
    install_crds(api)
    namespace = fresh_namespace(api, "bench-scale")
    logs = Path("/tmp/bench-scale")
    logs.mkdir(exist_ok=True)
    handle = operator(kubeconfig, namespace, free_port(), env, logs / "operator.log").start(ready_timeout=120)
    print(f"== {args.incidents} incidents in namespace {namespace}, one operator process ({env or 'defaults'})")
    print(f"idle               {quiet(handle):8.0f} MiB RSS")
    took = asyncio.run(create(handle.url, namespace, args.incidents, args.senders))
    rate = args.incidents / took
    print(f"created            {rate:8.1f} incidents/s through the webhook ({args.incidents} in {took:.0f} s)")
    print(f"open               {quiet(handle):8.0f} MiB RSS with {args.incidents} open incidents")
    print(f"API calls          per incident: {calls_per_incident(handle.url, args.incidents)}")
    print(f"kubectl get        {kubectl_get(kubeconfig, namespace):8.1f} s for `kubectl get incidents` (all columns)")
    handle.kill()
    after = restart(handle, api, namespace)
    held = max(seconds for _, seconds in after["answers"])
    codes = sorted({code for code, _ in after["answers"]})
    print(f"restart            listening after {after['listening']:.1f} s, ready after {after['ready']:.1f} s")
    print(
        f"new alert          taken {after['taken']:.1f} s after the first try ({len(after['answers'])} tries, "
        f"answers {codes}, the longest held {held:.2f} s); its Incident seen after {after['visible']:.1f} s"
    )
    print(f"after restart      {quiet(handle):8.0f} MiB RSS")
    handle.stop()
    template = next(i for i in listed(api, namespace) if i.get("status"))
    plain = fresh_namespace(api, "bench-scale-plain")
    count = min(args.incidents, 2000)
    raw = count / ceiling(api, plain, template, count, 16)
    print(
        f"plain client       {raw:8.1f} incidents/s (create + status, 16 workers, {count}); "
        f"the webhook's rate is {rate / raw:.2f} of it"
    )
    for name in (namespace, plain):
        k8s.CoreV1Api(api).delete_namespace(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
