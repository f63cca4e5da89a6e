"""Pure helpers of the local environment (no cluster, no servers)."""

from __future__ import annotations

import random
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from localenv.controlplane import _plain_log_line, versions
from localenv.demo_workload import behaviour_for, demo_deployment_manifest, image_tag
from localenv.monitoring import Alertmanager, Prometheus
from localenv.names import MAX_DNS_LABEL, namespace_for_test
from localenv.procs import WaitTimeout, free_port, wait_until

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize(
    "test_name",
    ["test_rollback[kubectl]", "TEST__Upper", "x" * 200, "[]", "test_a-" + "b" * 70],
)
def test_namespace_names_are_dns_labels(test_name: str) -> None:
    name = namespace_for_test(test_name, random.Random(1))
    assert len(name) <= MAX_DNS_LABEL
    assert DNS_LABEL.match(name), name


def test_namespace_names_differ_per_call() -> None:
    assert namespace_for_test("test_x") != namespace_for_test("test_x")


def test_wait_until_returns_the_truthy_value() -> None:
    calls = iter([None, 0, "done"])
    assert wait_until(lambda: next(calls), timeout=5, interval=0) == "done"


def test_wait_until_reports_the_last_ignored_error() -> None:
    def refuse() -> bool:
        raise ConnectionRefusedError("nope")

    with pytest.raises(WaitTimeout, match=r"server.*nope"):
        wait_until(refuse, timeout=0.2, interval=0.05, what="server", ignore=(OSError,))


def test_wait_until_propagates_other_errors() -> None:
    def broken() -> bool:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        wait_until(broken, timeout=5, ignore=(OSError,))


def test_free_port_is_bindable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("demo/app:v1", "v1"),
        ("registry:5000/demo/app", ""),
        ("registry:5000/app:bad-2", "bad-2"),
        ("app@sha256:abc", ""),
        ("app:bad@sha256:abc", "bad"),
    ],
)
def test_image_tag(image: str, tag: str) -> None:
    assert image_tag(image) == tag


def test_behaviour_follows_image_and_readiness() -> None:
    healthy = behaviour_for("demo/app:v1", ready_replicas=2, min_replicas=2)
    assert healthy.error_ratio < 0.01 and healthy.cpu_utilization < 0.9
    assert behaviour_for("demo/app:bad", 2, 2).error_ratio > 0.5
    assert behaviour_for("registry:5000/bad/app:v1", 2, 2).error_ratio < 0.01  # only the tag counts
    saturated = behaviour_for("demo/app:v1", ready_replicas=1, min_replicas=2)
    assert saturated.cpu_utilization > 0.9 and saturated.latency_seconds > healthy.latency_seconds


def test_demo_manifest_selects_its_pods() -> None:
    manifest = demo_deployment_manifest("shop", image="demo/app:v7", replicas=3)
    spec = manifest["spec"]
    assert spec["replicas"] == 3
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert spec["template"]["spec"]["containers"][0]["image"] == "demo/app:v7"


def test_versions_come_from_the_bin_dir_name() -> None:
    bins = Path("/c/controlplane/k8s-v1.34.4_etcd-v3.6.16_kwok-v0.7.0/bin")
    assert versions(bins) == {"k8s": "v1.34.4", "etcd": "3.6.16", "kwok": "v0.7.0"}


def test_kwokctl_json_logs_become_words() -> None:
    line = '{"level":"INFO","msg":"Cluster is started","elapsed":{"nanosecond":1,"human":"1.2s"}}'
    assert _plain_log_line(line) == "Cluster is started (1.2s)"
    assert _plain_log_line("plain text") == "plain text"


def test_prometheus_config(tmp_path: Path) -> None:
    prom = Prometheus(
        tmp_path,
        scrape_targets=["127.0.0.1:9999"],
        rules="groups: []",
        alertmanager_url="http://127.0.0.1:9093",
        binary="/nonexistent/prometheus",
    )
    config = prom.config()
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "1s"
    assert config["scrape_configs"][0]["static_configs"] == [{"targets": ["127.0.0.1:9999"]}]
    assert config["alerting"]["alertmanagers"][0]["static_configs"] == [{"targets": ["127.0.0.1:9093"]}]
    assert config["rule_files"] == [str(tmp_path / "rules.yml")]


def test_alertmanager_config_is_accepted_by_amtool(tmp_path: Path) -> None:
    am = Alertmanager(tmp_path, webhook_url="http://127.0.0.1:1/hook", bearer_token="t0ken", binary="/nonexistent/am")
    config = am.config()
    webhook = config["receivers"][0]["webhook_configs"][0]
    assert webhook["http_config"]["authorization"] == {"type": "Bearer", "credentials": "t0ken"}
    assert webhook["send_resolved"] is True
    assert config["route"]["group_wait"] == config["route"]["group_interval"] == "1s"
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool (Debian package prometheus-alertmanager) is not installed")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
