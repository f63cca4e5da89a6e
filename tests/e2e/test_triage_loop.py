"""Triage that investigates, end to end: real Prometheus and Alertmanager, the stand-in model, a bad release.

The release breaks checkout; Prometheus fires, Alertmanager calls the operator; the model reads the
rollout history (the image change) and the error ratio through its tools and picks the rollback
runbook; the rollback is verified; the incident resolves; the postmortem names the release, the
rollback and the peak error ratio.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from incidentops.cli.main import cli
from localenv.controlplane import KubeCluster
from localenv.demo_workload import ERROR_RATIO, DemoWorkloadProcess, error_ratio_rule
from localenv.monitoring import Alertmanager, Prometheus
from localenv.objects import configmap, create, get, listed, status
from localenv.procs import free_port, wait_until_async
from localenv.standins import StandIns

TOKEN = "e2e-triage-token"
ALERT = "CheckoutErrorRatioHigh"


async def test_the_model_sees_the_release_and_the_error_ratio_and_its_rollback_is_verified_and_written_up(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., Any],
    demo_workload: Callable[..., DemoWorkloadProcess],
    prometheus_factory: Callable[..., Prometheus],
    alertmanager_factory: Callable[..., Alertmanager],
    standins: StandIns,
) -> None:
    api = kube_cluster.api
    create(
        api,
        namespace,
        "Runbook",
        "rollback-bad-release",
        {
            "match": {"alertnames": [ALERT]},
            "steps": [
                {"name": "rollback", "action": "rollback", "target": {"name": "checkout"}},
                {"name": "wait", "action": "wait-rollout", "target": {"name": "checkout"}, "timeout": "1m"},
            ],
            "verify": {"query": f"{ERROR_RATIO} > 0.2", "window": "3s", "timeout": "1m"},
            "automatic": True,
            "minConfidence": 0.9,
        },
    )
    create(
        api,
        namespace,
        "Runbook",
        "scale-out",
        {
            "match": {"alertnames": [ALERT]},
            "automatic": False,
            "steps": [{"name": "scale", "action": "scale", "params": {"replicas": 3}, "target": {"name": "checkout"}}],
        },
    )
    queries = [{"name": "error_ratio", "query": ERROR_RATIO, "description": "share of checkout requests failing"}]
    configmap(api, namespace, "triage", {"queries": yaml.safe_dump(queries)})
    # The model looks at the rollouts and the error ratio, then answers; its narrative for the postmortem is drafted
    # by the stand-in's auto mode afterwards.
    standins.anthropic_script(
        [
            {"tool_use": {"name": "recent_changes", "input": {}}},
            {"tool_use": {"name": "metrics", "input": {"query": "error_ratio"}}},
            {
                "submit": {
                    "severity": "SEV1",
                    "category": "availability",
                    "runbook": "rollback-bad-release",
                    "confidence": 0.96,
                    "reasoning": "errors rose right after the release of demo/app:bad",
                    "suspectedCause": "the release demo/app:bad",
                }
            },
        ]
    )
    demo = await asyncio.to_thread(demo_workload, namespace, "checkout")
    port = free_port()
    alertmanager = await asyncio.to_thread(
        alertmanager_factory, webhook_url=f"http://127.0.0.1:{port}/api/v1/alertmanager", bearer_token=TOKEN
    )
    prometheus = await asyncio.to_thread(
        prometheus_factory,
        scrape_targets=[demo.target],
        rules=error_ratio_rule(ALERT, "checkout", namespace=namespace),
        alertmanager_url=alertmanager.url,
    )
    settings = {
        "INCIDENTOPS_WEBHOOK_TOKEN": TOKEN,
        "INCIDENTOPS_PROMETHEUS_URL": prometheus.url,
        "INCIDENTOPS_REMEDIATION_POLL": "1s",
        "INCIDENTOPS_RISK_CEILING": "medium",
        "INCIDENTOPS_ESCALATION": "false",
        "INCIDENTOPS_TRIAGE_CONFIGMAP": f"{namespace}/triage",
        "ANTHROPIC_API_KEY": "sk-ant-e2e-key-000111222",
        "ANTHROPIC_BASE_URL": standins.base("anthropic"),
    }
    await asyncio.to_thread(operator_factory, [namespace], settings, 60.0, port)
    await asyncio.to_thread(prometheus.wait_for_value, f'up{{instance="{demo.target}"}}', lambda v: v == 1.0, 30.0)
    await asyncio.to_thread(demo.set_image, "bad")

    def over() -> dict[str, Any] | None:
        found = listed(api, namespace)
        assert len(found) <= 1, [i["metadata"]["name"] for i in found]
        return found[0] if found and status(found[0], "postmortem", "state") == "Draft" else None

    incident = await wait_until_async(over, timeout=180, what="rolled back, verified, resolved and written up")
    triage = incident["status"]["triage"]
    assert (triage["source"], triage["runbook"]) == ("llm", "rollback-bad-release")
    assert [c["name"] for c in triage["llm"]["toolCalls"]] == ["recent_changes", "metrics"]
    sent = [r.text for r in standins.received("anthropic")]
    changes, ratio = sent[1], sent[2]  # what the model was handed after its first and second tool calls
    assert "demo/app:bad" in changes and "demo/app:v1" in changes
    shown = json.loads(ratio)["messages"][-1]["content"][0]["content"]
    value = json.loads(shown.split("\n", 1)[1].rsplit("\n", 1)[0])["series"][0]["value"]
    assert value > 0.2  # the model saw the error ratio as Prometheus had it
    remediation = incident["status"]["remediation"]
    assert remediation["phase"] == "Verified" and remediation["steps"][0]["automatic"] is True
    assert incident["status"]["state"] == "Resolved"

    spec = get(api, namespace, "Postmortem", incident["metadata"]["name"])["spec"]
    rollback = spec["remediation"]["actions"][0]
    assert rollback["action"] == "rollback" and "demo/app:bad" in rollback["message"]
    assert spec["remediation"]["verified"] is True
    peaks = [p["peak"] for p in spec["impact"]["peaks"] if p.get("peak") is not None]
    assert peaks and max(peaks) > 0.2
    markdown = (
        CliRunner()
        .invoke(
            cli,
            ["postmortem", incident["metadata"]["name"], "-n", namespace, "--kubeconfig", str(kube_cluster.kubeconfig)],
        )
        .stdout
    )
    assert "demo/app:bad" in markdown and "rollback" in markdown
    assert any(f"{p:.4g}" in markdown or f"{p * 100:.3g}%" in markdown for p in peaks)


pytestmark = pytest.mark.e2e
