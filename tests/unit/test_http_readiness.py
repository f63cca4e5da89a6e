"""Ready when it is ready: until the start-up listing is done, /readyz and the webhooks answer 503 at once.

The app runs for real (aiohttp's test server); what stands in is the Kubernetes client (an empty
LIST) and the ingester (it records what it was asked to persist).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from incidentops.config import Config
from incidentops.handlers.http import Readiness, TokenSource, build_app
from incidentops.ingest.alerts import Alert
from localenv.payloads import am_alert, am_webhook


class EmptyKube:
    async def list(self, *args: Any, **kwargs: Any) -> list[Any]:
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
