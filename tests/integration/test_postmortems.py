"""Postmortems on the real cluster: written once at resolution, exported by the plugin, the team's afterwards.

A SEV2 incident runs its course (alerts in through the webhook, a runbook, acknowledgement,
resolution); the Postmortem is read back as kubectl shows it, exported as Markdown, edited by the
team, and must survive an operator restart and a second resolution untouched. Closing waits for it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from kubernetes import client as k8s

from incidentops.cli.main import cli
from localenv.controlplane import KubeCluster, kubectl_binary
from localenv.demo_workload import create_demo_deployment
from localenv.objects import create, get, patch_spec, status, wait_incident
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_alert, am_webhook
from localenv.procs import wait_until
from localenv.standins import StandIns

pytestmark = pytest.mark.integration
TOKEN = "postmortem-token"
SECTIONS = (
    "summary",
    "impact",
    "timeline",
    "rootCause",
    "contributingFactors",
    "fiveWhys",
    "remediation",
    "whatWentWell",
    "whatCouldImprove",
    "actionItems",
    "metrics",
)


def env(**extra: str) -> dict[str, str]:
    return {
        "INCIDENTOPS_WEBHOOK_TOKEN": TOKEN,
        "INCIDENTOPS_ESCALATION": "false",
        "INCIDENTOPS_REMEDIATION_POLL": "1s",
        "INCIDENTOPS_LLM": "off",
        **extra,
    }


def send(operator: OperatorProcess, namespace: str, service: str, severity: str, state: str = "firing") -> None:
    labels = {
        "alertname": "PaymentsFailing",
        "namespace": namespace,
        "service": service,
        "deployment": service,
        "severity": severity,
    }
    alert = am_alert(labels, status=state, summary="Card payments failing", annotations={"errorRatio": "0.3"})
    answer = httpx.post(
        f"{operator.url}/api/v1/alertmanager",
        json=am_webhook([alert]),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def plugin(cluster: KubeCluster, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, [*args, "--kubeconfig", str(cluster.kubeconfig)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def kubectl(cluster: KubeCluster, *args: str) -> str:
    done = subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def written(incident: dict[str, Any]) -> bool:
    return status(incident, "postmortem", "state") == "Draft"


def test_a_resolved_sev2_gets_a_postmortem_that_is_the_teams_afterwards(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    api = kube_cluster.api
    create_demo_deployment(api, namespace, "payments", replicas=1)
    create(
        api,
        namespace,
        "Runbook",
        "restart-payments",
        {
            "match": {"alertnames": ["PaymentsFailing"]},
            "automatic": True,
            "minConfidence": 0.5,
            "steps": [{"name": "restart", "action": "restart", "target": {"kind": "Deployment"}}],
        },
    )
    operator = operator_factory([namespace], env())
    send(operator, namespace, "payments", "high")
    incident = wait_incident(api, namespace, "payments", lambda i: status(i, "remediation", "phase") == "Done", "ran")
    name = incident["metadata"]["name"]
    plugin(kube_cluster, "ack", name, "-n", namespace, "--by", "alice")
    wait_incident(api, namespace, "payments", lambda i: status(i, "acknowledgedBy") == "alice", "acknowledged")
    send(operator, namespace, "payments", "high", state="resolved")  # the alerts clear: auto-resolved
    incident = wait_incident(api, namespace, "payments", written, "postmortem written")
    assert incident["status"]["postmortem"] == {**incident["status"]["postmortem"], "required": True, "name": name}

    document = get(api, namespace, "Postmortem", name)
    spec = document["spec"]
    assert "ownerReferences" not in document["metadata"]  # it outlives the incident
    assert all(spec.get(section) for section in SECTIONS), [s for s in SECTIONS if not spec.get(s)]
    assert (spec["state"], spec["severity"], spec["incidentRef"]["name"]) == ("Draft", "SEV2", name)
    assert spec["impact"]["alertCount"] == 1 and spec["impact"]["users"] == "up to 30% of requests failing"
    assert spec["remediation"]["runbook"] == "restart-payments" and spec["remediation"]["actions"][0]["state"] == (
        "Succeeded"
    )
    assert len(spec["fiveWhys"]) == 5 and spec["metrics"]["timeToAcknowledgeSeconds"] >= 0
    assert {"Detected", "Acknowledged", "Resolved"} <= {e["type"] for e in spec["timeline"]}
    assert all(i["owner"] == "alice" and i["priority"] == "P2" and i["due"] for i in spec["actionItems"])
    assert "drafted" not in spec or spec["drafted"] == []  # no model configured: the template wrote it all
    columns = kubectl(kube_cluster, "get", "pm", "-n", namespace).splitlines()
    assert columns[0].split()[:5] == ["NAME", "INCIDENT", "SEVERITY", "STATE", "OPEN"]
    assert columns[1].split()[:5] == [name, name, "SEV2", "Draft", str(len(spec["actionItems"]))]

    markdown = plugin(kube_cluster, "postmortem", name, "-n", namespace).stdout
    for heading in (
        "## Summary",
        "## Impact",
        "## Timeline",
        "## Root cause",
        "## Five whys",
        "## Remediation",
        "## What went well",
        "## What could improve",
        "## Action items",
        "## Metrics",
    ):
        assert heading in markdown, heading
    assert "restart-payments" in markdown and "alice" in markdown
    exported = json.loads(plugin(kube_cluster, "postmortem", name, "-n", namespace, "-o", "json").stdout)
    assert exported["spec"] == spec

    refused = plugin(kube_cluster, "close", name, "-n", namespace, code=1)
    assert "Draft" in refused.stderr and "Published" in refused.stderr

    # The team edits it; the operator never writes it again, across a restart and a second resolution.
    items = [
        {**spec["actionItems"][0], "status": "Done"},
        {"title": "Alert on card declines", "owner": "bob", "priority": "P3", "due": "2027-01-15", "status": "Open"},
    ]
    edited = patch_spec(
        api,
        namespace,
        "Postmortem",
        name,
        {"rootCause": "edited by the team", "state": "InReview", "actionItems": items},
    )
    operator.kill()
    operator = operator_factory([namespace], env())
    plugin(
        kube_cluster,
        "resolve",
        name,
        "-n",
        namespace,
        "--summary",
        "restarted",
        "--root-cause",
        "a bad pool",
        "--by",
        "bob",
    )
    wait_incident(api, namespace, "payments", lambda i: status(i, "resolvedBy") == "bob", "resolution recorded")
    wait_incident(api, namespace, "payments", lambda i: status(i, "postmortem", "state") == "InReview", "mirrored")
    after = get(api, namespace, "Postmortem", name)
    assert after["spec"] == edited["spec"] and after["metadata"]["generation"] == edited["metadata"]["generation"]
    assert wait_until(
        lambda: get(api, namespace, "Postmortem", name).get("status", {}).get("openActionItems") == 1,
        timeout=30,
        what="open action items counted",
    )

    # A kubectl patch asking to close is refused by the operator too, with the reason in the timeline.
    patch_spec(api, namespace, "Incident", name, {"requestedState": {"state": "Closed", "by": "carol"}})
    refused_entry = wait_incident(
        api,
        namespace,
        "payments",
        lambda i: any(e["type"] == "StateChangeRefused" for e in i["status"]["timeline"]),
        "refused",
    )
    assert refused_entry["status"]["state"] == "Resolved"
    assert "InReview" in next(
        e["message"] for e in refused_entry["status"]["timeline"] if e["type"] == ("StateChangeRefused")
    )

    patch_spec(api, namespace, "Postmortem", name, {"state": "Published"})
    wait_incident(api, namespace, "payments", lambda i: status(i, "postmortem", "state") == "Published", "published")
    plugin(kube_cluster, "close", name, "-n", namespace, "--by", "carol")
    closed = wait_incident(api, namespace, "payments", lambda i: status(i, "state") == "Closed", "closed")
    assert closed["status"]["closedAt"]
    assert get(api, namespace, "Postmortem", name)["spec"]["rootCause"] == "edited by the team"


def test_a_model_drafts_the_narrative_and_a_sev3_needs_no_postmortem(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    standins: StandIns,
) -> None:
    api = kube_cluster.api
    standins.anthropic_auto(
        answers={
            "submit_postmortem": {
                "rootCause": "Drafted: the connection pool was too small.",
                "fiveWhys": ["Why? Pool exhausted."],
            },
            "submit_triage": {"severity": "SEV5", "runbook": "none"},  # it never lowers what the alerts said
        }
    )
    operator = operator_factory(
        [namespace],
        env(
            INCIDENTOPS_LLM="auto",
            ANTHROPIC_API_KEY="sk-ant-pm-test-key-1234",
            ANTHROPIC_BASE_URL=standins.base("anthropic"),
        ),
    )
    send(operator, namespace, "ledger", "critical")
    send(operator, namespace, "ledger", "critical", state="resolved")
    incident = wait_incident(api, namespace, "ledger", written, "postmortem written", timeout=60)
    spec = get(api, namespace, "Postmortem", incident["metadata"]["name"])["spec"]
    assert spec["rootCause"] == "Drafted: the connection pool was too small."
    assert "rootCause" in spec["drafted"] and "fiveWhys" in spec["drafted"] and spec["draftedBy"] == "claude-haiku-4-5"
    assert spec["timeline"] and spec["metrics"]  # the facts stay the template's
    markdown = plugin(kube_cluster, "postmortem", incident["metadata"]["name"], "-n", namespace).stdout
    assert "Drafted by claude-haiku-4-5" in markdown

    send(operator, namespace, "search", "warning")  # SEV3
    send(operator, namespace, "search", "warning", state="resolved")
    minor = wait_incident(api, namespace, "search", lambda i: status(i, "state") == "Resolved", "resolved")
    assert status(minor, "postmortem") is None  # needs none: nothing written, not even a status field
    plugin(kube_cluster, "close", minor["metadata"]["name"], "-n", namespace, "--by", "carol")
    wait_incident(api, namespace, "search", lambda i: status(i, "state") == "Closed", "closed")
    with pytest.raises(k8s.ApiException) as missing:
        get(api, namespace, "Postmortem", minor["metadata"]["name"])
    assert missing.value.status == 404
