"""A local stand-in for a service running as a Deployment, whose health follows that Deployment.

kwok pods are fake, so nothing serves traffic in the cluster. This process runs on the host,
exports Prometheus metrics for simulated traffic, and reads its Deployment from the apiserver:
a `bad` image tag makes it fail, too few ready replicas saturate it, and a rollout restart
clears its memory leak. Remediation that changes the Deployment therefore shows up in
Prometheus exactly as it would for a real service.

Run it with `python -m localenv.demo_workload --kubeconfig K --namespace N --deployment D --port P`.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import yaml
from kubernetes import client as k8s
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from localenv.controlplane import api_client, to_plain
from localenv.procs import ManagedProcess, WaitTimeout, free_port, wait_until

CONTAINER = "app"  # the demo Deployment's one container (kubectl set image deployment/NAME app=...)

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
READ_TIMEOUT = (3.0, 5.0)  # seconds: connect, read
DEFAULT_IMAGE = "demo/app:v1"
_BASE_MEMORY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Behaviour:
    """How the simulated service behaves for a given Deployment state."""

    error_ratio: float
    cpu_utilization: float
    latency_seconds: float


def image_tag(image: str) -> str:
    """The tag of an image reference ("" when untagged; a registry port is not a tag)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else ""


def behaviour_for(image: str, ready_replicas: int, min_replicas: int) -> Behaviour:
    """Map the Deployment's image and readiness to error ratio, CPU and latency."""
    error_ratio = 0.6 if "bad" in image_tag(image) else 0.005
    if ready_replicas < min_replicas:
        return Behaviour(error_ratio=error_ratio, cpu_utilization=0.97, latency_seconds=0.8)
    return Behaviour(error_ratio=error_ratio, cpu_utilization=0.35, latency_seconds=0.05)


def demo_deployment_manifest(name: str, image: str = DEFAULT_IMAGE, replicas: int = 2) -> dict[str, Any]:
    """A Deployment for the demo service; kwok runs its pods on fake nodes."""
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "incidentops-demo"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "containers": [
                        {
                            "name": CONTAINER,
                            "image": image,
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        }
                    ],
                    # kwok nodes carry this taint in some configurations; tolerate it either way
                    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
                },
            },
        },
    }


def create_demo_deployment(
    api: k8s.ApiClient, namespace: str, name: str, image: str = DEFAULT_IMAGE, replicas: int = 2
) -> dict[str, Any]:
    """Create the demo Deployment and return it as the apiserver stored it (a plain dict)."""
    body = k8s.V1Deployment.from_dict(demo_deployment_manifest(name, image, replicas))
    if body is None:
        raise ValueError("empty Deployment manifest")
    created = k8s.AppsV1Api(api).create_namespaced_deployment(namespace, body)
    result: dict[str, Any] = to_plain(api, created)
    return result


def set_deployment_image(api: k8s.ApiClient, namespace: str, name: str, image: str) -> None:
    """Point every container of the Deployment at `image` (what a bad release does)."""
    apps = k8s.AppsV1Api(api)
    pod_spec = apps.read_namespaced_deployment(name, namespace).spec.template.spec
    containers = [{"name": c.name, "image": image} for c in (pod_spec.containers if pod_spec else [])]
    patch = {"spec": {"template": {"spec": {"containers": containers}}}}
    apps.patch_namespaced_deployment(name, namespace, patch)


