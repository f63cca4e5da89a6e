"""`make demo`: the whole loop on the embedded default, narrated for a newcomer.

Local control plane → CRDs → a demo "checkout" Deployment whose health follows its image →
the operator → real Prometheus and Alertmanager. A bad release makes Prometheus fire, the
Alertmanager webhook opens an Incident, an on-call acknowledges it with the kubectl plugin,
the release is rolled back, and the Incident resolves with its timeline.

A long module because it is a script that narrates: its steps read in the order the demo runs them.
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

import yaml
from kubernetes import client as k8s

from localenv import controlplane, leftovers
from localenv.crds import install_crds
from localenv.demo_workload import (
    CONTAINER,
    ERROR_RATIO,
    DemoWorkloadProcess,
    create_demo_deployment,
    error_ratio_rule,
)
from localenv.monitoring import Alertmanager, Prometheus
from localenv.operator_process import OperatorProcess
from localenv.procs import free_port, wait_until
from localenv.standins import Received, describe
from localenv.standins_process import StandInsProcess

NAMESPACE = "incidentops-demo"
SERVICE = "checkout"
ALERT = "CheckoutHighErrorRatio"
SECOND_LEVEL_AFTER = "12s"
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


def runbook_for(*, automatic: bool) -> dict[str, Any]:
    """The demo's Runbook: runbooks/rollback-bad-release.yaml, pointed at the demo's alert and metric."""
    return {
        "apiVersion": "incidentops.dev/v1alpha1",
        "kind": "Runbook",
        "metadata": {"name": "rollback-bad-release"},
        "spec": {
            "description": "Roll back the release that preceded a rise in errors.",
            "match": {"alertnames": [ALERT]},
            "steps": [
                {"name": "rollback", "action": "rollback", "target": {"name": SERVICE}, "onFailure": "escalate"},
                {"name": "wait", "action": "wait-rollout", "target": {"name": SERVICE}, "timeout": "2m"},
            ],
            "verify": {"query": f"{ERROR_RATIO} > 0.2", "window": "3s", "timeout": "2m"},
            "automatic": automatic,
            "minConfidence": 0.7,
        },
    }


MODEL_TRIAGE: list[dict[str, Any]] = [
    {"delay": 0.5, "tool_use": {"name": "recent_changes", "input": {}}},
    {"delay": 0.5, "tool_use": {"name": "metrics", "input": {"query": "error_ratio"}}},
    {"delay": 0.5, "tool_use": {"name": "runbooks", "input": {}}},
    {
        "delay": 0.5,
        "submit": {
            "severity": "SEV1",
            "category": "availability",
            "runbook": "rollback-bad-release",
            "confidence": 0.92,
            "reasoning": "The error ratio rose right after revision 2 changed the image from demo/checkout:v1 to "
            "demo/checkout:bad; nothing else changed. Rolling back to revision 1 is the runbook for this.",
            "suspectedCause": "the release demo/checkout:bad",
        },
    },
]
MODEL_POSTMORTEM = {
    "summary": "A release of checkout (demo/checkout:bad) made most requests fail. The alert fired within seconds, "
    "the on-call engineer acknowledged it, and the release was rolled back and verified on Prometheus.",
    "rootCause": "The release demo/checkout:bad fails requests; it reached every replica.",
    "contributingFactors": ["The rollout had no canary stage: every replica received the bad release."],
    "fiveWhys": [
        "Why did checkout fail? The new release answers most requests with 5xx.",
        "Why did the release reach production? Nothing checked its error ratio before the rollout finished.",
    ],
    "whatWentWell": ["The rollback was verified on Prometheus before the incident was called mitigated."],
    "whatCouldImprove": ["A canary stage would have stopped the release at one replica."],
    "actionItems": ["Add a canary stage with an error-ratio gate to the checkout rollout."],
}


def _section(text: str, header: str) -> list[str]:
    """The lines of one section of `kubectl incident describe` (a header, then indented lines)."""
    lines = text.splitlines()
    if header not in lines:
        return [text]
    start = lines.index(header)
    rest = lines[start + 1 :]
    end = next((i for i, line in enumerate(rest) if line and not line.startswith(" ")), len(rest))
    return [header, *rest[:end]]


class Demo:
    """Everything the demo starts, so that it can be stopped (or left running) as one."""

    def __init__(self, work: Path, keep: bool, automatic: bool = False) -> None:
        self.work = work
        self.keep = keep
        self.automatic = automatic
        self.token = secrets.token_urlsafe(16)
        self.kubeconfig = Path()
        self.api: k8s.ApiClient | None = None
        self.started_cluster = False
        self.operator: OperatorProcess | None = None
        self.workload: DemoWorkloadProcess | None = None
        self.servers: list[Prometheus | Alertmanager] = []
        self.standins = StandInsProcess(work / "standins.log")
        self._shown = 0

    def _received(self, requests: list[Received]) -> None:
        """What Slack and PagerDuty received since the last look, printed (the stand-ins are their own process)."""
        for request in requests[self._shown :]:
            if request.service in ("pagerduty", "slack"):
                print(f"      >> {describe(request)[:160]}", flush=True)
        self._shown = max(self._shown, len(requests))

    def _paged(self, count: int, timeout: float) -> list[Received]:
        return self.standins.wait_for("pagerduty", count, timeout, seen=self._received)

    def _paging(self, api: k8s.ApiClient) -> dict[str, Any]:
        """The stand-ins' Secret and an on-call policy: alice first, bob if she has not answered."""
        core = k8s.CoreV1Api(api)
        core.create_namespaced_secret(
            NAMESPACE,
            k8s.V1Secret(
                metadata=k8s.V1ObjectMeta(name="paging"),
                string_data={
                    "pagerduty": "R0UTINGKEYDEMO000000000000000001",
                    "slack": self.standins.base("slack") + "/services/TDEMO/BDEMO/demo",
                    "contacts.yaml": "users:\n  alice: {slack: UALICE}\n  bob: {slack: UBOB}\n",
                },
            ),
        )
        pagerduty = {"type": "pagerduty", "secretRef": {"name": "paging", "key": "pagerduty"}}
        pagerduty["url"] = self.standins.base("pagerduty")
        slack = {"type": "slack", "secretRef": {"name": "paging", "key": "slack"}, "slackChannel": "#inc-checkout"}
        policy = {
            "apiVersion": "incidentops.dev/v1alpha1",
            "kind": "EscalationPolicy",
            "metadata": {"name": "checkout-oncall"},
            "spec": {
                "levels": [
                    {"name": "primary", "after": "0s", "targets": [{"type": "user", "name": "alice"}],
                     "channels": [pagerduty, slack]},
                    {"name": "secondary", "after": SECOND_LEVEL_AFTER, "targets": [{"type": "user", "name": "bob"}],
                     "channels": [pagerduty, slack]},
                ]
            },
        }  # fmt: skip
        k8s.CustomObjectsApi(api).create_namespaced_custom_object(
            "incidentops.dev", "v1alpha1", NAMESPACE, "escalationpolicies", policy
        )
        return policy

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
        for what in leftovers.stop_all():
            note(f"stopped the {what} a previous `make demo KEEP=1` left running")
        say("Step 1/10 — a real Kubernetes control plane, built from upstream sources (no Docker needed).")
        note("The first run compiles kube-apiserver, etcd and kwok (about 7 minutes); later runs reuse the cache.")
        self.started_cluster = not controlplane.cluster_status().healthy
        self.kubeconfig = step("control plane ready", controlplane.use_or_start_cluster)
        self.api = api = controlplane.api_client(self.kubeconfig)
        note(self.kubectl("get", "nodes"))

        say("Step 2/10 — installing the incidentops CRDs (Incident, DetectionRule, Runbook, EscalationPolicy, ...).")
        step("CRDs established", lambda: install_crds(api))

        say(f"Step 3/10 — deploying the demo service '{SERVICE}' (image demo/checkout:v1) in namespace {NAMESPACE}.")
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

        say("Step 4/10 — a Runbook for this service: roll a bad release back, wait, and prove it with Prometheus.")
        runbook = runbook_for(automatic=self.automatic)
        k8s.CustomObjectsApi(api).create_namespaced_custom_object(
            "incidentops.dev", "v1alpha1", NAMESPACE, "runbooks", runbook
        )
        note(yaml.safe_dump(runbook, sort_keys=False).rstrip())
        if not self.automatic:
            note(
                "rollback is medium risk and the runbook is not automatic: a human approves it (make demo AUTO=1 skips)"
            )
        self.standins.start()
        self._triage(api)
        policy = self._paging(api)
        note(
            f"and an EscalationPolicy: level 1 pages alice, level 2 pages bob {SECOND_LEVEL_AFTER} later unless "
            f"someone acknowledges; PagerDuty and Slack are local stand-ins on {self.standins.url} that print what "
            "they receive (lines starting with >>)"
        )
        note(yaml.safe_dump(policy["spec"]["levels"][0], sort_keys=False, default_flow_style=None).rstrip())

        say("Step 5/10 — real Prometheus scrapes the service; real Alertmanager will send its webhook to the operator.")
        port = free_port()
        alertmanager = Alertmanager(
            self.work / "alertmanager",
            webhook_url=f"http://127.0.0.1:{port}/api/v1/alertmanager",
            bearer_token=self.token,
        )
        self.servers.append(step("Alertmanager started", alertmanager.start))
        prometheus = Prometheus(
            self.work / "prometheus",
            scrape_targets=[workload.target],
            # keep_firing_for: the alert outlasts a recovery by 15s (against flapping), so the Incident is
            # seen in Monitoring, verified, before the alert resolves it.
            rules=error_ratio_rule(ALERT, SERVICE, namespace=NAMESPACE, for_="3s", keep_firing_for="15s"),
            alertmanager_url=alertmanager.url,
        )
        self.servers.append(step("Prometheus started", prometheus.start))
        note(f"Prometheus {prometheus.url}, Alertmanager {alertmanager.url}")
        up = f'up{{instance="{workload.target}"}}'
        step("Prometheus sees the service up", lambda: prometheus.wait_for_value(up, lambda v: v == 1.0, 60.0))
        step("Prometheus has an error ratio", lambda: prometheus.wait_for_value(ERROR_RATIO, lambda v: True, 30.0))
        note(f"healthy: error ratio {self._error_ratio(prometheus)}")

        say("Step 6/10 — starting the incidentops operator (Kopf, webhook server, remediation).")
        env = {
            "INCIDENTOPS_WEBHOOK_TOKEN": self.token,
            "INCIDENTOPS_PROMETHEUS_URL": prometheus.url,
            "INCIDENTOPS_REMEDIATION_POLL": "1s",
            "INCIDENTOPS_CONTACTS_SECRET": f"{NAMESPACE}/paging/contacts.yaml",
            "INCIDENTOPS_NOTIFY_ALLOW": self.standins.allow,  # the local stand-ins; public addresses need no entry
            "INCIDENTOPS_TRIAGE_CONFIGMAP": f"{NAMESPACE}/triage",
            # Claude is out of reach here: the stand-in speaks the Messages API (set your own key and drop the
            # base URL to triage with the real model).
            "ANTHROPIC_API_KEY": "sk-ant-demo-standin-key",
            "ANTHROPIC_BASE_URL": self.standins.base("anthropic"),
        }
        if self.automatic:
            env["INCIDENTOPS_RISK_CEILING"] = "medium"
        self.operator = OperatorProcess(
            kubeconfig=self.kubeconfig,
            namespaces=[NAMESPACE],
            log_path=self.work / "operator.log",
            extra_env=env,
            port=port,
        )
        step(f"operator ready on {self.operator.url}", self.operator.start)
        note(f"$ kubectl get runbooks -n {NAMESPACE}\n{self.kubectl('get', 'runbooks', '-n', NAMESPACE)}")

        say("Step 7/10 — a bad release: the Deployment's image becomes demo/checkout:bad.")
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
        step("level 1 paged: PagerDuty and Slack received it", lambda: self._paged(1, 30))
        step(
            f"nobody acknowledged within {SECOND_LEVEL_AFTER}: level 2 (bob) paged",
            lambda: self._paged(2, 60),
        )
        note(f"$ kubectl get incidents -n {NAMESPACE}   (LEVEL)\n{self.kubectl('get', 'incidents', '-n', NAMESPACE)}")
        note(f"$ kubectl incident ack {name} -n {NAMESPACE} --by alice")
        note(self.plugin("ack", name, "-n", NAMESPACE, "--by", "alice"))
        step(
            "the acknowledgement stops the chain; PagerDuty hears 'acknowledge'",
            lambda: self._paged(3, 30),
        )
        described = self.plugin("describe", name, "-n", NAMESPACE)
        note("\n".join(_section(described, "Escalation:")))

        say("Step 8/10 — triage: the rules answered at once; the model investigated with read-only tools.")
        step(
            "the model's answer is in (validated by code: it may only choose among the matching runbooks)",
            lambda: wait_until(lambda: self._triaged(name), timeout=60, what="the model's triage"),
        )
        note(f"$ kubectl incident describe {name} -n {NAMESPACE}   (the triage part: reasoning, tools, what code took)")
        note("\n".join(_section(self.plugin("describe", name, "-n", NAMESPACE), "Triage:")))
        self._received(self.standins.received())

        if self.automatic:
            say("Step 9/10 — the runbook is automatic and every guard passes: the operator rolls back on its own.")
        else:
            say("Step 9/10 — the operator chose the runbook, dry-ran the rollback, and waits for a human.")
            step(
                "the rollback step awaits approval",
                lambda: wait_until(lambda: self._phase(name) == "AwaitingApproval", timeout=60, what="approval"),
            )
            note(f"$ kubectl get incidents -n {NAMESPACE}\n{self.kubectl('get', 'incidents', '-n', NAMESPACE)}")
            note(f"$ kubectl incident describe {name} -n {NAMESPACE}   (the remediation part: what would change)")
            described = self.plugin("describe", name, "-n", NAMESPACE)
            note("\n".join(_section(described, "Remediation:")))
            note("alice reads the diff: the image goes back to v1. She approves.")
            note(f"$ kubectl incident approve {name} -n {NAMESPACE} --by alice")
            note(self.plugin("approve", name, "-n", NAMESPACE, "--by", "alice"))
        step(
            "rolled back and rolled out; Prometheus shows the error ratio cleared for the verify window",
            lambda: wait_until(lambda: self._phase(name) == "Verified", timeout=150, what="Verified"),
        )
        note(f"$ kubectl get incidents -n {NAMESPACE}\n{self.kubectl('get', 'incidents', '-n', NAMESPACE)}")
        note(f"error ratio now {self._error_ratio(prometheus)}; image {self._image()}")
        note(f"$ kubectl describe deployment {SERVICE} -n {NAMESPACE}   (its Events)")
        note(self._deployment_events())

        say("Step 10/10 — the alert clears, the Incident resolves itself, and its postmortem writes itself.")
        step(
            "Resolved",
            lambda: wait_until(lambda: self._state(name) == "Resolved", timeout=120, what="Resolved"),
        )
        note(self.kubectl("get", "incidents", "-n", NAMESPACE))
        step(
            "everyone paged hears it is resolved (PagerDuty 'resolve')",
            lambda: self._paged(4, 30),
        )
        note(f"$ kubectl incident timeline {name} -n {NAMESPACE}")
        note(self.plugin("timeline", name, "-n", NAMESPACE))
        final = next(i for i in self.incidents() if i["metadata"]["name"] == name)["status"]
        metrics = final.get("metrics", {})
        note(
            f"time to acknowledge: {metrics.get('timeToAcknowledgeSeconds')}s, "
            f"time to mitigate: {metrics.get('timeToMitigateSeconds')}s, "
            f"time to resolve: {metrics.get('timeToResolveSeconds')}s, alerts: {final['alerts']['count']}"
        )
        note(f"$ kubectl get runbooks -n {NAMESPACE}\n{self.kubectl('get', 'runbooks', '-n', NAMESPACE)}")
        step(
            "a SEV1 was resolved: the operator wrote its Postmortem (the model drafted the narrative)",
            lambda: wait_until(lambda: self._postmortem(name) == "Draft", timeout=90, what="the postmortem"),
        )
        note(f"$ kubectl get pm -n {NAMESPACE}\n{self.kubectl('get', 'pm', '-n', NAMESPACE)}")
        note(f"$ kubectl incident postmortem {name} -n {NAMESPACE}   (Markdown for the wiki; the team edits the pm)")
        print(self.plugin("postmortem", name, "-n", NAMESPACE), flush=True)
        how = "automatically" if self.automatic else "after alice approved it"
        say(
            f"Done: one bad release, one Incident, triaged by the model, rolled back {how}, verified on Prometheus, "
            "resolved, and written up."
        )

    def _triage(self, api: k8s.ApiClient) -> None:
        """The triage ConfigMap (the error ratio as a named query) and what the stand-in model will do."""
        queries = [{"name": "error_ratio", "query": ERROR_RATIO, "description": "share of checkout requests failing"}]
        k8s.CoreV1Api(api).create_namespaced_config_map(
            NAMESPACE,
            k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="triage"), data={"queries": yaml.safe_dump(queries)}),
        )
        # The stand-in plays the model: it looks at the rollouts and the error ratio, then answers, as Claude
        # would through the same tools. What it says is scripted here; what the operator makes of it is not.
        self.standins.anthropic_script(MODEL_TRIAGE)
        self.standins.anthropic_auto(answers={"submit_postmortem": MODEL_POSTMORTEM}, latency=0.5)
        note(
            "triage: rules at once; then a model (a local stand-in of Claude's Messages API) investigates with "
            "read-only tools: the rollout history, the error ratio (a named query from the ConfigMap 'triage'), "
            "Events, dependencies; its answer is validated by code"
        )

    def _triaged(self, name: str) -> bool:
        found = [i for i in self.incidents() if i["metadata"]["name"] == name]
        llm = (((found[0].get("status") or {}).get("triage") or {}).get("llm") or {}) if found else {}
        return llm.get("state") in ("Answered", "FellBack")

    def _postmortem(self, name: str) -> str | None:
        found = [i for i in self.incidents() if i["metadata"]["name"] == name]
        return (((found[0].get("status") or {}).get("postmortem") or {}).get("state")) if found else None

    def _phase(self, name: str) -> str | None:
        found = [i for i in self.incidents() if i["metadata"]["name"] == name]
        return ((found[0].get("status") or {}).get("remediation") or {}).get("phase") if found else None

    def _image(self) -> str:
        live = k8s.AppsV1Api(self.api).api_client.sanitize_for_serialization(
            k8s.AppsV1Api(self.api).read_namespaced_deployment(SERVICE, NAMESPACE)
        )
        return str(live["spec"]["template"]["spec"]["containers"][0]["image"])

    def _deployment_events(self) -> str:
        events = k8s.CoreV1Api(self.api).list_namespaced_event(NAMESPACE).items
        lines = [
            f"{e.reason}: {e.message}"
            for e in events
            if e.involved_object.kind == "Deployment" and (e.reason or "").startswith("Incidentops")
        ]
        return "\n".join(lines) or "(no events)"

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
            for what, pid in self._running():
                leftovers.record(pid, what)
            self._explain_what_is_running()
            return
        say("Tearing down (run `make demo KEEP=1` to leave everything running and poke around).")
        for server in self.servers:
            server.stop()
        self.standins.stop()
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
        note(f"stand-ins (PagerDuty, Slack...): {self.standins.url}   (log: {self.work / 'standins.log'})")
        note(
            f"a second bad release pages as the first did: kubectl set image deployment/{SERVICE} -n {NAMESPACE} "
            f"{CONTAINER}=demo/checkout:v3-bad   (the demo workload fails while its tag says bad)"
        )
        note("stop it all: make cluster-down (it stops these processes too)")

    def _running(self) -> list[tuple[str, int]]:
        found = [(name, p.process.pid) for name, p in (("operator", self.operator), ("workload", self.workload)) if p]
        found += [(type(s).__name__.lower(), s.process.pid) for s in self.servers]
        found.append(("standins", self.standins.process.pid))
        return found


@contextlib.contextmanager
def _demo(keep: bool, automatic: bool) -> Iterator[Demo]:
    work = controlplane.repo_root() / ".dev" / "demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    demo = Demo(work, keep, automatic)
    try:
        yield demo
    finally:
        demo.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave everything running afterwards")
    parser.add_argument("--automatic", action="store_true", help="an automatic runbook: no human approval")
    args = parser.parse_args(argv)
    try:
        with _demo(args.keep, args.automatic) as demo:
            demo.run()
    except Exception as error:  # the demo explains itself rather than dumping a traceback
        print(f"\nThe demo failed: {error}", file=sys.stderr)
        print("Logs are under .dev/demo/ (operator.log, workload.log, prometheus/, alertmanager/).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
