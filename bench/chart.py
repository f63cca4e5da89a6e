"""The chart on the local cluster: how long `helm install` takes, and the operator in the chart's settings.

  1. install   `helm install --wait` (namespaced mode, two replicas) to a Ready Deployment; kwok runs
               the pods, so this is the chart's own cost: rendering, the apiserver's admission, rollout.
  2. operator  the operator process started as the chart's ServiceAccount (a TokenRequest token), with
               the env the chart's Deployment sets (MALLOC_ARENA_MAX=2, JSON logs, its namespaces, the
               token from the chart's Secret): time to /readyz, and RSS once quiet.
  3. demo load the demo's loop, as the demo runs it: a Deployment, a Runbook that scales it, a policy
               paging a webhook; one alert -> incident -> remediation Done -> page delivered; then a
               burst of 200 alerts over 40 services. RSS once quiet.
Prints figures; asserts nothing about timings.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
from kubernetes import client as k8s
from measure import fresh_namespace
from scale import quiet

from localenv.controlplane import api_client, use_or_start_cluster
from localenv.crds import install_crds
from localenv.demo_workload import create_demo_deployment
from localenv.helm import install, service_account_kubeconfig, uninstall
from localenv.objects import create, listed, status
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_alert, am_webhook, service_alert
from localenv.procs import free_port, wait_until
from localenv.standins import StandIns

RELEASE = "bench"


def main() -> int:
    kubeconfig = use_or_start_cluster()
    api = api_client(kubeconfig)
    install_crds(api)
    namespace = fresh_namespace(api, "bench-chart")
    work = Path(tempfile.mkdtemp(prefix="bench-chart-"))
    standins = StandIns()
    standins.start()
    began = time.monotonic()
    install(
        RELEASE, namespace, kubeconfig, {"watchNamespaces[0]": namespace, "replicaCount": "2", "crds.enabled": "false"}
    )
    print(f"helm install --wait (2 replicas, namespaced, kwok pods) to Ready: {time.monotonic() - began:.1f} s")
    handle: OperatorProcess | None = None
    try:
        create_demo_deployment(api, namespace, "checkout", replicas=2)
        runbook = {
            "match": {"alertnames": ["CheckoutDown"]},
            "automatic": True,
            "minConfidence": 0.5,
            "steps": [
                {"name": "scale-out", "action": "scale", "params": {"replicas": 3}, "target": {"kind": "Deployment"}}
            ],
        }
        level = {
            "name": "primary",
            "after": "0s",
            "targets": [{"type": "user", "name": "alice"}],
            "channels": [{"type": "webhook", "url": standins.base("webhook") + "/page"}],
        }
        create(api, namespace, "Runbook", "scale-checkout", runbook)
        create(api, namespace, "EscalationPolicy", "page", {"levels": [level]})
        sa_config = service_account_kubeconfig(api, namespace, f"{RELEASE}-incidentops", work / "sa.kubeconfig")
        secret = k8s.CoreV1Api(api).read_namespaced_secret(f"{RELEASE}-incidentops-webhook", namespace)
        token = base64.b64decode(secret.data["token"]).decode()
        env = {
            "MALLOC_ARENA_MAX": "2",
            "INCIDENTOPS_LOG_FORMAT": "json",
            "INCIDENTOPS_WEBHOOK_TOKEN_SECRET": f"{namespace}/{RELEASE}-incidentops-webhook/token",
            "INCIDENTOPS_NOTIFY_ALLOW": standins.allow,
            "INCIDENTOPS_LLM": "off",
        }
        handle = OperatorProcess(
            kubeconfig=sa_config,
            namespaces=[namespace],
            log_path=work / "operator.log",
            extra_env=env,
            port=free_port(),
        )
        started = time.monotonic()
        handle.start(ready_timeout=120)
        print(f"operator as the chart's ServiceAccount, start to /readyz: {time.monotonic() - started:.1f} s")
        print(f"RSS idle (chart settings): {quiet(handle):.0f} MiB")

        headers = {"Authorization": f"Bearer {token}"}
        labels = {
            "alertname": "CheckoutDown",
            "namespace": namespace,
            "service": "checkout",
            "deployment": "checkout",
            "severity": "critical",
        }
        first = time.monotonic()
        answer = httpx.post(
            f"{handle.url}/api/v1/alertmanager", json=am_webhook([am_alert(labels)]), headers=headers, timeout=30
        )
        answer.raise_for_status()
        wait_until(
            lambda: any(status(i, "remediation", "phase") == "Done" for i in listed(api, namespace)),
            timeout=120,
            what="the demo incident remediated",
        )
        standins.wait_for("webhook", 1, timeout=60)
        print(f"demo loop (alert -> remediation Done, page delivered): {time.monotonic() - first:.1f} s")
        for batch in range(40):
            alerts = [service_alert(f"svc{batch:02d}", namespace, instance=str(i)) for i in range(5)]
            httpx.post(
                f"{handle.url}/api/v1/alertmanager", json=am_webhook(alerts), headers=headers, timeout=30
            ).raise_for_status()
        wait_until(lambda: len(listed(api, namespace)) >= 41, timeout=120, what="41 incidents")
        print(f"RSS after the demo load (41 incidents, 201 alerts, a remediation, pages): {quiet(handle):.0f} MiB")
        username = f"system:serviceaccount:{namespace}:{RELEASE}-incidentops"
        forbidden = [line for line in handle.logs().splitlines() if f'User \\"{username}\\" cannot' in line]
        forbidden += [line for line in handle.logs().splitlines() if f'User "{username}" cannot' in line]
        print(f"RBAC refusals in its log: {len(forbidden)}")
        for line in forbidden[:3]:
            print("  " + json.dumps(line)[:300])
    finally:
        if handle is not None:
            handle.stop()
        with contextlib.suppress(Exception):
            uninstall(RELEASE, namespace, kubeconfig)
        standins.stop()
        with contextlib.suppress(k8s.ApiException):
            k8s.CoreV1Api(api).delete_namespace(namespace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
