"""The monitoring half of the loop, with real servers end to end.

A bad image on the demo Deployment raises the demo workload's error ratio; Prometheus scrapes
it, the rule fires, Alertmanager posts a version "4" webhook with a bearer token; switching the
image back resolves the alert and Alertmanager sends the resolved notification. The operator's
e2e tests build on exactly this chain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from localenv.demo_workload import DemoWorkloadProcess, error_ratio_rule
from localenv.monitoring import Alertmanager, Prometheus
from localenv.procs import free_port, wait_until_async

TOKEN = "s3cret-token"
ALERT = "DemoHighErrorRatio"
RULES = error_ratio_rule(ALERT, "demo")


@dataclass
class Delivery:
    """One webhook request as received."""

    authorization: str | None
    payload: dict[str, Any]


@dataclass
class WebhookReceiver:
    """A minimal HTTP endpoint standing in for the operator's Alertmanager webhook."""

    deliveries: list[Delivery] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    async def _handle(self, request: web.Request) -> web.Response:
        self.deliveries.append(Delivery(request.headers.get("Authorization"), await request.json()))
        return web.json_response({"ok": True})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def with_status(self, status: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.payload.get("status") == status]


async def test_bad_image_fires_and_recovery_resolves(
    namespace: str,
    demo_workload: Callable[..., DemoWorkloadProcess],
    prometheus_factory: Callable[..., Prometheus],
    alertmanager_factory: Callable[..., Alertmanager],
) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    try:
        demo = await asyncio.to_thread(demo_workload, namespace, "checkout")
        alertmanager = await asyncio.to_thread(alertmanager_factory, webhook_url=receiver.url, bearer_token=TOKEN)
        prometheus = await asyncio.to_thread(
            prometheus_factory, scrape_targets=[demo.target], rules=RULES, alertmanager_url=alertmanager.url
        )

        up = await asyncio.to_thread(
            prometheus.wait_for_value, f'up{{instance="{demo.target}"}}', lambda v: v == 1.0, 30.0
        )
        assert up == 1.0
        assert await asyncio.to_thread(prometheus.query, "demo_memory_leak_bytes")
        assert not receiver.deliveries

        await asyncio.to_thread(demo.set_image, "bad")
        firing = await asyncio.to_thread(prometheus.wait_for_alert, ALERT, "firing", 60.0)
        assert firing["labels"]["severity"] == "critical"

        await wait_until_async(lambda: receiver.with_status("firing"), timeout=30, what="firing webhook")
        delivery = receiver.with_status("firing")[0]
        assert delivery.authorization == f"Bearer {TOKEN}"
        assert delivery.payload["version"] == "4"
        assert delivery.payload["groupLabels"] == {"alertname": ALERT}
        (alert,) = delivery.payload["alerts"]
        assert alert["status"] == "firing"
        assert alert["labels"]["alertname"] == ALERT
        assert alert["labels"]["service"] == "demo"
        assert alert["annotations"]["summary"].startswith("demo error ratio is")
        assert alert["fingerprint"]

        await asyncio.to_thread(demo.set_image, "v1")
        await asyncio.to_thread(prometheus.wait_for_alert, ALERT, "inactive", 60.0)
        await wait_until_async(lambda: receiver.with_status("resolved"), timeout=30, what="resolved webhook")
        resolved = receiver.with_status("resolved")[0]
        assert resolved.authorization == f"Bearer {TOKEN}"
        assert resolved.payload["alerts"][0]["status"] == "resolved"
        assert resolved.payload["alerts"][0]["fingerprint"] == alert["fingerprint"]
    finally:
        await receiver.stop()
