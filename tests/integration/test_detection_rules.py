"""DetectionRules evaluated by the operator on the real Prometheus: pending, firing, an Incident through the
ingestion path, resolution; a query Prometheus refuses; Prometheus gone; disabling and deleting a rule.

The rules query constant vectors (label_replace(vector(5), ...)), so what fires is decided by the
rule itself, and changing its expression is how a test makes a series go away.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from kubernetes import client as k8s

from localenv.controlplane import KubeCluster
from localenv.monitoring import Prometheus as PrometheusServer
from localenv.operator_process import OperatorProcess
from localenv.procs import wait_until

GROUP, VERSION = "incidentops.dev", "v1alpha1"
FIRES = 'label_replace(vector(5), "service", "checkout", "", "")'
QUIET = f"{FIRES} > 10"
ENV = {"INCIDENTOPS_WEBHOOK_TOKEN": "rules-token", "INCIDENTOPS_REMEDIATION_POLL": "1s"}


def api(cluster: KubeCluster) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(cluster.api)


def apply_rule(cluster: KubeCluster, namespace: str, name: str, **spec: Any) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DetectionRule", "metadata": {"name": name}, "spec": spec}
    api(cluster).create_namespaced_custom_object(GROUP, VERSION, namespace, "detectionrules", body)


def patch_rule(cluster: KubeCluster, namespace: str, name: str, **spec: Any) -> None:
    api(cluster).patch_namespaced_custom_object(GROUP, VERSION, namespace, "detectionrules", name, {"spec": spec})


def rule(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = api(cluster).get_namespaced_custom_object(GROUP, VERSION, namespace, "detectionrules", name)
    return found


def ready(obj: dict[str, Any]) -> tuple[str, str, str]:
    for c in (obj.get("status") or {}).get("conditions", []):
        if c["type"] == "Ready":
            return c["status"], c["reason"], c["message"]
    return "", "", ""


def incidents(cluster: KubeCluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api(cluster).list_namespaced_custom_object(GROUP, VERSION, namespace, "incidents")[
        "items"
    ]
    return [i for i in items if i.get("status")]


def wait_rule(
    cluster: KubeCluster, namespace: str, name: str, check: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    found: dict[str, Any] = wait_until(
        lambda: obj if check(obj := rule(cluster, namespace, name)) else None, timeout=60, interval=0.3, what=what
    )
    return found


def rule_events(cluster: KubeCluster, namespace: str, name: str) -> list[k8s.CoreV1Event]:
    items = k8s.CoreV1Api(cluster.api).list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    return list(items.items)


def state(obj: dict[str, Any]) -> str | None:
    return (obj.get("status") or {}).get("state")


def test_a_rule_goes_pending_then_firing_opens_one_incident_and_resolves_it(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    prometheus = prometheus_factory(scrape_targets=[])
    operator_factory([namespace], {**ENV, "INCIDENTOPS_PROMETHEUS_URL": prometheus.url})
    apply_rule(
        kube_cluster,
        namespace,
        "checkout-errors",
        expr=FIRES,
        interval="5s",
        severity="SEV2",
        category="availability",
        labels={"team": "payments"},
        annotations={"summary": "{{ $labels.service }} error ratio at {{ $value }}"},
        resolveAfter="1s",
        **{"for": "6s"},
    )
    pending = wait_rule(kube_cluster, namespace, "checkout-errors", lambda o: state(o) == "Pending", "Pending")
    assert pending["status"]["query"] == FIRES and ready(pending)[:2] == ("True", "Evaluated")
    assert incidents(kube_cluster, namespace) == []  # not before `for`
    wait_rule(kube_cluster, namespace, "checkout-errors", lambda o: state(o) == "Firing", "Firing")
    [incident] = wait_until(lambda: incidents(kube_cluster, namespace), timeout=30, what="the incident")
    spec = incident["spec"]
    assert (spec["source"], spec["severity"], spec["category"], spec["service"]) == (
        "detectionrule",
        "SEV2",
        "availability",
        "checkout",
    )
    assert spec["title"] == "checkout error ratio at 5" and spec["labels"]["team"] == "payments"

    patch_rule(kube_cluster, namespace, "checkout-errors", expr=QUIET)
    resolved = wait_until(
        lambda: [i for i in incidents(kube_cluster, namespace) if i["status"]["state"] == "Resolved"],
        timeout=60,
        what="the incident resolved once the series went away",
    )
    assert len(resolved) == 1 and len(incidents(kube_cluster, namespace)) == 1
    done = wait_rule(kube_cluster, namespace, "checkout-errors", lambda o: state(o) == "Inactive", "Inactive")
    assert done["status"]["firing"] == 0


def test_a_query_prometheus_refuses_is_not_ready_with_its_message(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    prometheus = prometheus_factory(scrape_targets=[])
    operator_factory([namespace], {**ENV, "INCIDENTOPS_PROMETHEUS_URL": prometheus.url})
    apply_rule(kube_cluster, namespace, "broken", expr="sum(rate(http_requests_total[5m]) >", interval="5s")
    refused = wait_rule(kube_cluster, namespace, "broken", lambda o: ready(o)[1] == "QueryRejected", "QueryRejected")
    status, _, message = ready(refused)
    assert status == "False" and "parse error" in message
    assert refused["status"]["evaluationErrors"] >= 1
    said = wait_until(
        lambda: [(e.type, e.reason) for e in rule_events(kube_cluster, namespace, "broken")] or None,
        timeout=15,
        what="the rule's Event",
    )
    assert said == [("Warning", "QueryRejected")]  # and never a Normal "rule is valid" beside it
    patch_rule(kube_cluster, namespace, "broken", expr=QUIET)
    wait_rule(kube_cluster, namespace, "broken", lambda o: ready(o)[:2] == ("True", "Evaluated"), "fixed")


def test_prometheus_gone_keeps_firing_incidents_open_and_says_so_once(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    prometheus = prometheus_factory(scrape_targets=[])
    operator_factory([namespace], {**ENV, "INCIDENTOPS_PROMETHEUS_URL": prometheus.url})
    apply_rule(kube_cluster, namespace, "checkout-errors", expr=FIRES, interval="5s", resolveAfter="1s")
    wait_rule(kube_cluster, namespace, "checkout-errors", lambda o: state(o) == "Firing", "Firing")
    wait_until(lambda: incidents(kube_cluster, namespace), timeout=30, what="the incident")
    prometheus.stop()
    down = wait_rule(
        kube_cluster, namespace, "checkout-errors", lambda o: o["status"].get("evaluationErrors", 0) >= 3, "3 errors"
    )
    assert ready(down)[:2] == ("False", "PrometheusUnreachable") and state(down) == "Firing"
    [incident] = incidents(kube_cluster, namespace)
    assert incident["status"]["state"] != "Resolved"  # the data went away, not the problem
    events = k8s.CoreV1Api(kube_cluster.api).list_namespaced_event(namespace).items
    outage = [e for e in events if e.involved_object.name == "checkout-errors" and e.reason == "PrometheusUnreachable"]
    assert len(outage) == 1  # once per outage, not per evaluation


def test_disabling_or_deleting_a_rule_resolves_what_it_opened(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    prometheus = prometheus_factory(scrape_targets=[])
    operator = operator_factory([namespace], {**ENV, "INCIDENTOPS_PROMETHEUS_URL": prometheus.url})
    apply_rule(kube_cluster, namespace, "one", expr=FIRES, interval="5s", service="one")
    apply_rule(kube_cluster, namespace, "two", expr=FIRES, interval="5s", service="two")
    wait_until(lambda: len(incidents(kube_cluster, namespace)) == 2, timeout=60, what="two incidents")
    patch_rule(kube_cluster, namespace, "one", enabled=False)
    disabled = wait_rule(kube_cluster, namespace, "one", lambda o: state(o) == "Disabled", "Disabled")
    assert disabled["status"]["series"] == []
    api(kube_cluster).delete_namespaced_custom_object(GROUP, VERSION, namespace, "detectionrules", "two")

    def both_resolved() -> list[dict[str, Any]] | None:
        found = incidents(kube_cluster, namespace)
        return found if all(i["status"]["state"] == "Resolved" for i in found) else None

    wait_until(both_resolved, timeout=60, what="both incidents resolved")

    def said_why() -> list[str] | None:
        notes = [
            e["message"]
            for i in incidents(kube_cluster, namespace)
            for e in i["status"]["timeline"]
            if e["type"] == "DetectionRuleGone"
        ]
        return notes if len(notes) == 2 else None

    notes = sorted(wait_until(said_why, timeout=30, what="the timeline saying why"))
    assert notes == [
        "DetectionRule one was disabled: its alerts are resolved",
        "DetectionRule two was deleted: its alerts are resolved",
    ]
    # Deleting a rule is not an error, and a rule is not an incident: no traceback, no "remediation turn".
    logs = operator.logs()
    assert "Traceback" not in logs and "NotFound" not in logs and "remediation turn" not in logs


def test_an_interval_below_the_minimum_is_refused_by_the_apiserver(
    kube_cluster: KubeCluster, crds: list[str], namespace: str
) -> None:
    import pytest  # noqa: PLC0415

    for i, interval in enumerate(["1s", "4s", "0.05m", "0d", "0w", "0y", "0.00001d", "0d1s"]):
        with pytest.raises(k8s.ApiException) as refused:
            apply_rule(kube_cluster, namespace, f"too-fast-{i}", expr=FIRES, interval=interval)
        assert refused.value.status == 422 and "interval must be at least 5s" in str(refused.value.body), interval
    for i, interval in enumerate(["5s", "1d", "1.5d", "2w", "1y"]):
        apply_rule(kube_cluster, namespace, f"slow-enough-{i}", expr=FIRES, interval=interval)


def plugin(cluster: KubeCluster, *args: str, code: int = 0) -> Any:
    from click.testing import CliRunner  # noqa: PLC0415

    from incidentops.cli.main import cli  # noqa: PLC0415

    result = CliRunner().invoke(cli, [*args, "--kubeconfig", str(cluster.kubeconfig)])
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def test_test_rule_shows_what_a_rule_would_open_and_simulate_opens_a_labelled_incident(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    prometheus_factory: Callable[..., PrometheusServer],
    tmp_path: Any,
) -> None:
    prometheus = prometheus_factory(scrape_targets=[])
    prometheus.wait_for_value("vector(1)", lambda v: v == 1.0, 30)
    manifest = tmp_path / "rule.yaml"
    manifest.write_text(
        "apiVersion: incidentops.dev/v1alpha1\nkind: DetectionRule\nmetadata: {name: checkout-errors}\n"
        f"spec:\n  expr: '{FIRES}'\n  severity: SEV2\n  annotations: {{summary: 'errors at {{{{ $value }}}}'}}\n"
    )
    shown = plugin(kube_cluster, "test-rule", str(manifest), "-n", namespace, "--prometheus", prometheus.url).stdout
    assert f"query: {FIRES}" in shown and "1 series would fire" in shown
    assert "service=checkout  value 5" in shown and "would open: errors at 5 (SEV2, service checkout)" in shown
    apply_rule(kube_cluster, namespace, "quiet", expr=QUIET, interval="1m")
    quiet = plugin(kube_cluster, "test-rule", "quiet", "-n", namespace, "--prometheus", prometheus.url, "--at", "1m")
    assert "no series: the rule would not fire" in quiet.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: DetectionRule\nmetadata: {name: b}\nspec: {expr: 'sum(rate(x[5m]) >'}\n")
    refused = plugin(kube_cluster, "test-rule", str(broken), "--prometheus", prometheus.url, code=1)
    assert "parse error" in refused.stderr
    assert incidents(kube_cluster, namespace) == []  # trying a rule opens nothing

    operator_factory([namespace], ENV)
    opened = plugin(kube_cluster, "simulate", "-n", namespace, "--service", "checkout", "--alert", "PodsCrashing")
    name = opened.stdout.split('"')[1]
    [incident] = wait_until(lambda: incidents(kube_cluster, namespace), timeout=30, what="the simulated incident")
    assert (
        incident["metadata"]["name"] == name and incident["metadata"]["labels"]["incidentops.dev/simulation"] == "true"
    )
    assert incident["spec"]["title"] == "[simulation] PodsCrashing on checkout"
    assert incident["status"]["state"] == "Detected"


def test_a_rule_on_a_metric_that_does_not_exist_says_no_data(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    prometheus = prometheus_factory(scrape_targets=[])
    operator_factory([namespace], {**ENV, "INCIDENTOPS_PROMETHEUS_URL": prometheus.url})
    typo = "sum(rate(http_reqeusts_total[1m])) / sum(rate(http_requests_total[1m])) > 0.1"
    apply_rule(kube_cluster, namespace, "typo", expr=typo, interval="5s")
    apply_rule(kube_cluster, namespace, "quiet", expr=QUIET, interval="5s")  # empty, yet its data exists
    apply_rule(kube_cluster, namespace, "gone", expr="absent(http_reqeusts_total)", interval="5s")
    nodata = wait_rule(kube_cluster, namespace, "typo", lambda o: ready(o)[1] == "NoData", "NoData")
    status, _, message = ready(nodata)
    assert status == "False" and "http_reqeusts_total, http_requests_total" in message
    assert "is the metric name right" in message and state(nodata) == "Inactive"
    for name in ("quiet", "gone"):  # absence is what `gone` is about; `quiet` asks only for constants
        found = wait_rule(
            kube_cluster,
            namespace,
            name,
            lambda o: (
                (o.get("status") or {}).get("evaluationErrors", 0) == 0
                and len([e for e in rule_events(kube_cluster, namespace, "typo") if e.reason == "NoData"]) == 1
            ),
            "one Event",
        )
        assert ready(found)[:2] == ("True", "Evaluated"), (name, ready(found))


def test_for_fires_at_the_evaluation_that_completes_it(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    """With for 10s every 5s, a rule fired 15s after it went pending half the time (a precision bug)."""
    prometheus = prometheus_factory(scrape_targets=[])
    operator_factory([namespace], {**ENV, "INCIDENTOPS_PROMETHEUS_URL": prometheus.url})
    names = [f"r{i}" for i in range(6)]
    for name in names:
        apply_rule(kube_cluster, namespace, name, expr=FIRES, interval="5s", service=name, **{"for": "10s"})
    from incidentops.api.v1alpha1.common import parse_time  # noqa: PLC0415

    for name in names:
        fired = wait_rule(kube_cluster, namespace, name, lambda o: state(o) == "Firing", f"{name} Firing")
        [series] = fired["status"]["series"]
        waited = parse_time(series["firedAt"]) - parse_time(series["activeSince"])
        assert waited.total_seconds() == 10.0, (name, series)


def test_a_rule_whose_evaluation_changes_nothing_writes_nothing(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    prometheus = prometheus_factory(scrape_targets=[])
    operator = operator_factory([namespace], {**ENV, "INCIDENTOPS_PROMETHEUS_URL": prometheus.url})
    apply_rule(kube_cluster, namespace, "steady", expr=FIRES, interval="5s", service="steady", resolveAfter="1s")
    firing = wait_rule(kube_cluster, namespace, "steady", lambda o: state(o) == "Firing", "Firing")

    def unchanged() -> float:
        text = httpx.get(f"{operator.url}/metrics", timeout=10).text
        found = re.search(r'^incidentops_rule_status_writes_total\{result="unchanged"\} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    seen = unchanged()
    wait_until(lambda: unchanged() >= seen + 2, timeout=30, what="two more evaluations that changed nothing")
    still = rule(kube_cluster, namespace, "steady")
    assert still["metadata"]["resourceVersion"] == firing["metadata"]["resourceVersion"]  # no write at all
    assert still["status"]["lastEvaluation"] == firing["status"]["lastEvaluation"]  # written at most once a minute
    patch_rule(kube_cluster, namespace, "steady", expr=QUIET)  # a state change is written at once
    wait_rule(kube_cluster, namespace, "steady", lambda o: state(o) == "Inactive", "Inactive")
