"""Ready when it is ready: until the start-up listing is done, /readyz and the webhooks answer 503 at once.

The app runs for real (aiohttp's test server); what stands in is the Kubernetes client (an empty
LIST) and the ingester (it records what it was asked to persist).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from incidentops.config import Config
from incidentops.handlers.http import Readiness, TokenSource, build_app
from incidentops.ingest.alerts import Alert
from localenv.payloads import am_alert, am_webhook


class EmptyKube:
    def __init__(self) -> None:
        self.lists = 0

    async def list(self, *args: Any, **kwargs: Any) -> list[Any]:
        self.lists += 1
        return []


@dataclass
class RecordingIngestor:
    batches: list[list[Alert]] = field(default_factory=list)

    async def ingest(self, alerts: list[Alert]) -> list[Any]:
        self.batches.append(alerts)
        return []


@dataclass
class FakeDeps:
    config: Config
    kube: Any
    ingestor: Any

    @staticmethod
    def clock() -> Any:
        from datetime import UTC, datetime  # noqa: PLC0415

        return datetime.now(UTC)


async def test_webhooks_answer_503_with_retry_after_until_the_start_up_listing_is_done() -> None:
    listed = False
    ingestor = RecordingIngestor()
    deps = FakeDeps(Config(webhook_auth="none"), EmptyKube(), ingestor)
    app = build_app(deps, TokenSource(""), Readiness(deps, lambda: True, lambda: listed))  # type: ignore[arg-type]
    body = am_webhook([am_alert({"alertname": "Down", "service": "api", "severity": "critical"})])
    async with TestClient(TestServer(app)) as client:
        ready = await client.get("/readyz")
        assert ready.status == 503 and "listing the incidents" in await ready.text()
        early = await client.post("/api/v1/alertmanager", json=body)
        assert early.status == 503 and early.headers["Retry-After"] == "5"
        assert (await early.json())["error"] == "not_ready" and ingestor.batches == []  # nothing half-taken
        listed = True
        assert (await client.get("/readyz")).status == 200
        taken = await client.post("/api/v1/alertmanager", json=body)
        assert taken.status == 200 and len(ingestor.batches) == 1 and ingestor.batches[0][0].name == "Down"


async def test_alerts_never_wait_on_a_probe_and_readiness_probes_once_at_a_time() -> None:
    """Under a storm, a probe LIST per webhook request was a thundering herd (and 503s when it was slow)."""
    kube = EmptyKube()
    deps = FakeDeps(Config(webhook_auth="none"), kube, RecordingIngestor())
    readiness = Readiness(deps, lambda: True, lambda: True)  # type: ignore[arg-type]
    app = build_app(deps, TokenSource(""), readiness)  # type: ignore[arg-type]
    body = am_webhook([am_alert({"alertname": "Down", "service": "api", "severity": "critical"})])
    async with TestClient(TestServer(app)) as client:
        answers = await asyncio.gather(*(client.post("/api/v1/alertmanager", json=body) for _ in range(20)))
        assert {a.status for a in answers} == {200} and kube.lists == 0
        ready = await asyncio.gather(*(client.get("/readyz") for _ in range(20)))
        assert {r.status for r in ready} == {200} and kube.lists == 1


async def test_a_token_still_being_read_from_its_secret_answers_503_not_401() -> None:
    """A 401 is final for Alertmanager: alerts sent while the token's Secret is being read would be lost."""
    ingestor = RecordingIngestor()
    deps = FakeDeps(Config(webhook_token_secret="ops/webhook/token"), EmptyKube(), ingestor)
    tokens = TokenSource("", "ops/webhook/token")
    readiness = Readiness(deps, lambda: True, lambda: True, token_pending=tokens.pending)  # type: ignore[arg-type]
    app = build_app(deps, tokens, readiness)  # type: ignore[arg-type]
    body = am_webhook([am_alert({"alertname": "Down", "service": "api", "severity": "critical"})])
    auth = {"Authorization": "Bearer t0ken-from-the-secret"}
    async with TestClient(TestServer(app)) as client:
        not_ready = await client.get("/readyz")
        assert not_ready.status == 503 and "webhook token" in await not_ready.text()
        early = await client.post("/api/v1/alertmanager", json=body, headers=auth)
        assert early.status == 503 and early.headers["Retry-After"] == "5"
        message = (await early.json())["message"]
        assert "not loaded yet" in message and "ops" not in message and ingestor.batches == []  # names no Secret
        tokens.token = "t0ken-from-the-secret"
        assert (await client.get("/readyz")).status == 200
        assert (await client.post("/api/v1/alertmanager", json=body, headers=auth)).status == 200
        wrong = await client.post("/api/v1/alertmanager", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401 and len(ingestor.batches) == 1
