"""Retention on the real cluster: an incident over for INCIDENTOPS_RETENTION is deleted, its postmortem stays."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from kubernetes import client as k8s

from localenv.controlplane import KubeCluster
from localenv.objects import get, incident_of, listed, status
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_alert, am_webhook
from localenv.procs import wait_until

pytestmark = pytest.mark.integration
TOKEN = "retention-token"


def send(operator: OperatorProcess, namespace: str, service: str, severity: str, state: str = "firing") -> None:
    alert = am_alert(
        {"alertname": "Down", "namespace": namespace, "service": service, "severity": severity}, status=state
    )
    answer = httpx.post(
        f"{operator.url}/api/v1/alertmanager",
        json=am_webhook([alert]),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def test_incidents_long_over_are_deleted_and_their_postmortems_stay(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    api = kube_cluster.api
    operator = operator_factory(
        [namespace],
        {
            "INCIDENTOPS_WEBHOOK_TOKEN": TOKEN,
            "INCIDENTOPS_ESCALATION": "false",
            "INCIDENTOPS_LLM": "off",
            "INCIDENTOPS_RETENTION": "3s",
        },
    )
    send(operator, namespace, "still-open", "warning")
    for service, severity in (("minor", "warning"), ("major", "critical")):
        send(operator, namespace, service, severity)
        send(operator, namespace, service, severity, state="resolved")
    major = wait_until(lambda: incident_of(api, namespace, "major"), timeout=30, what="the major incident")
    name = major["metadata"]["name"]

    def deleted() -> bool:
        services = {i["spec"]["service"] for i in listed(api, namespace)}
        return "minor" not in services and "major" not in services

    wait_until(deleted, timeout=60, what="the two resolved incidents deleted")
    postmortem = get(api, namespace, "Postmortem", name)  # written before its incident went, and outlives it
    assert postmortem["spec"]["incidentRef"]["name"] == name and postmortem["spec"]["timeline"]
    still = incident_of(api, namespace, "still-open")
    assert still is not None and status(still, "state") == "Detected"  # open incidents are never deleted
    metrics = httpx.get(f"{operator.url}/metrics", timeout=10).text
    assert 'incidentops_incidents_created_total{severity="SEV1"} 1.0' in metrics  # counters keep their history
    events = k8s.CoreV1Api(api).list_namespaced_event(namespace).items
    assert any(e.involved_object.name == name and e.reason == "PostmortemWritten" for e in events)
