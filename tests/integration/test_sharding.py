"""Two operator processes side by side, each watching its own namespaces: how a large organisation shards."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import httpx
import pytest
from kubernetes import client as k8s

from localenv.controlplane import KubeCluster
from localenv.names import namespace_for_test
from localenv.objects import incident_of, listed, status
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_webhook, service_alert
from localenv.procs import wait_until

pytestmark = pytest.mark.integration
TOKEN = "sharding-token"
ENV = {"INCIDENTOPS_WEBHOOK_TOKEN": TOKEN, "INCIDENTOPS_ESCALATION": "false", "INCIDENTOPS_LLM": "off"}


def send(operator: OperatorProcess, namespace: str, service: str) -> None:
    answer = httpx.post(
        f"{operator.url}/api/v1/alertmanager",
        json=am_webhook([service_alert(service, namespace)]),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def looked_at(operator: OperatorProcess) -> float:
    """Status writes this process made for its concerns' first looks (triage writes once per incident)."""
    lines = httpx.get(f"{operator.url}/metrics", timeout=10).text.splitlines()
    wanted = ('incidentops_status_writes_total{concern="triage"', 'result="ok"')
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if all(part in line for part in wanted))


def open_gauge(operator: OperatorProcess) -> float:
    lines = httpx.get(f"{operator.url}/metrics", timeout=10).text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("incidentops_incidents_open{"))


def test_two_releases_on_disjoint_namespaces_each_handle_only_their_own(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    api = kube_cluster.api
    core = k8s.CoreV1Api(api)
    other = namespace_for_test("sharding-other")
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=other)))
    try:
        first = operator_factory([namespace], ENV)
        second = operator_factory([other], ENV)
        for i in range(3):
            send(first, namespace, f"north-{i}")
        for i in range(2):
            send(second, other, f"south-{i}")
        for ns, count in ((namespace, 3), (other, 2)):
            wait_until(
                lambda ns=ns, count=count: len([i for i in listed(api, ns) if status(i, "triage")]) == count,
                timeout=60,
                what=f"the {count} incidents of {ns} looked at",
            )
        # each process looked at its own incidents and no other: the other shard's are not even seen
        assert (looked_at(first), looked_at(second)) == (3, 2)
        assert (open_gauge(first), open_gauge(second)) == (3, 2)
        # an alert for the other shard's namespace sent to the wrong release stays in that release's namespace
        # (route by namespace in Alertmanager): it is never written into a namespace the release does not own
        send(first, other, "misrouted")
        assert incident_of(api, other, "misrouted") is None
        wait_until(lambda: status(incident_of(api, namespace, "misrouted"), "triage"), timeout=60, what="misrouted")
        # a restart of one shard leaves the other's work alone, and picks up its own where it was
        first.kill()
        send(second, other, "south-late")
        wait_until(lambda: status(incident_of(api, other, "south-late"), "triage"), timeout=60, what="south-late")
        first = operator_factory([namespace], ENV)
        send(first, namespace, "north-late")
        wait_until(lambda: status(incident_of(api, namespace, "north-late"), "triage"), timeout=60, what="north-late")
        assert looked_at(first) == 1  # the restart found the earlier first looks done: nothing again
        assert sorted(i["spec"]["service"] for i in listed(api, other)) == ["south-0", "south-1", "south-late"]
    finally:
        with contextlib.suppress(k8s.ApiException):
            core.delete_namespace(other, propagation_policy="Background")
