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

from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.escalation import inbound
from incidentops.handlers.deps import Deps
from incidentops.ingest.alerts import Alert, from_alertmanager, from_event
from incidentops.ingest.openapi import ALERTMANAGER_PATH, EVENTS_PATH, Accepted, IncidentRef, Problem, document
from incidentops.ingest.payloads import Reading, Unreadable, read_alertmanager, read_events, sanitized
from incidentops.kube import KubeError, NotFound
from incidentops.logs import Throttle
from incidentops.metrics import (
    ALERTS_RECEIVED,
    ALERTS_REJECTED,
    WEBHOOK_SECONDS,
    exposition,
)

log = logging.getLogger(__name__)


class TokenSource:
    """The webhook bearer token: fixed, or read from a Secret and refreshed on a schedule."""

    def __init__(self, token: str = "", secret: str = "") -> None:
        self.token = token
        self.secret = secret  # namespace/name/key, when the token comes from a Secret

    def pending(self) -> str | None:
        """Why no token can be checked yet: its Secret is not read. A 401 then would lose the alerts
        (Alertmanager does not retry a 4xx); a 503 is retried."""
        if self.secret and not self.token:
            return "the webhook token is not loaded yet"  # no Secret name: anyone may call this
        return None

    def accepts(self, header: str | None) -> bool:
        if not self.token:
            return False
        scheme, _, given = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())


THROTTLE = Throttle()


