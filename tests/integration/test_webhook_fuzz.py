"""Schemathesis against the real operator on the real cluster, from the OpenAPI document it serves.

The document is built in-process (schemathesis parametrizes at import, before any operator
runs); the last test checks that /openapi.json serves exactly that document.

Bodies are generated from /openapi.json in both modes: conforming bodies (with every optional
field, unicode, huge values) and bodies that break the document (wrong types, missing fields).
Expected: never a 5xx; answers as documented; a readable body is answered 200, and every
readable firing alert opened or joined an Incident that exists in the cluster afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from kubernetes import client as k8s
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from incidentops.config import load
from incidentops.ingest.alerts import from_alertmanager, from_event
from incidentops.ingest.openapi import ALERTMANAGER_PATH, document
from incidentops.ingest.payloads import Reading, Unreadable, read_alertmanager, read_events
from localenv.controlplane import KubeCluster
from localenv.names import namespace_for_test
from localenv.operator_process import OperatorProcess

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES_PER_ENDPOINT = 600
CONFIG = load({"INCIDENTOPS_WEBHOOK_AUTH": "none"})

schema = schemathesis.openapi.from_dict(document())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=EXAMPLES_PER_ENDPOINT,
    deterministic=True,
    with_security_parameters=False,  # authentication has its own tests; here every body is let in
)
touched: dict[str, set[str]] = {}
answered: dict[str, int] = {}


@pytest.fixture(scope="module")
def fuzz_operator(
    kube_cluster: KubeCluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    core = k8s.CoreV1Api(kube_cluster.api)
    namespace = namespace_for_test("webhook-fuzz")
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    log_dir: Path = tmp_path_factory.mktemp("fuzz")
    operator = OperatorProcess(
        kubeconfig=kube_cluster.kubeconfig,
        namespaces=[namespace],
        log_path=log_dir / "operator.log",
        extra_env={"INCIDENTOPS_WEBHOOK_TOKEN": TOKEN},
    ).start()
    try:
        yield operator
    finally:
        operator.stop()
        with contextlib.suppress(k8s.ApiException):
            core.delete_namespace(namespace, propagation_policy="Background")


def _readable_firing(path: str, body: Any) -> bool | None:
    """Whether the body holds a firing alert as the operator reads it; None when it cannot be read."""
    try:
        if path == ALERTMANAGER_PATH:
            envelope, alerts = read_alertmanager(body, Reading())
            return any(a.firing for a in from_alertmanager(envelope, alerts, CONFIG, datetime.now(UTC)))
        return any(from_event(e, CONFIG).firing for e in read_events(body, Reading()))
    except Unreadable:
        return None


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_bodies_never_fail_the_server_and_every_readable_alert_lands(case: Any, fuzz_operator: Any) -> None:
    response = case.call_and_validate(
        base_url=fuzz_operator.url,
        headers=AUTH,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        excluded_checks=[],
        timeout=60,
    )
    if case.method.upper() != "POST":
        assert response.status_code == 405  # only POST is served on the webhook paths
        return
    answered[case.path] = answered.get(case.path, 0) + 1
    readable = _readable_firing(case.path, case.body) if isinstance(case.body, dict | list) else None
    if response.status_code == 400:
        assert readable is None, f"a readable body was refused: {response.text}"
        return
    assert response.status_code == 200, response.text
    answer = response.json()
    names = {f"{i['namespace']}/{i['name']}" for i in answer["incidents"]}
    if readable:
        assert names, f"a firing alert opened or joined no incident: {case.body!r:.500} -> {answer}"
    touched.setdefault(case.path, set()).update(names)


def test_every_incident_the_fuzzing_reported_exists(kube_cluster: KubeCluster, fuzz_operator: Any) -> None:
    """Runs after the generated cases (file order): what the answers named is in the apiserver, with status."""
    assert sum(answered.values()) >= 2 * 400, answered  # the suite really sent its bodies
    api = k8s.CustomObjectsApi(kube_cluster.api)
    names = set().union(*touched.values())
    print(f"\nfuzzed: {answered} bodies answered, {len(names)} incidents opened or joined")
    assert names, "the fuzzing opened no incident at all"
    for qualified in names:
        namespace, name = qualified.split("/")
        obj = api.get_namespaced_custom_object("incidentops.dev", "v1alpha1", namespace, "incidents", name)
        assert obj.get("status", {}).get("state"), f"{qualified} has no status"
    assert httpx.get(f"{fuzz_operator.url}/healthz").status_code == 200
    assert httpx.get(f"{fuzz_operator.url}/openapi.json").json() == document()  # what was fuzzed is what it serves
    assert "Traceback" not in fuzz_operator.logs()
