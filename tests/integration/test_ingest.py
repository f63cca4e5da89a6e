"""Alerts become Incidents on the real control plane: dedup, correlation, concurrency, restarts."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s

from localenv.controlplane import KubeCluster
from localenv.operator_process import OperatorProcess
from localenv.payloads import am_webhook, resolved, service_alert
from localenv.procs import free_port, wait_until

GROUP, VERSION = "incidentops.dev", "v1alpha1"
TOKEN = "ingest-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ENV = {"INCIDENTOPS_WEBHOOK_TOKEN": TOKEN}


def incidents(cluster: KubeCluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = k8s.CustomObjectsApi(cluster.api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "incidents"
    )["items"]
    return sorted(items, key=lambda o: o["metadata"]["name"])


def post(operator: OperatorProcess, body: Any, path: str = "/api/v1/alertmanager", **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", AUTH)
    return httpx.post(f"{operator.url}{path}", json=body, headers=headers, timeout=60, **kwargs)


def test_webhook_becomes_one_incident(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Any
) -> None:
    operator = operator_factory([namespace], env=ENV)
    alerts = [service_alert("checkout", namespace, instance=str(i)) for i in range(3)]
    answer = post(operator, am_webhook(alerts))
    assert answer.status_code == 200, answer.text
    [incident] = incidents(kube_cluster, namespace)
    assert answer.json()["incidents"] == [
        {"namespace": namespace, "name": incident["metadata"]["name"], "created": True}
    ]
    spec, status = incident["spec"], incident["status"]
    assert (spec["severity"], spec["service"], spec["source"]) == ("SEV1", "checkout", "alertmanager")
    assert status["state"] == "Detected"
    assert (status["alerts"]["count"], status["alerts"]["firing"], status["alerts"]["deliveries"]) == (3, 3, 3)
    assert incident["metadata"]["labels"]["incidentops.dev/severity"] == "SEV1"
    assert [e["type"] for e in status["timeline"]] == ["Detected", "AlertFiring"]
    core = k8s.CoreV1Api(kube_cluster.api)
    wait_until(
        lambda: [e for e in core.list_namespaced_event(namespace).items if e.reason == "Detected"],
        timeout=15,
        what="Detected event",
    )


def test_same_payload_fifty_times_concurrently(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Any
) -> None:
    operator = operator_factory([namespace], env=ENV)
    body = am_webhook([service_alert("payments", namespace, instance=str(i)) for i in range(4)])

    async def storm() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            answers = await asyncio.gather(
                *(client.post(f"{operator.url}/api/v1/alertmanager", json=body, headers=AUTH) for _ in range(50))
            )
        return [a.status_code for a in answers]

    assert asyncio.run(storm()) == [200] * 50
    [incident] = incidents(kube_cluster, namespace)
    alerts = incident["status"]["alerts"]
    assert (alerts["count"], alerts["firing"], alerts["deliveries"]) == (4, 4, 200)
    metrics = httpx.get(f"{operator.url}/metrics").text
    assert 'incidentops_alerts_received_total{source="alertmanager"} 200.0' in metrics
    assert "incidentops_alerts_deduplicated_total 196.0" in metrics
    assert 'incidentops_incidents_created_total{severity="SEV1"} 1.0' in metrics


def test_two_operators_fed_the_same_stream_create_no_duplicates(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Any
) -> None:
    """Alertmanager HA: both replicas notify, each to a different operator process."""
    first = operator_factory([namespace], env=ENV)
    second = operator_factory([namespace], env=ENV)
    services = [f"svc{i}" for i in range(6)]
    bodies = [am_webhook([service_alert(s, namespace, instance=str(n))]) for n in range(5) for s in services]

    async def both() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            sends = [
                client.post(f"{op.url}/api/v1/alertmanager", json=b, headers=AUTH)
                for b in bodies
                for op in (first, second)
            ]
            return [a.status_code for a in await asyncio.gather(*sends)]

    assert set(asyncio.run(both())) == {200}
    found = incidents(kube_cluster, namespace)
    assert sorted(i["spec"]["service"] for i in found) == sorted(services)
    for incident in found:
        alerts = incident["status"]["alerts"]
        assert (alerts["count"], alerts["firing"], alerts["deliveries"]) == (5, 5, 10), incident["metadata"]["name"]


def test_resolved_notification_resolves_and_a_recurrence_opens_the_next_episode(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Any
) -> None:
    operator = operator_factory([namespace], env=ENV)
    alerts = [service_alert("search", namespace, instance=str(i)) for i in range(2)]
    assert post(operator, am_webhook(alerts)).status_code == 200
    assert post(operator, am_webhook(resolved(alerts[:1]))).status_code == 200
    [incident] = incidents(kube_cluster, namespace)
    assert incident["status"]["state"] == "Detected" and incident["status"]["alerts"]["firing"] == 1
    assert post(operator, am_webhook(resolved(alerts))).status_code == 200
    [incident] = incidents(kube_cluster, namespace)
    status = incident["status"]
    assert status["state"] == "Resolved" and status["resolvedBy"] == "auto-resolve"
    assert status["metrics"]["timeToResolveSeconds"] >= 0
    assert {c["type"]: c["status"] for c in status["conditions"]}["Resolved"] == "True"
    # a SEV1 resolved: its postmortem is written next (a write of its own); once it is, nothing else is due
    incident = wait_until(
        lambda: next(
            (
                i
                for i in incidents(kube_cluster, namespace)
                if ((i["status"].get("postmortem") or {}).get("state")) == "Draft"
            ),
            None,
        ),
        timeout=30,
        what="the postmortem written",
    )
    # duplicates of the resolved notification change nothing
    assert post(operator, am_webhook(resolved(alerts))).status_code == 200
    assert (
        incidents(kube_cluster, namespace)[0]["metadata"]["resourceVersion"] == incident["metadata"]["resourceVersion"]
    )

    # an HA twin (or a late retry) replays the old firing notification: not a new episode
    assert post(operator, am_webhook(alerts[:1])).status_code == 200
    assert len(incidents(kube_cluster, namespace)) == 1
    # the alert really fires again: a new occurrence, with a new startsAt
    assert post(operator, am_webhook([service_alert("search", namespace, instance="0")])).status_code == 200
    old, new = sorted(
        incidents(kube_cluster, namespace), key=lambda o: o["metadata"]["labels"]["incidentops.dev/episode"]
    )
    assert new["metadata"]["name"].endswith("-2") and new["spec"]["previousIncident"] == old["metadata"]["name"]
    assert new["status"]["state"] == "Detected"
    assert old["status"]["recurredAs"] == new["metadata"]["name"]
    assert old["status"]["timeline"][-1]["type"] == "Recurred"


def test_generic_events_open_and_close_an_incident(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Any
) -> None:
    operator = operator_factory([namespace], env=ENV)
    event = {
        "type": "alert.fired",
        "source": "ci",
        "alert_id": "deploy-7",
        "alert_name": "DeployFailed",
        "service": "checkout",
        "namespace": namespace,
        "severity": "P2",
        "message": "deploy 7 failed",
    }
    assert post(operator, event, "/api/v1/events").status_code == 200
    [incident] = incidents(kube_cluster, namespace)
    assert (incident["spec"]["severity"], incident["spec"]["source"], incident["spec"]["title"]) == (
        "SEV2",
        "ci",
        "deploy 7 failed",
    )
    assert post(operator, {"events": [{**event, "type": "alert.resolved"}]}, "/api/v1/events").status_code == 200
    assert incidents(kube_cluster, namespace)[0]["status"]["state"] == "Resolved"


def test_alerts_for_unwatched_namespaces_land_in_the_home_namespace(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Any
) -> None:
    operator = operator_factory([namespace], env=ENV)
    assert post(operator, am_webhook([service_alert("billing", "kube-system")])).status_code == 200
    [incident] = incidents(kube_cluster, namespace)
    assert incident["spec"]["service"] == "billing"


def test_bad_requests_get_clear_answers(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Any
) -> None:
    operator = operator_factory([namespace], env={**ENV, "INCIDENTOPS_MAX_BODY_BYTES": "65536"})
    body = am_webhook([service_alert("x", namespace)])
    assert post(operator, body, headers={}).status_code == 401
    assert post(operator, body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    broken = httpx.post(f"{operator.url}/api/v1/alertmanager", content=b"{not json", headers=AUTH)
    assert broken.status_code == 400 and broken.json()["error"] == "invalid_json"
    not_an_object = post(operator, [body])
    assert not_an_object.status_code == 400 and not_an_object.json()["message"].startswith(
        "body: expected a JSON object"
    )
    missing = post(operator, {"status": "firing"})
    assert missing.status_code == 400 and missing.json()["message"] == "alerts: expected a list of alerts, got missing"
    huge = am_webhook([service_alert("x", namespace, instance=str(i)) for i in range(400)])
    assert len(json.dumps(huge)) > 65536
    too_large = post(operator, huge)
    assert too_large.status_code == 413 and too_large.json()["error"] == "too_large"
    assert incidents(kube_cluster, namespace) == []
    metrics = httpx.get(f"{operator.url}/metrics").text
    for reason in ("unauthorized", "invalid_json", "unreadable", "too_large"):
        assert f'incidentops_alerts_rejected_total{{reason="{reason}"}}' in metrics


def test_hostile_but_valid_alert_text_still_opens_an_incident(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Any
) -> None:
    """Alert text is untrusted: oversized values and odd names are bounded, never a 5xx loop."""
    operator = operator_factory([namespace], env=ENV)
    labels = {f"extra{i:03d}": "v" * 4000 for i in range(300)}
    labels |= {
        "alertname": "Boom" * 100,
        "service": "Checkout Service!" * 10,
        "namespace": "Not/A Namespace",
        "deployment": "Not A Name",
        "severity": "critical",
    }
    alert = {
        **service_alert("x", namespace),
        "labels": labels,
        "fingerprint": "f" * 5000,
        "annotations": {"summary": "s" * 4000, "description": "d" * 4000},
    }
    answer = post(operator, am_webhook([alert]))
    assert answer.status_code == 200, answer.text
    [incident] = incidents(kube_cluster, namespace)  # an unusable namespace label lands in the home namespace
    assert incident["spec"]["severity"] == "SEV1" and len(incident["spec"]["title"]) <= 512
    assert incident["spec"].get("affectedWorkloads", []) == []
    assert incident["status"]["alerts"]["count"] == 1


def test_one_webhook_of_twenty_thousand_alerts_is_accepted(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Any
) -> None:
    operator = operator_factory([namespace], env=ENV)
    services = 40
    alerts = [service_alert(f"svc{i % services}", namespace, instance=str(i)) for i in range(20_000)]
    body = am_webhook(alerts)
    assert len(json.dumps(body)) < 10 * 1024 * 1024
    answer = post(operator, body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["alerts"] == 20_000 and len(answer.json()["incidents"]) == services
    found = incidents(kube_cluster, namespace)
    assert len(found) == services
    assert sum(i["status"]["alerts"]["count"] for i in found) == 20_000


def test_operator_killed_mid_stream_loses_no_acknowledged_alert(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Any
) -> None:
    """Every alert that got a 2xx is in the cluster, whatever happened to the process after."""
    first = operator_factory([namespace], env=ENV)
    accepted: list[str] = []
    current = {"url": first.url}
    stop = threading.Event()

    def stream() -> None:
        n = 0
        with httpx.Client(timeout=10) as client:
            while not stop.is_set() and n < 2000:
                alert = service_alert(f"svc{n % 3}", namespace, instance=str(n))
                try:
                    answer = client.post(
                        f"{current['url']}/api/v1/alertmanager", json=am_webhook([alert]), headers=AUTH
                    )
                except httpx.HTTPError:
                    continue  # the sender retries the same alert, as Alertmanager does
                if answer.status_code == 200:
                    accepted.append(alert["fingerprint"])
                    n += 1

    sender = threading.Thread(target=stream)
    sender.start()
    try:
        wait_until(lambda: len(accepted) >= 60, timeout=60, what="first alerts accepted")
        first.kill()
        second = operator_factory([namespace], env=ENV)
        current["url"] = second.url
        before = len(accepted)
        wait_until(lambda: len(accepted) >= before + 60, timeout=60, what="alerts accepted after restart")
    finally:
        stop.set()
        sender.join(timeout=30)
    active = {fp for i in incidents(kube_cluster, namespace) for fp in i["status"]["alerts"]["active"]}
    assert set(accepted) <= active, f"{len(set(accepted) - active)} accepted alerts missing"
    assert len(incidents(kube_cluster, namespace)) == 3
    assert sum(i["status"]["alerts"]["count"] for i in incidents(kube_cluster, namespace)) == len(set(accepted))


@pytest.mark.parametrize("auto_resolve", ["false"])
def test_auto_resolve_off_moves_to_monitoring(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Any, auto_resolve: str
) -> None:
    operator = operator_factory([namespace], env={**ENV, "INCIDENTOPS_AUTO_RESOLVE": auto_resolve})
    alerts = [service_alert("cart", namespace)]
    assert post(operator, am_webhook(alerts)).status_code == 200
    assert post(operator, am_webhook(resolved(alerts))).status_code == 200
    assert incidents(kube_cluster, namespace)[0]["status"]["state"] == "Monitoring"


def test_a_missing_namespace_answers_503_saying_so(
    kube_cluster: KubeCluster, crds: list[str], operator_factory: Any
) -> None:
    """Nothing is lost: Alertmanager keeps retrying until someone creates the namespace."""
    operator = operator_factory(["no-such-namespace-for-incidents"], env=ENV)
    answer = post(operator, am_webhook([service_alert("checkout", "no-such-namespace-for-incidents")]))
    assert answer.status_code == 503
    assert "no-such-namespace-for-incidents" in answer.json()["message"]
    assert "namespace present" in answer.json()["message"]


def test_apiserver_trouble_answers_503_and_the_operator_stays_up(kube_cluster: KubeCluster, tmp_path: Path) -> None:
    """Alertmanager retries on 5xx; so the operator must say 503, not 2xx, and keep running."""
    config = yaml.safe_load(kube_cluster.kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    broken = tmp_path / "kubeconfig"
    broken.write_text(yaml.safe_dump(config))
    operator = OperatorProcess(
        kubeconfig=broken, namespaces=["nowhere"], log_path=tmp_path / "operator.log", extra_env=ENV
    )
    operator.process.start()
    try:
        wait_until(
            lambda: httpx.get(f"{operator.url}/healthz", timeout=1).status_code == 200,
            timeout=30,
            what="the operator's HTTP server",
            ignore=(httpx.HTTPError,),
        )
        assert httpx.get(f"{operator.url}/readyz").status_code == 503
        answer = post(operator, am_webhook([service_alert("checkout", "nowhere")]))
        assert answer.status_code == 503 and answer.json()["error"] == "not_ready"  # at once, with the reason
        assert "apiserver unreachable" in answer.json()["message"] and answer.headers["Retry-After"] == "5"
        assert operator.process.returncode is None
    finally:
        operator.stop()


def kube_calls(operator: OperatorProcess, verb: str, resource: str) -> float:
    lines = httpx.get(f"{operator.url}/metrics", timeout=10).text.splitlines()
    wanted = ("incidentops_kube_request_seconds_count{", f'verb="{verb}"', f'resource="{resource}"', 'result="ok"')
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if all(part in line for part in wanted))


def test_a_new_key_costs_no_list_and_a_known_one_is_read_by_name(
    kube_cluster: KubeCluster, crds: list[str], namespace: str, operator_factory: Any
) -> None:
    """The apiserver filters a label LIST over every Incident of the namespace: at 10,000 incidents each new
    key's LIST was a scan. The episode index the watch feeds answers instead."""
    operator = operator_factory([namespace], env=ENV)
    lists = kube_calls(operator, "list", "incidents")  # the start-up listing
    for i in range(5):
        assert post(operator, am_webhook([service_alert(f"fresh-{i}", namespace)])).status_code == 200
    assert len(incidents(kube_cluster, namespace)) == 5
    wait_until(lambda: all(i.get("status", {}).get("triage") for i in incidents(kube_cluster, namespace)),
               timeout=30, what="every first look")  # fmt: skip
    assert kube_calls(operator, "list", "incidents") == lists
    assert kube_calls(operator, "create", "incidents") == 5
    operator.kill()
    operator = operator_factory([namespace], env=ENV)  # nothing cached: the key is found by its name
    lists = kube_calls(operator, "list", "incidents")
    assert post(operator, am_webhook([service_alert("fresh-0", namespace, instance="b")])).status_code == 200
    assert kube_calls(operator, "list", "incidents") == lists
    joined = next(i for i in incidents(kube_cluster, namespace) if i["spec"]["service"] == "fresh-0")
    assert joined["status"]["alerts"]["firing"] == 2 and len(incidents(kube_cluster, namespace)) == 5
