"""The operator's HTTP surface: ingestion webhooks, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.handlers.deps import Deps
from incidentops.ingest.alerts import Alert, from_alertmanager, from_event
from incidentops.ingest.payloads import AlertmanagerWebhook, Event, EventBatch
from incidentops.kube import KubeError, NotFound
from incidentops.metrics import ALERTS_RECEIVED, ALERTS_REJECTED, WEBHOOK_SECONDS, exposition

log = logging.getLogger(__name__)
MAX_REPORTED_ERRORS = 5


class TokenSource:
    """The webhook bearer token: fixed, or read from a Secret and refreshed on a schedule."""

    def __init__(self, token: str = "") -> None:
        self.token = token

    def accepts(self, header: str | None) -> bool:
        if not self.token:
            return False
        scheme, _, given = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())


def _reject(status: int, reason: str, message: str) -> web.Response:
    ALERTS_REJECTED.labels(reason).inc()
    return web.json_response({"error": reason, "message": message}, status=status)


def _schema_message(error: ValidationError) -> str:
    problems = []
    for item in error.errors()[:MAX_REPORTED_ERRORS]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        problems.append(f"{where}: {item['msg']}")
    more = error.error_count() - len(problems)
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


class Readiness:
    """Ready means Kopf has started and Incidents could be listed recently: webhooks can be persisted."""

    def __init__(self, deps: Deps, kopf_started: Callable[[], bool], ttl: float = 5.0) -> None:
        self._deps = deps
        self._kopf_started = kopf_started
        self._ttl = ttl
        self._checked_at = -ttl
        self._reachable: str | None = None

    async def problem(self) -> str | None:
        """None when ready, else what is missing."""
        if not self._kopf_started():
            return "the operator is starting"
        if time.monotonic() - self._checked_at >= self._ttl:
            home = self._deps.config.home_namespace
            try:
                await asyncio.wait_for(self._deps.kube.list(INCIDENT, home, limit=1), timeout=2.0)
                self._reachable = None
            except NotFound:
                self._reachable = f"cannot list Incidents in namespace {home}: are the CRDs installed (crds/)?"
            except (KubeError, TimeoutError) as error:
                self._reachable = f"the Kubernetes API is not reachable: {error or 'timeout'}"
            self._checked_at = time.monotonic()
        return self._reachable


def build_app(deps: Deps, tokens: TokenSource, readiness: Readiness) -> web.Application:
    """The aiohttp application; bodies above the configured limit are refused with 413."""
    config = deps.config
    app = web.Application(client_max_size=config.max_body_bytes)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        problem = await readiness.problem()
        if problem is None:
            return web.Response(text="ready\n")
        return web.Response(text=f"not ready: {problem}\n", status=503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=exposition(), content_type="text/plain", charset="utf-8")

    def endpoint(
        name: str, model: Callable[[Any], BaseModel], convert: Callable[[Any], list[Alert]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            started = time.perf_counter()
            try:
                return await _handle(request)
            finally:
                WEBHOOK_SECONDS.labels(name).observe(time.perf_counter() - started)

        async def _handle(request: web.Request) -> web.Response:
            if config.webhook_auth == "token" and not tokens.accepts(request.headers.get("Authorization")):
                return _reject(401, "unauthorized", "missing or wrong bearer token")
            if request.content_length is not None and request.content_length > config.max_body_bytes:
                return _reject(
                    413,
                    "too_large",
                    f"body of {request.content_length} bytes exceeds {config.max_body_bytes}",
                )
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return _reject(413, "too_large", f"body exceeds {config.max_body_bytes} bytes")
            try:
                data = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                return _reject(400, "invalid_json", f"body is not JSON: {error}")
            try:
                payload = model(data)
            except ValidationError as error:
                return _reject(400, "invalid_schema", _schema_message(error))
            alerts = convert(payload)
            ALERTS_RECEIVED.labels(name).inc(len(alerts))
            try:
                persisted = await deps.ingestor.ingest(alerts)
            except KubeError as error:
                log.warning("could not persist %d alerts: %s", len(alerts), error)
                return web.json_response(
                    {"error": "unavailable", "message": f"could not persist the alerts, retry: {error}"},
                    status=503,
                )
            incidents = sorted({(p.namespace, p.incident, p.created) for p in persisted if p.incident})
            return web.json_response(
                {
                    "alerts": len(alerts),
                    "incidents": [{"namespace": n, "name": i, "created": c} for n, i, c in incidents],
                }
            )

        return handle

    def parse_events(data: Any) -> BaseModel:
        if isinstance(data, dict) and "events" in data:
            return EventBatch.model_validate(data)
        return Event.model_validate(data)

    def convert_events(payload: Any) -> list[Alert]:
        events = payload.events if isinstance(payload, EventBatch) else [payload]
        return [from_event(e, config) for e in events]

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post(
        "/api/v1/alertmanager",
        endpoint(
            "alertmanager",
            AlertmanagerWebhook.model_validate,
            lambda p: from_alertmanager(p, config),
        ),
    )
    app.router.add_post("/api/v1/events", endpoint("events", parse_events, convert_events))
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("HTTP server listening on %s:%d", host, port)
    return runner


async def refresh_token(deps: Deps, tokens: TokenSource, interval: float = 60.0) -> None:
    """Keep the token in step with its Secret, so rotating the Secret needs no restart."""
    namespace, name, key = deps.config.webhook_token_secret.split("/")
    while True:
        try:
            value = await deps.kube.secret_value(namespace, name, key)
            if value is None:
                log.error("Secret %s/%s has no key %r: webhooks will be refused", namespace, name, key)
            elif value.strip() != tokens.token:
                tokens.token = value.strip()
                log.info("webhook token loaded from Secret %s/%s", namespace, name)
        except KubeError as error:
            log.error("cannot read webhook token Secret %s/%s: %s", namespace, name, error)
        await asyncio.sleep(interval)
