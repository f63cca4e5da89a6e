"""`make demo`: the whole loop on the embedded default, narrated for a newcomer.

Local control plane → CRDs → a demo "checkout" Deployment whose health follows its image →
the operator → real Prometheus and Alertmanager. A bad release makes Prometheus fire, the
Alertmanager webhook opens an Incident, an on-call acknowledges it with the kubectl plugin,
the release is rolled back, and the Incident resolves with its timeline.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

from kubernetes import client as k8s

from localenv import controlplane
from localenv.crds import install_crds
from localenv.demo_workload import ERROR_RATIO, DemoWorkloadProcess, create_demo_deployment, error_ratio_rule
from localenv.monitoring import Alertmanager, Prometheus
from localenv.operator_process import OperatorProcess
from localenv.procs import wait_until

NAMESPACE = "incidentops-demo"
SERVICE = "checkout"
ALERT = "CheckoutHighErrorRatio"
T = TypeVar("T")
_STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"\n[{time.monotonic() - _STARTED:6.1f}s] {text}", flush=True)


def note(text: str) -> None:
    print("\n".join(f"          {line}" for line in text.splitlines()), flush=True)


def step(what: str, action: Callable[[], T]) -> T:
    started = time.monotonic()
    result = action()
    note(f"{what} ({time.monotonic() - started:.1f}s)")
    return result


class Demo:
    """Everything the demo starts, so that it can be stopped (or left running) as one."""

    def __init__(self, work: Path, keep: bool) -> None:
        self.work = work
        self.keep = keep
        self.token = secrets.token_urlsafe(16)
        self.kubeconfig = Path()
        self.api: k8s.ApiClient | None = None
        self.started_cluster = False
        self.operator: OperatorProcess | None = None
        self.workload: DemoWorkloadProcess | None = None
        self.servers: list[Prometheus | Alertmanager] = []

    def kubectl(self, *args: str) -> str:
        result = subprocess.run(
            [str(controlplane.kubectl_binary()), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return (result.stdout + result.stderr).rstrip()

    def plugin(self, *args: str) -> str:
        plugin = shutil.which("kubectl-incident") or str(Path(sys.executable).parent / "kubectl-incident")
        env = {**os.environ, "PATH": f"{Path(plugin).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        result = subprocess.run(
            [str(controlplane.kubectl_binary()), "incident", "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )
        return (result.stdout + result.stderr).rstrip()

    def incidents(self) -> list[dict[str, Any]]:
        listing = k8s.CustomObjectsApi(self.api).list_namespaced_custom_object(
            "incidentops.dev", "v1alpha1", NAMESPACE, "incidents"
        )
        items: list[dict[str, Any]] = cast(dict[str, Any], listing)["items"]
        return items

    def run(self) -> None:
        say("Step 1/8 — a real Kubernetes control plane, built from upstream sources (no Docker needed).")
        note("The first run compiles kube-apiserver, etcd and kwok (about 7 minutes); later runs reuse the cache.")
        self.started_cluster = not controlplane.cluster_status().healthy
        self.kubeconfig = step("control plane ready", controlplane.use_or_start_cluster)
        self.api = api = controlplane.api_client(self.kubeconfig)
        note(self.kubectl("get", "nodes"))

        say("Step 2/8 — installing the incidentops CRDs (Incident, DetectionRule, Runbook, EscalationPolicy).")
        step("CRDs established", lambda: install_crds(api))

        say(f"Step 3/8 — deploying the demo service '{SERVICE}' (image demo/checkout:v1) in namespace {NAMESPACE}.")
        step("fresh namespace", self._fresh_namespace)
        create_demo_deployment(api, NAMESPACE, SERVICE, image="demo/checkout:v1", replicas=2)
        self.workload = workload = DemoWorkloadProcess(
            kubeconfig=self.kubeconfig,
            namespace=NAMESPACE,
            deployment=SERVICE,
            log_path=self.work / "workload.log",
            api=api,
            image_repository="demo/checkout",
        )
        step("its pods run on kwok's fake nodes, and a local process plays its traffic", self.workload.start)
        note(self.kubectl("get", "deployment,pods", "-n", NAMESPACE))

        say("Step 4/8 — starting the incidentops operator (Kopf + webhook server).")
        self.operator = OperatorProcess(
            kubeconfig=self.kubeconfig,
            namespaces=[NAMESPACE],
            log_path=self.work / "operator.log",
            extra_env={"INCIDENTOPS_WEBHOOK_TOKEN": self.token},
        )
        step(f"operator ready on {self.operator.url}", self.operator.start)

        say("Step 5/8 — real Prometheus scrapes the service; real Alertmanager sends its webhook to the operator.")
        alertmanager = Alertmanager(
            self.work / "alertmanager", webhook_url=f"{self.operator.url}/api/v1/alertmanager", bearer_token=self.token
        )
        self.servers.append(step("Alertmanager started", alertmanager.start))
        prometheus = Prometheus(
            self.work / "prometheus",
            scrape_targets=[workload.target],
            rules=error_ratio_rule(ALERT, SERVICE, namespace=NAMESPACE, for_="3s"),
            alertmanager_url=alertmanager.url,
        )
        self.servers.append(step("Prometheus started", prometheus.start))
        note(f"Prometheus {prometheus.url}, Alertmanager {alertmanager.url}")
        up = f'up{{instance="{workload.target}"}}'
        step("Prometheus sees the service up", lambda: prometheus.wait_for_value(up, lambda v: v == 1.0, 60.0))
        step("Prometheus has an error ratio", lambda: prometheus.wait_for_value(ERROR_RATIO, lambda v: True, 30.0))
        note(f"healthy: error ratio {self._error_ratio(prometheus)}")
        note(f"$ kubectl get incidents -n {NAMESPACE}\n{self.kubectl('get', 'incidents', '-n', NAMESPACE)}")

        say("Step 6/8 — a bad release: the Deployment's image becomes demo/checkout:bad.")
        workload.set_image("bad")
        step(
            "Prometheus' rule CheckoutHighErrorRatio is firing",
            lambda: prometheus.wait_for_alert(ALERT, "firing", 90.0),
        )
        note(f"error ratio now {self._error_ratio(prometheus)}")
        [incident] = step(
            "Alertmanager's webhook opened an Incident",
            lambda: wait_until(self.incidents, timeout=90, what="the incident"),
        )
        name = incident["metadata"]["name"]
        note(f"$ kubectl get incidents -n {NAMESPACE}\n{self.kubectl('get', 'incidents', '-n', NAMESPACE)}")

        say("Step 7/8 — the on-call engineer acknowledges it with the kubectl plugin.")
        note(f"$ kubectl incident ack {name} -n {NAMESPACE} --by alice")
        note(self.plugin("ack", name, "-n", NAMESPACE, "--by", "alice"))
        step(
            "the operator recorded the acknowledgement",
            lambda: wait_until(lambda: self._state(name) == "Acknowledged", timeout=30, what="Acknowledged"),
        )

        say("Step 8/8 — rolling the release back to demo/checkout:v1.")
        workload.set_image("v1")
        step(
            "the alert resolved, Alertmanager said so, and the Incident resolved itself",
            lambda: wait_until(lambda: self._state(name) == "Resolved", timeout=120, what="Resolved"),
        )
        note(self.kubectl("get", "incidents", "-n", NAMESPACE))
        note(f"$ kubectl incident timeline {name} -n {NAMESPACE}")
        note(self.plugin("timeline", name, "-n", NAMESPACE))
        final = next(i for i in self.incidents() if i["metadata"]["name"] == name)["status"]
        metrics = final.get("metrics", {})
        note(
            f"time to acknowledge: {metrics.get('timeToAcknowledgeSeconds')}s, "
            f"time to resolve: {metrics.get('timeToResolveSeconds')}s, alerts: {final['alerts']['count']}"
        )
        say("Done: one bad release, one Incident, acknowledged and resolved, with its timeline and Events.")

    def _error_ratio(self, prometheus: Prometheus) -> str:
        value = prometheus.query_value(ERROR_RATIO)
        return "unknown" if value is None else f"{value:.1%}"

    def _state(self, name: str) -> str | None:
        found = [i for i in self.incidents() if i["metadata"]["name"] == name]
        return found[0].get("status", {}).get("state") if found else None

    def _fresh_namespace(self) -> None:
        core = k8s.CoreV1Api(self.api)
        with contextlib.suppress(k8s.ApiException):
            core.delete_namespace(NAMESPACE)

        def gone() -> bool:
            try:
                core.read_namespace(NAMESPACE)
            except k8s.ApiException as error:
                return bool(error.status == 404)
            return False

        wait_until(gone, timeout=120, what=f"old namespace {NAMESPACE} deleted")
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=NAMESPACE)))
        wait_until(
            lambda: core.read_namespaced_service_account("default", NAMESPACE),
            timeout=30,
            what="namespace ready",
            ignore=(k8s.ApiException,),
        )

    def stop(self) -> None:
        if self.keep:
            self._explain_what_is_running()
            return
        say("Tearing down (run `make demo KEEP=1` to leave everything running and poke around).")
        for server in self.servers:
            server.stop()
        if self.operator:
            self.operator.stop()
        if self.workload:
            self.workload.stop()
        if self.api is not None:
            with contextlib.suppress(k8s.ApiException):
                k8s.CoreV1Api(self.api).delete_namespace(NAMESPACE)
        if self.started_cluster:
            controlplane.cluster_down()
            note("the local control plane is stopped")
        else:
            note("the control plane was already running before the demo; it stays up (make cluster-down stops it)")

    def _explain_what_is_running(self) -> None:
        say("Everything is still running. Poke around:")
        note(f"export KUBECONFIG={self.kubeconfig}")
        note(f"export PATH={controlplane.kubectl_binary().parent}:{Path(sys.executable).parent}:$PATH")
        note(f"kubectl get incidents -n {NAMESPACE}; kubectl describe incident -n {NAMESPACE}")
        note(f"kubectl incident list -n {NAMESPACE}")
        if self.operator:
            note(f"operator: {self.operator.url}/metrics   (log: {self.work / 'operator.log'})")
            note(
                f"send an event: curl -H 'Authorization: Bearer {self.token}' {self.operator.url}/api/v1/events "
                f"""-d '{{"type":"alert.fired","source":"me","alert_id":"1","alert_name":"Test","service":"x"}}'"""
            )
        for server in self.servers:
            note(f"{type(server).__name__}: {server.url}")
        pids = [p.process.pid for p in (self.operator, self.workload) if p and p.process.pid]
        pids += [s.process.pid for s in self.servers if s.process.pid]
        note(f"stop it all: kill {' '.join(map(str, pids))}; make cluster-down")


@contextlib.contextmanager
def _demo(keep: bool) -> Iterator[Demo]:
    work = controlplane.repo_root() / ".dev" / "demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    demo = Demo(work, keep)
    try:
        yield demo
    finally:
        demo.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave everything running afterwards")
    args = parser.parse_args(argv)
    try:
        with _demo(args.keep) as demo:
            demo.run()
    except Exception as error:  # the demo explains itself rather than dumping a traceback
        print(f"\nThe demo failed: {error}", file=sys.stderr)
        print("Logs are under .dev/demo/ (operator.log, workload.log, prometheus/, alertmanager/).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