def _problem(status: int, reason: str, message: str, retry_after: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    body = Problem(error=reason, message=message).model_dump(mode="json")
    return web.json_response(body, status=status, headers=headers)


def _reject(status: int, reason: str, message: str, endpoint: str, sender: str) -> web.Response:
    """Refuse the request, count it and say so in the log (a few lines per reason and minute)."""
    ALERTS_REJECTED.labels(reason).inc()
    THROTTLE.log(
        log, logging.WARNING, f"{endpoint}:{reason}", "refused %s webhook from %s with %d: %s",
        endpoint, sender, status, message,
    )  # fmt: skip
    return _problem(status, reason, message)


class Readiness:
    """Ready means Kopf has started, the start-up listing is done and Incidents could be listed recently.

    Once the start-up listing is done the webhooks ask only `starting()`, no apiserver call: under an alert
    storm the probe's LIST took longer than its timeout and every webhook answered 503 for five seconds.
    The ingester's own calls say when the apiserver is really away (503 all the same)."""

    def __init__(
        self,
        deps: Deps,
        kopf_started: Callable[[], bool],
        listed: Callable[[], bool] = lambda: True,
        ttl: float = 5.0,
        token_pending: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._deps = deps
        self._kopf_started = kopf_started
        self._listed = listed
        self._token_pending = token_pending
        self._ttl = ttl
        self._checked_at = -ttl
        self._reachable: str | None = None
        self._probing = asyncio.Lock()  # one probe at a time; the others use its answer

    def starting(self) -> str | None:
        """Why alerts cannot be taken yet (the start-up listing), else None. No API call."""
        if not self._listed():
            return "the operator is listing the incidents it watches (start-up)"
        return self._token_pending()

    async def problem(self) -> str | None:
        """None when ready, else what is missing (the apiserver first: it explains the rest)."""
        async with self._probing:
            if time.monotonic() - self._checked_at >= self._ttl:
                await self._probe()
        if self._reachable is not None:
            return self._reachable
        if not self._kopf_started():
            return "the operator is starting"
        return self.starting()

    async def _probe(self) -> None:
        home = self._deps.config.home_namespace
        try:
            await asyncio.wait_for(self._deps.kube.list(INCIDENT, home, limit=1), timeout=2.0)
            self._reachable = None
        except NotFound:
            self._reachable = f"cannot list Incidents in namespace {home}: are the CRDs installed (crds/)?"
        except (KubeError, TimeoutError) as error:
            self._reachable = f"the Kubernetes API is not reachable: {error or 'timeout'}"
        self._checked_at = time.monotonic()


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

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(openapi_document)

    def endpoint(
        name: str, read: Callable[[Any, Reading], list[Alert]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            started = time.perf_counter()
            try:
                return await _handle(request)
            except Exception:  # a bug must not take the server down; the sender retries a 500
                log.exception("internal error handling a %s webhook from %s", name, request.remote)
                return _problem(500, "internal", "internal error; the alerts were not recorded, retry")
            finally:
                WEBHOOK_SECONDS.labels(name).observe(time.perf_counter() - started)

        async def _handle(request: web.Request) -> web.Response:
            sender = request.remote or "unknown"
            if config.webhook_auth == "token" and (pending := tokens.pending()):
                THROTTLE.log(
                    log, logging.WARNING, f"{name}:token", "%s webhook from %s: 503, %s", name, sender, pending
                )
                return _problem(503, "not_ready", pending, retry_after=5)
            if config.webhook_auth == "token" and not tokens.accepts(request.headers.get("Authorization")):
                return _reject(401, "unauthorized", "missing or wrong bearer token", name, sender)
            if request.content_length is not None and request.content_length > config.max_body_bytes:
                text = f"body of {request.content_length} bytes exceeds {config.max_body_bytes}"
                return _reject(413, "too_large", text, name, sender)
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return _reject(413, "too_large", f"body exceeds {config.max_body_bytes} bytes", name, sender)
            try:
                data = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                return _reject(400, "invalid_json", f"body is not JSON: {error}", name, sender)
            reading = Reading()
            data = sanitized(data, reading)
            try:
                alerts = read(data, reading)
            except Unreadable as error:
                return _reject(400, "unreadable", str(error), name, sender)
            ALERTS_RECEIVED.labels(name).inc(len(alerts))
            if reading.rejected:
                ALERTS_REJECTED.labels("unreadable_entry").inc(len(reading.rejected))
                THROTTLE.log(
                    log, logging.WARNING, f"{name}:rejected", "%s webhook from %s: left out %d unreadable entries: %s",
                    name, sender, len(reading.rejected), "; ".join(reading.rejected[:3]),
                )  # fmt: skip
            if reading.warnings:
                THROTTLE.log(
                    log, logging.INFO, f"{name}:warnings", "%s webhook from %s: ignored fields: %s",
                    name, sender, "; ".join(reading.warnings[:3]),
                )  # fmt: skip
            # at start-up only, say why (the apiserver first); once listed, the alert path asks the apiserver nothing
            problem = await readiness.problem() if readiness.starting() else None
            if problem is not None:  # answer at once: Alertmanager retries, rather than wait behind the start-up
                return _problem(503, "not_ready", f"not ready, retry: {problem}", retry_after=RETRY_AFTER)
            try:
                persisted = await deps.ingestor.ingest(alerts)
            except KubeError as error:
                THROTTLE.log(
                    log, logging.WARNING, f"{name}:unavailable", "could not persist %d alerts from %s: %s",
                    len(alerts), sender, error,
                )  # fmt: skip
                return _problem(503, "unavailable", f"could not persist the alerts, retry: {error}", RETRY_AFTER)
            incidents = sorted({(p.namespace, p.incident, p.created) for p in persisted if p.incident})
            answer = Accepted(
                alerts=len(alerts),
                incidents=[IncidentRef(namespace=n, name=i, created=c) for n, i, c in incidents],
                warnings=reading.warnings,
                rejected=reading.rejected,
            )
            return web.json_response(answer.model_dump(mode="json"))

        return handle

    def read_alertmanager_alerts(data: Any, reading: Reading) -> list[Alert]:
        envelope, alerts = read_alertmanager(data, reading)
        return from_alertmanager(envelope, alerts, config, deps.clock(), reading.warn)

    def read_event_alerts(data: Any, reading: Reading) -> list[Alert]:
        events = read_events(data, reading)
        batch = isinstance(data, dict) and "events" in data
        return [
            from_event(e, config, reading.warn, f"events[alert_id={e.alert_id[:40]}]" if batch else "body")
            for e in events
        ]

    openapi_document = document()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_post(ALERTMANAGER_PATH, endpoint("alertmanager", read_alertmanager_alerts))
    app.router.add_post(EVENTS_PATH, endpoint("events", read_event_alerts))
    app.router.add_post(PAGERDUTY_PATH, pagerduty_webhook(deps))
    return app


PAGERDUTY_PATH = "/api/v1/pagerduty"
RETRY_AFTER = 5  # seconds a sender is asked to wait on a 503


def pagerduty_webhook(deps: Deps) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Acknowledge or resolve an Incident from PagerDuty (v3 webhook, signature verified)."""

    async def handle(request: web.Request) -> web.Response:
        sender = request.remote or "unknown"
        body = await request.content.read(deps.config.max_body_bytes + 1)
        if len(body) > deps.config.max_body_bytes:
            return _reject(413, "too_large", "the body is larger than the configured limit", "pagerduty", sender)
        try:
            inbound.verify(await pagerduty_secret(deps), body, request.headers.get("X-PagerDuty-Signature"))
            intent = inbound.read(body)
        except inbound.Refused as refused:
            return _reject(refused.status, refused.reason, str(refused), "pagerduty", sender)
        if intent.action is None:
            return web.json_response({"ignored": intent.event_type}, status=202)
        try:
            obj = await deps.kube.get(INCIDENT, intent.namespace, intent.name)
        except NotFound:
            return _reject(
                404,
                "unknown_incident",
                f"incident {intent.namespace}/{intent.name} does not exist",
                "pagerduty",
                sender,
            )
        except KubeError as error:
            return _problem(503, "unavailable", f"cannot read the incident: {error}")
        try:
            answer = inbound.decide(intent, obj)
        except inbound.Refused as refused:
            return _reject(refused.status, refused.reason, str(refused), "pagerduty", sender)
        if answer.patch is not None:
            try:
                await deps.kube.patch_spec(INCIDENT, intent.namespace, intent.name, answer.patch)
            except KubeError as error:
                return _problem(503, "unavailable", f"cannot update the incident: {error}")
            log.info("incident %s/%s: %s from PagerDuty by %s", intent.namespace, intent.name, intent.action, intent.by)
        return web.json_response(answer.body, status=answer.status)

    return handle


async def pagerduty_secret(deps: Deps) -> str:
    config = deps.config
    if config.pagerduty_webhook_secret:
        return config.pagerduty_webhook_secret
    if not config.pagerduty_webhook_secret_ref:
        return ""
    namespace, name, key = config.pagerduty_webhook_secret_ref.split("/")
    try:
        return (await deps.kube.secret_value(namespace, name, key) or "").strip()
    except KubeError as error:
        log.error("cannot read the PagerDuty webhook secret %s: %s", config.pagerduty_webhook_secret_ref, error)
        return ""


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("HTTP server listening on %s:%d", host, port)
    return runner


async def refresh_token(deps: Deps, tokens: TokenSource, interval: float = 60.0, first: float = 2.0) -> None:
    """Keep the token in step with its Secret, so rotating the Secret needs no restart. Until it is first
    read (a RoleBinding not yet in force, an apiserver blip) it is tried again every `first` seconds: the
    webhooks answer 503 meanwhile."""
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
        await asyncio.sleep(interval if tokens.token else first)
