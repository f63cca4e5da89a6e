"""Triage on the real cluster: rules at once, a model (the local Messages API stand-in) that investigates.

Alerts come in through the webhook; what triage decided is read back from the Incident's status and
Events, what the model was shown from the stand-in's recorded requests, what remediation did from
the Deployment itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from kubernetes import client as k8s

from incidentops.cli.main import cli
from localenv.controlplane import KubeCluster
from localenv.demo_workload import create_demo_deployment, set_deployment_image
from localenv.objects import create, incident_of, listed, status, wait_event, wait_incident
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_alert, am_webhook
from localenv.standins import StandIns

pytestmark = pytest.mark.integration
TOKEN = "triage-token"
KEY = "sk-ant-test-0123456789abcdef"
SECRET_VALUE = "hunter2-very-secret-value"


def env(standins: StandIns | None, **extra: str) -> dict[str, str]:
    out = {
        "INCIDENTOPS_WEBHOOK_TOKEN": TOKEN,
        "INCIDENTOPS_REMEDIATION_POLL": "1s",
        "INCIDENTOPS_ESCALATION": "false",
        "INCIDENTOPS_LLM_TIMEOUT": "8s",
        **extra,
    }
    if standins is not None:
        out |= {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": standins.base("anthropic")}
    else:
        out["INCIDENTOPS_LLM"] = "off"
    return out


def fire(
    operator: OperatorProcess,
    namespace: str,
    service: str,
    alertname: str,
    *,
    severity: str = "warning",
    annotations: dict[str, str] | None = None,
    **labels: str,
) -> None:
    alert = am_alert(
        {
            "alertname": alertname,
            "namespace": namespace,
            "service": service,
            "deployment": service,
            "severity": severity,
            **labels,
        },
        summary=f"{alertname} on {service}",
        annotations=annotations,
    )
    answer = httpx.post(
        f"{operator.url}/api/v1/alertmanager",
        json=am_webhook([alert]),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def restart_runbook(api: k8s.ApiClient, namespace: str, name: str, alertname: str, **spec: Any) -> None:
    create(
        api,
        namespace,
        "Runbook",
        name,
        {
            "match": {"alertnames": [alertname]},
            "steps": [{"name": "restart", "action": "restart", "target": {"kind": "Deployment"}}],
            **spec,
        },
    )


def llm_done(incident: dict[str, Any]) -> bool:
    return status(incident, "triage", "llm", "state") in ("Answered", "FellBack")


def plugin(cluster: KubeCluster, *args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--kubeconfig", str(cluster.kubeconfig)])
    assert result.exit_code == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout


def test_rules_raise_the_severity_from_signals_classify_and_a_human_still_wins(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    api = kube_cluster.api
    operator = operator_factory([namespace], env(None))
    fire(operator, namespace, "checkout", "CheckoutErrorBurst", annotations={"errorRatio": "62%"})
    incident = wait_incident(api, namespace, "checkout", lambda i: status(i, "triage") is not None, "triaged")
    triage = incident["status"]["triage"]
    assert incident["status"]["severity"] == "SEV2" and incident["status"]["severitySource"] == "triage"
    assert (triage["source"], triage["category"], triage["rules"]["severity"]) == ("rules", "availability", "SEV2")
    assert "errors 62%" in triage["reasoning"] and "at least 50% affected" in triage["reasoning"]
    name = incident["metadata"]["name"]
    wait_event(api, namespace, "Incident", name, "SeverityRaised: severity raised SEV3 → SEV2 by triage")
    wait_incident(  # kubectl get inc -l incidentops.dev/severity=SEV2 finds it
        api,
        namespace,
        "checkout",
        lambda i: i["metadata"]["labels"].get("incidentops.dev/severity") == "SEV2",
        "relabelled",
    )
    described = plugin(kube_cluster, "describe", name, "-n", namespace)
    assert "Source: rules   Severity: SEV2   Category: availability" in described

    # A security signal with user impact is SEV1, by name alone the category is security.
    fire(operator, namespace, "login", "BruteForceLoginAttempts", annotations={"usersAffected": "0.02"})
    login = wait_incident(api, namespace, "login", lambda i: status(i, "triage") is not None, "triaged")
    assert (login["status"]["severity"], login["status"]["triage"]["category"]) == ("SEV1", "security")

    # A human's severity wins: triage never changes it again, whatever the alerts say.
    plugin(kube_cluster, "severity", name, "SEV4", "-n", namespace, "--by", "alice")
    wait_incident(api, namespace, "checkout", lambda i: status(i, "severitySource") == "human", "set by a human")
    fire(
        operator,
        namespace,
        "checkout",
        "CheckoutLatencyHigh",
        annotations={"latencyMultiple": "9x", "errorRatio": "0.99"},
    )
    again = wait_incident(
        api,
        namespace,
        "checkout",
        lambda i: "CheckoutLatencyHigh" in (status(i, "triage", "evidence") or ""),
        "triaged again on new evidence",
    )
    assert again["status"]["severity"] == "SEV4" and again["status"]["triage"]["rules"]["severity"] == "SEV1"


def test_the_model_reads_real_rollouts_and_events_and_its_choice_runs_within_the_runbooks_bounds(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    standins: StandIns,
) -> None:
    api = kube_cluster.api
    create_demo_deployment(api, namespace, "api", replicas=2)
    apps = k8s.AppsV1Api(api)
    env_patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "app", "env": [{"name": "DB_PASSWORD", "value": SECRET_VALUE}]}]}
            }
        }
    }
    apps.patch_namespaced_deployment("api", namespace, env_patch)
    set_deployment_image(api, namespace, "api", "registry.local/api:2.0.0-bad")
    # Automatic, but only above 0.9: the rules' 0.7 is not enough, so remediation waits for the model.
    restart_runbook(api, namespace, "restart-api", "PodsCrashing", automatic=True, minConfidence=0.9)
    standins.anthropic_auto(
        answers={
            "submit_triage": {
                "runbook": "restart-api",
                "confidence": 0.97,
                "severity": "SEV3",
                "category": "availability",
                "suspectedCause": "release 2.0.0-bad",
            }
        }
    )
    operator = operator_factory([namespace], env(standins))
    generation = apps.read_namespaced_deployment("api", namespace).metadata.generation
    fire(operator, namespace, "api", "PodsCrashing")
    incident = wait_incident(api, namespace, "api", lambda i: status(i, "remediation", "phase") == "Done", "restarted")
    triage = incident["status"]["triage"]
    llm = triage["llm"]
    assert (triage["source"], triage["runbook"], triage["confidence"]) == ("llm", "restart-api", 0.95)  # capped
    assert llm["state"] == "Answered" and llm["answer"]["suspectedCause"] == "release 2.0.0-bad"
    called = [c["name"] for c in llm["toolCalls"]]
    assert {"recent_changes", "events", "alerts", "runbooks", "metrics", "dependencies"} <= set(called)
    assert all(c["bytes"] > 0 for c in llm["toolCalls"]) and llm["tokensIn"] > 0 and llm["calls"] == len(called) + 1
    [step] = incident["status"]["remediation"]["steps"]
    assert step["state"] == "Succeeded" and step["automatic"] is True
    assert incident["status"]["remediation"]["chosenAt"] >= llm["finishedAt"]  # it waited for the answer
    assert apps.read_namespaced_deployment("api", namespace).metadata.generation == generation + 1  # one restart
    # What the model was shown: the real rollout history and Events, names of env variables, never a value.
    sent = "\n".join(r.text for r in standins.received("anthropic"))
    assert "registry.local/api:2.0.0-bad" in sent and "DB_PASSWORD" in sent and "ScalingReplicaSet" in sent
    assert SECRET_VALUE not in sent and KEY not in sent
    assert '<untrusted-data tool=\\"recent_changes\\">' in sent
    shown = json.dumps(incident)
    assert SECRET_VALUE not in shown and KEY not in shown and KEY not in operator.logs()
    described = plugin(kube_cluster, "describe", incident["metadata"]["name"], "-n", namespace)
    assert "Source: llm" in described and "tool recent_changes" in described and "Suspected cause: release" in described


FAILURES: list[tuple[str, list[dict[str, Any]], str]] = [
    ("5xx", [{"error": 500}], "server_error"),
    ("429", [{"error": 429, "retry_after": 30}], "rate_limited"),
    ("malformed", [{"malformed": True}], "invalid_answer"),
    (
        "not-matching-runbook",
        [
            {
                "submit": {
                    "severity": "SEV1",
                    "category": "availability",
                    "runbook": "delete-everything",
                    "confidence": 1,
                    "reasoning": "x",
                }
            }
        ],
        "invalid_answer",
    ),
    (
        "out-of-schema",
        [{"submit": {"severity": "SEV9", "category": "x", "runbook": "none", "confidence": 2, "reasoning": 1}}],
        "invalid_answer",
    ),
    ("text-only", [{"text": "I think you should restart it."}], "no_answer"),
    ("late", [{"delay": 30, "text": "late"}], "timeout"),
]


def test_a_failed_or_invalid_answer_leaves_the_rules_standing(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    standins: StandIns,
) -> None:
    """One incident per way an answer can fail, one after the other (the stand-in's script is one queue)."""
    api = kube_cluster.api
    operator = operator_factory([namespace], env(standins, INCIDENTOPS_LLM_TIMEOUT="3s"))
    for case, script, reason in FAILURES:
        service = f"web-{case}"
        create_demo_deployment(api, namespace, service, replicas=1)
        restart_runbook(
            api, namespace, f"restart-{case}", f"Down{case.replace('-', '')}", automatic=True, minConfidence=0.9
        )
        standins.anthropic_script(script)
        fire(operator, namespace, service, f"Down{case.replace('-', '')}")
        incident = wait_incident(api, namespace, service, llm_done, f"{case}: the answer recorded", timeout=40)
        triage = incident["status"]["triage"]
        assert triage["llm"]["state"] == "FellBack" and triage["llm"]["fallback"] == reason, (case, triage["llm"])
        assert (triage["source"], triage["runbook"], triage["confidence"]) == ("rules", f"restart-{case}", 0.7)
        # Remediation goes on from the rules' result: below minConfidence, so it waits for a human.
        waiting = wait_incident(
            api, namespace, service, lambda i: status(i, "remediation", "phase") == "AwaitingApproval", "approval"
        )
        assert waiting["status"]["remediation"]["steps"][0]["reason"] == "LowConfidence", case
        name = incident["metadata"]["name"]
        wait_event(api, namespace, "Incident", name, f"TriageFellBack: the model's triage was not used ({reason})")
        standins.anthropic_reset()  # a late answer's leftovers are not the next case's
    assert KEY not in operator.logs() and KEY not in json.dumps(listed(api, namespace))


def test_the_hourly_call_budget_holds_and_simulations_never_ask(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    standins: StandIns,
) -> None:
    api = kube_cluster.api
    operator = operator_factory([namespace], env(standins, INCIDENTOPS_LLM_CALLS_PER_HOUR="3"))
    # SEV1s: the last quarter of the budget, kept for the worst incidents, is theirs to spend too
    fire(operator, namespace, "a", "ServiceADown", severity="critical")
    first = wait_incident(api, namespace, "a", llm_done, "investigated", timeout=40)
    fire(operator, namespace, "b", "ServiceBDown", severity="critical")
    second = wait_incident(api, namespace, "b", llm_done, "investigated", timeout=40)
    assert (first["status"]["triage"]["llm"]["fallback"], first["status"]["triage"]["llm"]["calls"]) == (
        "call_budget",
        3,
    )
    assert (second["status"]["triage"]["llm"]["fallback"], second["status"]["triage"]["llm"]["calls"]) == (
        "call_budget",
        0,
    )
    assert len(standins.received("anthropic")) == 3
    metrics = httpx.get(f"{operator.url}/metrics", timeout=10).text
    assert "incidentops_llm_budget_refusals_total 2.0" in metrics
    assert 'incidentops_llm_fallbacks_total{reason="call_budget"} 2.0' in metrics
    result = CliRunner().invoke(
        cli, ["simulate", "--service", "c", "-n", namespace, "--kubeconfig", str(kube_cluster.kubeconfig)]
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    drill = wait_incident(api, namespace, "c", lambda i: status(i, "triage", "llm") is not None, "triaged")
    assert drill["status"]["triage"]["llm"]["state"] == "Skipped"
    assert len(standins.received("anthropic")) == 3


def test_ten_failing_services_page_once_the_root(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    standins: StandIns,
) -> None:
    api = kube_cluster.api
    apps = k8s.AppsV1Api(api)
    create_demo_deployment(api, namespace, "postgres", replicas=1)
    services = [f"svc{i}" for i in range(10)]
    for service in services:
        create_demo_deployment(api, namespace, service, replicas=1)
        upstream = "postgres" if service in ("svc0", "svc1") else "svc0,svc1"
        apps.patch_namespaced_deployment(
            service, namespace, {"metadata": {"annotations": {"incidentops.dev/depends-on": upstream}}}
        )
    create(
        api,
        namespace,
        "EscalationPolicy",
        "oncall",
        {
            "levels": [
                {
                    "after": "0s",
                    "targets": [{"type": "user", "name": "alice"}],
                    "channels": [{"type": "webhook", "url": standins.base("webhook") + "/page"}],
                }
            ]
        },
    )
    operator = operator_factory(
        [namespace],
        {
            **env(None),
            "INCIDENTOPS_ESCALATION": "true",
            "INCIDENTOPS_CASCADE_WAIT": "8s",
            "INCIDENTOPS_NOTIFY_ALLOW": standins.allow,
        },
    )
    for service in services:
        fire(operator, namespace, service, "ServiceErrors")
    fire(operator, namespace, "postgres", "PostgresDown")
    root = wait_incident(api, namespace, "postgres", lambda i: status(i, "escalation", "level") == 1, "paged")
    root_name = root["metadata"]["name"]
    for service in services:
        symptom = wait_incident(
            api, namespace, service, lambda i: status(i, "escalation", "stopped") == "Deferred", "deferred"
        )
        assert symptom["status"]["cascade"]["root"] == root_name and symptom["status"]["escalation"]["summary"] == (
            "deferred"
        )
        assert symptom["status"]["cascade"]["path"][-1] == "postgres"
    pages = standins.wait_for("webhook", 1, where=lambda r: (r.json or {}).get("event") == "page")
    assert len(pages) == 1 and root_name in pages[0].text
    # The root resolved, its symptoms still failing: the next ones upstream (svc0, svc1) become the roots and
    # page; the other eight are now their symptoms.
    plugin(kube_cluster, "resolve", root_name, "-n", namespace, "--summary", "restarted postgres", "--by", "bob")
    standins.wait_for("webhook", 3, where=lambda r: (r.json or {}).get("event") == "page", timeout=60)
    new_roots = {status(incident_of(api, namespace, s), "cascade", "root") for s in ("svc0", "svc1")}
    assert new_roots == {None}
    first = incident_of(api, namespace, "svc0")
    assert status(first, "escalation", "level") == 1
    assert "NoLongerSymptom" in {e["type"] for e in (first or {})["status"]["timeline"]}
    upstream = {incident_of(api, namespace, s)["metadata"]["name"] for s in ("svc0", "svc1")}  # type: ignore[index]
    later = wait_incident(api, namespace, "svc5", lambda i: status(i, "cascade", "root") in upstream, "re-rooted")
    assert status(later, "escalation", "stopped") == "Deferred"
    pages = [r for r in standins.received("webhook") if (r.json or {}).get("event") == "page"]
    assert len(pages) == 3
