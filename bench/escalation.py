"""Escalation benchmark against the real local control plane and a real operator process.

Two phases, each in a fresh namespace, paging a local webhook stand-in:
  1. lateness  N Incidents declared as fast as the apiserver takes them, with a policy whose only
               level is due AFTER seconds after detection, so the N deadlines fall due over the
               time it took to create them (about a minute for 1,000). Lateness per incident is the
               operator's own record: the page's createdAt minus (detectedAt + AFTER).
  2. restart   M Incidents whose deadlines fall due just after the operator is killed (kill -9)
               and started again: the lateness of the first (and of every) escalation due while it
               was down or starting, and the time from kill to ready.
Prints figures; asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kubernetes import client as k8s
from measure import fresh_namespace, percentile

from localenv.controlplane import api_client, repo_root, use_or_start_cluster
from localenv.crds import install_crds
from localenv.operator_process import OperatorProcess
from localenv.procs import wait_until
from localenv.standins import StandIns

GROUP, VERSION = "incidentops.dev", "v1alpha1"


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def policy(api: k8s.ApiClient, namespace: str, after: str, url: str) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EscalationPolicy",
        "metadata": {"name": "bench"},
        "spec": {
            "levels": [
                {
                    "after": after,
                    "targets": [{"type": "user", "name": "alice"}],
                    "channels": [{"type": "webhook", "url": url}],
                }
            ]
        },
    }
    k8s.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, "escalationpolicies", body)


def declare(api: k8s.ApiClient, namespace: str, count: int, prefix: str, spread: float = 0.0) -> float:
    """Create `count` Incidents, evenly over `spread` seconds (0: as fast as the apiserver takes them)."""
    custom = k8s.CustomObjectsApi(api)
    begin = time.monotonic()

    def one(i: int) -> None:
        pause = begin + spread * i / count - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # pacing the load generator, not waiting on a condition
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Incident",
            "metadata": {"name": f"{prefix}-{i:04d}"},
            "spec": {"title": f"bench {i}", "severity": "SEV2", "service": f"svc-{i}"},
        }
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", body)

    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))
    return time.monotonic() - start


def pages(api: k8s.ApiClient, namespace: str, after: float) -> list[tuple[datetime, float]]:
    """(deadline, lateness in seconds) of every incident whose level has fired."""
    items = k8s.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, "incidents")["items"]
    out = []
    for item in items:
        esc = (item.get("status") or {}).get("escalation") or {}
        fired = [d for d in esc.get("deliveries") or [] if d.get("event") == "page"]
        if fired and esc.get("roundStartedAt"):
            deadline = ts(esc["roundStartedAt"]) + timedelta(seconds=after)
            out.append((deadline, (ts(fired[0]["createdAt"]) - deadline).total_seconds()))
    return out


def armed(api: k8s.ApiClient, namespace: str) -> int:
    items = k8s.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, "incidents")["items"]
    return len([i for i in items if ((i.get("status") or {}).get("escalation") or {}).get("nextEscalationAt")])


def report(what: str, values: list[float]) -> None:
    print(
        f"{what}: n={len(values)} p50 {percentile(values, 0.5):.3f}s p99 {percentile(values, 0.99):.3f}s "
        f"max {max(values):.3f}s",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--restart-incidents", type=int, default=200)
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which the deadlines fall due")
    args = parser.parse_args()
    kubeconfig = use_or_start_cluster()
    api = api_client(kubeconfig)
    install_crds(api)
    logs = repo_root() / ".dev" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    env = {"INCIDENTOPS_WEBHOOK_TOKEN": "bench", "INCIDENTOPS_REMEDIATION": "false"}
    with StandIns() as standins:
        env["INCIDENTOPS_NOTIFY_ALLOW"] = standins.allow
        # phase 1
        namespace = fresh_namespace(api, "bench-escalation")
        after = 70.0
        policy(api, namespace, f"{int(after)}s", standins.base("webhook") + "/bench")
        operator = OperatorProcess(
            kubeconfig=kubeconfig, namespaces=[namespace], log_path=logs / "escalation.log", extra_env=env
        ).start()
        took = declare(api, namespace, args.incidents, "inc", args.spread)
        print(
            f"declared {args.incidents} incidents in {took:.1f}s: their deadlines fall due over that span", flush=True
        )
        found = wait_until(
            lambda: (p := pages(api, namespace, after)) and len(p) >= args.incidents and p,
            timeout=after + took + 120,
            interval=2,
            what="every level paged",
        )
        spread = (max(d for d, _ in found) - min(d for d, _ in found)).total_seconds()
        report(f"escalation lateness, {len(found)} deadlines over {spread:.0f}s", [lat for _, lat in found])
        standins.wait_for("webhook", args.incidents, timeout=120)
        print(f"webhook deliveries received: {len(standins.received('webhook'))} (one per incident)", flush=True)
        operator.stop()

        # phase 2
        standins.clear()
        namespace = fresh_namespace(api, "bench-escalation-restart")
        after = 25.0
        policy(api, namespace, f"{int(after)}s", standins.base("webhook") + "/restart")
        operator = OperatorProcess(
            kubeconfig=kubeconfig, namespaces=[namespace], log_path=logs / "escalation-restart.log", extra_env=env
        ).start()
        declare(api, namespace, args.restart_incidents, "crash")
        wait_until(lambda: armed(api, namespace) >= args.restart_incidents, timeout=120, what="every chain armed")
        items = k8s.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, "incidents")
        deadlines = sorted(ts(i["status"]["escalation"]["nextEscalationAt"]) for i in items["items"])
        wait = (deadlines[0] - datetime.now(UTC)).total_seconds() - 2
        if wait > 0:
            time.sleep(wait)  # kill just before the first deadline
        killed = datetime.now(UTC)
        operator.kill()
        operator = OperatorProcess(
            kubeconfig=kubeconfig, namespaces=[namespace], log_path=logs / "escalation-restart-2.log", extra_env=env
        ).start()
        ready = (datetime.now(UTC) - killed).total_seconds()
        found = wait_until(
            lambda: (p := pages(api, namespace, after)) and len(p) >= args.restart_incidents and p,
            timeout=180,
            interval=1,
            what="every level paged after the restart",
        )
        after_kill = sorted((d, lat) for d, lat in found if d >= killed)
        print(f"killed (-9) {2:.0f}s before the first deadline; the new operator was ready {ready:.1f}s after the kill")
        if after_kill:
            print(f"first escalation due after the kill: {after_kill[0][1]:.3f}s late", flush=True)
            report("escalations due after the kill", [lat for _, lat in after_kill])
        standins.wait_for("webhook", args.restart_incidents, timeout=120)
        got = len(standins.received("webhook"))
        print(
            f"webhook deliveries: {got} for {args.restart_incidents} incidents "
            f"(duplicates: {got - args.restart_incidents})"
        )
        operator.stop()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