class DemoService:
    """Simulated traffic plus a Deployment watcher, both feeding one metrics registry."""

    def __init__(
        self,
        apps: k8s.AppsV1Api,
        namespace: str,
        deployment: str,
        *,
        min_replicas: int = 2,
        requests_per_second: float = 50.0,
        leak_bytes_per_second: float = 1024 * 1024,
        poll_interval: float = 0.5,
    ) -> None:
        self.apps = apps
        self.namespace = namespace
        self.deployment = deployment
        self.min_replicas = min_replicas
        self.requests_per_second = requests_per_second
        self.leak_bytes_per_second = leak_bytes_per_second
        self.poll_interval = poll_interval
        self.stopping = threading.Event()
        self.behaviour = behaviour_for(DEFAULT_IMAGE, 0, min_replicas)
        self._restarted_at: str | None = None
        self._seen = False
        self._leak_started = time.monotonic()
        self._random = random.Random()

        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "demo_http_requests_total", "Simulated HTTP requests by status code.", ["code"], registry=registry
        )
        self.duration = Histogram(
            "demo_http_request_duration_seconds",
            "Simulated HTTP request latency.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.cpu = Gauge("demo_cpu_utilization", "Simulated CPU utilization (0..1).", registry=registry)
        self.leak = Gauge(
            "demo_memory_leak_bytes", "Simulated leaking memory; reset by rollout restart.", registry=registry
        )
        self.ready_replicas = Gauge("demo_ready_replicas", "Ready replicas of the Deployment.", registry=registry)
        self.observed = Gauge(
            "demo_deployment_observed", "1 once the Deployment has been read successfully.", registry=registry
        )
        for code in ("200", "500", "503"):
            self.requests.labels(code=code)  # export zeros so rate() works from the first scrape

    def observe_deployment(self) -> None:
        """Read the Deployment once and update the behaviour (errors are logged, not fatal)."""
        try:
            # bounded: a read that hangs on a stuck connection would freeze the workload's view for good
            deployment = self.apps.read_namespaced_deployment(
                self.deployment, self.namespace, _request_timeout=READ_TIMEOUT
            )
        except k8s.ApiException as exc:
            if exc.status == 404:
                self.behaviour = behaviour_for(DEFAULT_IMAGE, 0, self.min_replicas)
                self.ready_replicas.set(0)
                return
            print(f"demo_workload: reading deployment failed: {exc.status} {exc.reason}", file=sys.stderr)
            return
        except Exception as exc:  # the apiserver may be restarting; keep serving metrics
            print(f"demo_workload: reading deployment failed: {exc!r}", file=sys.stderr)
            return
        template = deployment.spec.template
        containers = template.spec.containers if template.spec else []
        image = (containers[0].image or "") if containers else ""
        ready = (deployment.status.ready_replicas or 0) if deployment.status else 0
        self.behaviour = behaviour_for(image, ready, self.min_replicas)
        self.ready_replicas.set(ready)
        restarted_at = (template.metadata.annotations or {}).get(RESTARTED_AT) if template.metadata else None
        if self._seen and restarted_at != self._restarted_at:
            self._leak_started = time.monotonic()
        self._restarted_at = restarted_at
        self._seen = True
        self.observed.set(1)

    def _traffic_tick(self, seconds: float) -> None:
        behaviour = self.behaviour
        count = max(1, round(self.requests_per_second * seconds))
        for _ in range(count):
            failed = self._random.random() < behaviour.error_ratio
            code = self._random.choice(("500", "503")) if failed else "200"
            self.requests.labels(code=code).inc()
            self.duration.observe(behaviour.latency_seconds * self._random.uniform(0.5, 1.5))
        self.cpu.set(min(1.0, behaviour.cpu_utilization + self._random.uniform(-0.02, 0.02)))
        leaked = (time.monotonic() - self._leak_started) * self.leak_bytes_per_second
        self.leak.set(_BASE_MEMORY_BYTES + leaked)

    def run_traffic(self, tick: float = 0.1) -> None:
        """Generate traffic in `tick`-sized batches until stopped."""
        while not self.stopping.wait(tick):
            self._traffic_tick(tick)

    def run(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve /metrics on host:port and run until `stopping` is set."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        traffic = threading.Thread(target=self.run_traffic, name="traffic", daemon=True)
        traffic.start()
        try:
            while True:
                self.observe_deployment()
                if self.stopping.wait(self.poll_interval):
                    break
        finally:
            self.stopping.set()
            traffic.join(timeout=5)
            server.shutdown()
            thread.join(timeout=5)


class DemoWorkloadProcess:
    """Handle on a demo workload started as a subprocess for one Deployment."""

    def __init__(
        self,
        *,
        kubeconfig: Path,
        namespace: str,
        deployment: str,
        log_path: Path,
        api: k8s.ApiClient,
        min_replicas: int = 2,
        image_repository: str = "demo/app",
    ) -> None:
        self.namespace = namespace
        self.deployment = deployment
        self.api = api
        self.image_repository = image_repository
        self.port = free_port()
        self.process = ManagedProcess(
            [
                sys.executable,
                "-m",
                "localenv.demo_workload",
                "--kubeconfig",
                str(kubeconfig),
                "--namespace",
                namespace,
                "--deployment",
                deployment,
                "--port",
                str(self.port),
                "--min-replicas",
                str(min_replicas),
            ],
            log_path=log_path,
        )

    @property
    def target(self) -> str:
        """host:port for a Prometheus scrape config."""
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        """URL of its /metrics endpoint."""
        return f"http://{self.target}/metrics"

    def start(self, timeout: float = 30.0) -> DemoWorkloadProcess:
        """Start and wait until it serves metrics and has read its Deployment once."""
        self.process.start()
        try:
            wait_until(self._observed, timeout=timeout, what=f"demo workload on {self.target}")
        except WaitTimeout as exc:
            self.process.stop()
            raise RuntimeError(f"{exc}\n--- demo workload log ---\n{self.process.tail()}") from None
        return self

    def _observed(self) -> bool:
        if self.process.returncode is not None:
            raise RuntimeError(f"demo workload exited with {self.process.returncode}:\n{self.process.tail()}")
        try:
            body = httpx.get(self.metrics_url, timeout=1.0).text
        except httpx.HTTPError:
            return False
        return "demo_deployment_observed 1.0" in body

    def set_image(self, tag: str) -> None:
        """Switch the Deployment to `image_repository:tag` (or to `tag` if it is a full image)."""
        image = tag if ":" in tag or "/" in tag else f"{self.image_repository}:{tag}"
        set_deployment_image(self.api, self.namespace, self.deployment, image)

    def stop(self) -> None:
        """Stop the process."""
        self.process.stop()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m localenv.demo_workload", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--min-replicas", type=int, default=2)
    parser.add_argument("--requests-per-second", type=float, default=50.0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: serve metrics until SIGTERM/SIGINT."""
    args = _parse_args(argv)
    api = api_client(args.kubeconfig)
    service = DemoService(
        k8s.AppsV1Api(api),
        args.namespace,
        args.deployment,
        min_replicas=args.min_replicas,
        requests_per_second=args.requests_per_second,
    )

    def _stop(signum: int, frame: FrameType | None) -> None:
        service.stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(
        f"demo_workload: serving http://{args.host}:{args.port}/metrics for "
        f"deployment {args.namespace}/{args.deployment}",
        file=sys.stderr,
        flush=True,
    )
    with contextlib.closing(api):
        service.run(args.port, args.host)
    return 0


if __name__ == "__main__":
    sys.exit(main())


ERROR_RATIO = 'sum(rate(demo_http_requests_total{code=~"5.."}[10s])) / sum(rate(demo_http_requests_total[10s]))'


def error_ratio_rule(
    alert: str,
    service: str,
    *,
    namespace: str | None = None,
    threshold: float = 0.2,
    for_: str = "2s",
    keep_firing_for: str | None = None,
) -> str:
    """A Prometheus rule file firing `alert` while the demo workload's 5xx ratio is above `threshold`."""
    labels = {"severity": "critical", "service": service, **({"namespace": namespace} if namespace else {})}
    rule = {
        "alert": alert,
        "expr": f"{ERROR_RATIO} > {threshold}",
        "for": for_,
        "labels": labels,
        "annotations": {
            "summary": f"{service} error ratio is {{{{ $value | humanizePercentage }}}}",
            "errorRatio": "{{ $value }}",  # an impact signal the operator's triage reads
        },
    }
    if keep_firing_for:
        rule["keep_firing_for"] = keep_firing_for
    return yaml.safe_dump({"groups": [{"name": service, "rules": [rule]}]}, sort_keys=False)
