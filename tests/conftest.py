"""Fixtures shared by integration and e2e tests: a real cluster, real Prometheus/Alertmanager, the operator.

Cluster fixtures are lazy: a unit test never asks for them, so `pytest tests/unit` starts
nothing. The cluster is started on first use (or $KUBECONFIG is used when it reaches a cluster)
and deliberately left running at the end of the session, so repeated runs reuse it in about a
second; `python -m localenv cluster-down` (called by CI at the end) removes it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from localenv.controlplane import KubeCluster, api_client, use_or_start_cluster
from localenv.crds import install_crds
from localenv.demo_workload import DEFAULT_IMAGE, DemoWorkloadProcess, create_demo_deployment
from localenv.monitoring import Alertmanager, Prometheus
from localenv.names import namespace_for_test
from localenv.operator_process import OperatorProcess
from localenv.procs import wait_until
from localenv.standins import SmtpStandIn, StandIns

TESTS_DIR = Path(__file__).parent
_MARKED_DIRS = {"integration": "integration", "e2e": "e2e"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by directory, so `-m "not e2e"` works without decorating every test."""
    for item in items:
        try:
            top = item.path.relative_to(TESTS_DIR).parts[0]
        except (ValueError, IndexError):
            continue
        marker = _MARKED_DIRS.get(top)
        if marker:
            item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    """The local control plane (or $KUBECONFIG's cluster); KUBECONFIG is exported for subprocesses."""
    kubeconfig = use_or_start_cluster()
    os.environ["KUBECONFIG"] = str(kubeconfig)
    api = api_client(kubeconfig)
    try:
        yield KubeCluster(kubeconfig=kubeconfig, api=api)
    finally:
        api.close()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="session")
def crds(kube_cluster: KubeCluster) -> list[str]:
    """The project's CRDs, installed (or updated) from crds/ and Established."""
    return install_crds(kube_cluster.api)


@pytest.fixture
def namespace(kube_cluster: KubeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting for finalization)."""
    core = k8s.CoreV1Api(kube_cluster.api)
    name = namespace_for_test(request.node.name)
    body = k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels={"incidentops.dev/test": "true"}))
    core.create_namespace(body)
    # pods are rejected until the namespace's default ServiceAccount exists; wait so tests start clean
    wait_until(
        lambda: core.read_namespaced_service_account("default", name),
        timeout=30,
        what=f"serviceaccount {name}/default",
        ignore=(k8s.ApiException,),
    )
    try:
        yield name
    finally:
        with contextlib.suppress(k8s.ApiException):
            core.delete_namespace(name, propagation_policy="Background")


PrometheusFactory = Callable[..., Prometheus]
AlertmanagerFactory = Callable[..., Alertmanager]


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[PrometheusFactory]:
    """`prometheus_factory(scrape_targets=[...], rules=..., alertmanager_url=...)` -> started Prometheus."""
    started: list[Prometheus] = []

    def factory(**kwargs: Any) -> Prometheus:
        server = Prometheus(tmp_path / f"prometheus-{len(started)}", **kwargs)
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[AlertmanagerFactory]:
    """`alertmanager_factory(webhook_url=..., bearer_token=...)` -> started Alertmanager."""
    started: list[Alertmanager] = []

    def factory(**kwargs: Any) -> Alertmanager:
        server = Alertmanager(tmp_path / f"alertmanager-{len(started)}", **kwargs)
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        server.stop()


DemoWorkloadFactory = Callable[..., DemoWorkloadProcess]


@pytest.fixture
def demo_workload(kube_cluster: KubeCluster, tmp_path: Path) -> Iterator[DemoWorkloadFactory]:
    """`demo_workload(namespace, name="demo", image=..., replicas=2, min_replicas=2)` -> running handle.

    Creates the demo Deployment, then starts the local process that plays its pods; the handle
    has `.target` (host:port to scrape) and `.set_image(tag)`.
    """
    started: list[DemoWorkloadProcess] = []

    def factory(
        namespace: str,
        name: str = "demo",
        image: str = DEFAULT_IMAGE,
        replicas: int = 2,
        min_replicas: int = 2,
    ) -> DemoWorkloadProcess:
        create_demo_deployment(kube_cluster.api, namespace, name, image=image, replicas=replicas)
        handle = DemoWorkloadProcess(
            kubeconfig=kube_cluster.kubeconfig,
            namespace=namespace,
            deployment=name,
            log_path=tmp_path / f"demo-{namespace}-{name}.log",
            api=kube_cluster.api,
            min_replicas=min_replicas,
        )
        started.append(handle)
        return handle.start()

    yield factory
    for handle in started:
        handle.stop()


@pytest.fixture
def standins() -> Iterator[StandIns]:
    """Local stand-ins for PagerDuty, Slack, Twilio, Statuspage and webhooks, recording what they receive."""
    with StandIns() as servers:
        yield servers


@pytest.fixture
def smtp_standin() -> Iterator[SmtpStandIn]:
    """A real SMTP server on loopback (aiosmtpd) that keeps the messages it accepts."""
    with SmtpStandIn() as server:
        yield server


OperatorFactory = Callable[..., OperatorProcess]


@pytest.fixture
def operator_factory(kube_cluster: KubeCluster, tmp_path: Path) -> Iterator[OperatorFactory]:
    """`operator_factory(namespaces, env={...}, ready_timeout=60, port=None)` -> operator ready on /readyz.

    The handle has `.url`, `.port`, `.process`, `.kill()`, `.stop()` and `.logs()`. Calling the
    factory again after `.kill()` starts a fresh process (e.g. to test recovery from status).
    """
    started: list[OperatorProcess] = []

    def factory(
        namespaces: Sequence[str],
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 60.0,
        port: int | None = None,
    ) -> OperatorProcess:
        handle = OperatorProcess(
            kubeconfig=kube_cluster.kubeconfig,
            namespaces=namespaces,
            log_path=tmp_path / f"operator-{len(started)}.log",
            extra_env=env,
            port=port,
        )
        started.append(handle)
        try:
            return handle.start(ready_timeout=ready_timeout)
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)

    yield factory
    for handle in started:
        handle.stop()
