"""prometheus.py and the actions that leave the cluster: promql-check against the real Prometheus,
http against a local service (the runbook's cache-clear endpoint stands for any such service)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from incidentops.api.v1alpha1.runbook import Action
from incidentops.config import Config
from incidentops.prometheus import Prometheus, PrometheusError
from incidentops.remediation.actions import REGISTRY
from incidentops.remediation.actions.base import ActionError, Context, Target
from localenv.monitoring import Prometheus as PrometheusServer

STEP = Target("shop", "check", kind="Step")


def test_queries_answers_refusals_and_outages_are_told_apart(
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    server = prometheus_factory(scrape_targets=[])
    server.wait_for_value("vector(1)", lambda v: v == 1.0, 30)
    client = Prometheus(server.url, timeout=5)
    [series] = client.query('label_replace(vector(3), "job", "demo", "", "")')
    assert series.labels == {"job": "demo"} and series.value == 3.0
    with pytest.raises(PrometheusError) as refused:
        client.query("sum(rate(x[1m]) >")
    assert not refused.value.unreachable and "parse error" in str(refused.value)

    context = Context(incident="shop/inc", prometheus=client)
    check = REGISTRY[Action.PROMQL_CHECK]
    empty = check.plan(None, STEP, {"query": "vector(1) > 5"}, "k", context)  # type: ignore[arg-type]
    assert check.happened(None, empty, "k")  # type: ignore[arg-type]
    wants_series = check.plan(None, STEP, {"query": "vector(1) > 5", "passWhen": "series"}, "k", context)  # type: ignore[arg-type]
    assert not check.happened(None, wants_series, "k")  # type: ignore[arg-type]
    broken = check.plan(None, STEP, {"query": "sum(rate(x[1m]) >"}, "k", context)  # type: ignore[arg-type]
    with pytest.raises(ActionError, match="parse error"):
        check.happened(None, broken, "k")  # type: ignore[arg-type]

    server.stop()
    with pytest.raises(PrometheusError) as down:
        client.query("vector(1)")
    assert down.value.unreachable
    assert not check.happened(None, empty, "k")  # type: ignore[arg-type]  # down is "not yet", never "clear"


class _Service(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def _answer(self) -> None:
        _Service.seen.append({"path": self.path, "method": self.command, "key": self.headers.get("Idempotency-Key")})
        routes = {
            "/clear": (200, {}),
            "/fail": (503, {}),
            "/moved": (302, {"Location": "/clear"}),
            "/away": (302, {"Location": "http://127.0.0.2:9/steal"}),
            "/config": (200, {}),
        }
        code, headers = routes.get(self.path, (404, {}))
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        body = b"cache cleared" if code == 200 else b"no"
        if self.path == "/config":
            body = b"global:\n  smtp_auth_password: hunter2\n" + b"route: {receiver: x}\n" * 200
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Service.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _allowing(service: str) -> Context:
    """The settings that let http steps call the local service (loopback is reached only when named)."""
    allow = service.split("//", 1)[1]
    return Context(incident="shop/inc", egress=Config(http_allow=[allow]).runbook_egress())


def test_http_calls_expect_a_status_follow_only_same_host_redirects_and_send_the_key(service: str) -> None:
    call = REGISTRY[Action.HTTP]
    context = _allowing(service)
    plan = call.plan(None, STEP, {"url": f"{service}/moved", "method": "POST"}, "uid/clear/1", context)  # type: ignore[arg-type]
    assert plan.diff == [f"POST {service}/moved (address allowed, 127.0.0.1)"]
    output = call.apply(None, plan)  # type: ignore[arg-type]
    assert output is not None and "answered 200: cache cleared" in output
    assert [s["path"] for s in _Service.seen] == ["/moved", "/clear"]
    assert {s["key"] for s in _Service.seen} == {"uid/clear/1"}
    away = call.plan(None, STEP, {"url": f"{service}/away"}, "k", context)  # type: ignore[arg-type]
    with pytest.raises(ActionError, match="another host"):
        call.apply(None, away)  # type: ignore[arg-type]
    failing = call.plan(None, STEP, {"url": f"{service}/fail"}, "k", context)  # type: ignore[arg-type]
    with pytest.raises(ActionError, match="answered 503"):
        call.apply(None, failing)  # type: ignore[arg-type]
    expected = call.plan(None, STEP, {"url": f"{service}/clear", "expectStatus": 204}, "k", context)  # type: ignore[arg-type]
    with pytest.raises(ActionError, match="expected 204"):
        call.apply(None, expected)  # type: ignore[arg-type]


def test_http_steps_reach_nothing_the_settings_do_not_allow_and_record_only_an_excerpt(service: str) -> None:
    call = REGISTRY[Action.HTTP]
    unlisted = Context(incident="shop/inc", egress=Config().runbook_egress())
    refused = call.plan(None, STEP, {"url": f"{service}/clear"}, "k", unlisted)  # type: ignore[arg-type]
    assert refused.refusal == "ProtectedDestination" and "loopback" in refused.reason
    metadata = call.plan(None, STEP, {"url": "http://169.254.169.254/latest/meta-data/"}, "k", unlisted)  # type: ignore[arg-type]
    assert metadata.refusal == "ProtectedDestination" and "link-local" in metadata.reason
    assert _Service.seen == []  # neither reached the service

    plan = call.plan(None, STEP, {"url": f"{service}/config"}, "k", _allowing(service))  # type: ignore[arg-type]
    output = call.apply(None, plan)  # type: ignore[arg-type]
    assert output is not None and output.startswith(f"GET {service}/config answered 200: ")
    assert "hunter2" not in output and len(output) < 300  # a short, redacted excerpt, not the configuration
