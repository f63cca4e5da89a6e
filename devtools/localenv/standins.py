"""Local stand-ins for the notification services the operator pages through.

Slack, PagerDuty, Twilio, Statuspage and the receivers of generic webhooks are unreachable from CI
and from the demo machine, so tests and `make demo` point the operator at these small servers
instead. `StandIns` is one aiohttp application that speaks each service's documented wire format
under its own path prefix (closely enough that a client written against the real API works
unchanged), records every request, and can be told to answer with faults (429, 5xx) so retries
and back-off are exercised for real. `SmtpStandIn` is a real SMTP server (aiosmtpd) that keeps
the mail it accepts.

Both run their own event loop in a daemon thread, so synchronous pytest fixtures can use them.
`python -m localenv.standins --port 8125 --smtp-port 8126` runs both in the foreground and
prints one line per request, which is what the demo shows a newcomer.

Control API (not recorded), for processes that cannot use the Python API:

- `GET /_standins/requests?service=NAME`: the recorded requests as JSON.
- `DELETE /_standins/requests`: forget them.
- `POST /_standins/faults` with `{"service": "slack", "status": 429, "times": 2, "retry_after": 1}`:
  the next `times` requests to that service (`-1`: all of them) answer `status`.
- `DELETE /_standins/faults`: answer normally again.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import email.policy
import http
import json
import secrets
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import EmailPolicy
from email.utils import format_datetime
from types import FrameType
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl

from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

T = TypeVar("T")

SERVICES: tuple[str, ...] = ("pagerduty", "slack", "twilio", "statuspage", "webhook")
"""The services `StandIns` speaks for; each one is served under `/<service>/`."""

DEFAULT_PORT = 8125
STARTUP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Received:
    """One request a stand-in received, kept so tests can assert on what the operator really sent.

    `headers` has lower-cased names. `json` is the parsed body when it is JSON (for a Slack
    webhook also the JSON inside a form `payload` field), `form` the fields of a form-encoded
    body. `status` and `response` (its body) are what the stand-in answered, so a test can see a
    generated id; `faulted` says that answer was an injected fault rather than the service's
    normal behaviour. `at` is wall-clock time (`time.time()`).
    """

    service: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any | None
    form: dict[str, str] | None
    status: int
    at: float
    faulted: bool = False
    response: bytes = b""

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced), for messages and the control API."""
        return self.body.decode("utf-8", errors="replace")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form, as the control API returns it."""
        return {
            "service": self.service,
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": self.text,
            "json": self.json,
            "form": self.form,
            "status": self.status,
            "at": self.at,
            "faulted": self.faulted,
            "response": self.response.decode("utf-8", errors="replace"),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Received:
        """A request as the control API returned it (another process's stand-ins)."""
        return cls(
            service=str(data["service"]),
            method=str(data["method"]),
            path=str(data["path"]),
            headers=dict(data.get("headers") or {}),
            body=str(data.get("body") or "").encode(),
            json=data.get("json"),
            form=data.get("form"),
            status=int(data["status"]),
            at=float(data["at"]),
            faulted=bool(data.get("faulted")),
            response=str(data.get("response") or "").encode(),
        )

    def response_json(self) -> Any | None:
        """The answer parsed as JSON, or None when it is not JSON (Slack's `ok`, plain-text errors)."""
        try:
            return json.loads(self.response)
        except ValueError:
            return None


@dataclass
class _Fault:
    status: int
    remaining: int  # -1: forever
    retry_after: float | None


def _check_service(service: str) -> None:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")


def _check_fault(status: int, times: int) -> None:
    if not 400 <= status <= 599:
        raise ValueError(f"fault status must be a 4xx or 5xx code, not {status}")
    if times != -1 and times < 1:
        raise ValueError(f"times must be -1 (forever) or at least 1, not {times}")


def _retry_after_header(retry_after: float) -> str:
    return str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class _LoopThread:
    """An asyncio event loop in a daemon thread, so synchronous code (pytest fixtures) can host async servers."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        # The thread inherits a mask blocking SIGINT/SIGTERM, so the kernel delivers them to the main
        # thread: one blocked in a lock (the CLI waiting for Ctrl-C) then wakes at once.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            self._thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = STARTUP_TIMEOUT) -> T:
        """Run `coro` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        """Cancel what is still running (open connections), stop the loop and join the thread."""
        with contextlib.suppress(Exception):
            self.run(self._cancel_tasks())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STARTUP_TIMEOUT)

    @staticmethod
    async def _cancel_tasks() -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- wire formats -------------------------------------------------------------------------------------------------

PD_ACTIONS = ("trigger", "acknowledge", "resolve")
PD_SEVERITIES = ("critical", "error", "warning", "info")
STATUSPAGE_STATUSES = ("investigating", "identified", "monitoring", "resolved")
STATUSPAGE_COMPONENT_STATUSES = (
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
)


def pagerduty_errors(event: Any) -> list[str]:
    """What PagerDuty's Events API v2 would reject in `event` (empty when it is valid)."""
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors: list[str] = []
    routing_key = event.get("routing_key")
    if not isinstance(routing_key, str) or not routing_key.strip():
        errors.append("'routing_key' is missing or blank")
    action = event.get("event_action")
    if action not in PD_ACTIONS:
        errors.append("'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')")
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    elif action in ("acknowledge", "resolve") and not dedup_key:
        errors.append("'dedup_key' is missing or blank")
    if action == "trigger":
        errors.extend(_pagerduty_payload_errors(event.get("payload")))
    for name in ("links", "images"):
        if name in event and not isinstance(event[name], list):
            errors.append(f"'{name}' must be an array")
    return errors


def _pagerduty_payload_errors(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or is not an object"]
    errors: list[str] = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > 1024:
        errors.append("'payload.summary' is too long (must be at most 1024 characters)")
    source = payload.get("source")
    if not isinstance(source, str) or not source.strip():
        errors.append("'payload.source' is missing or blank")
    if payload.get("severity") not in PD_SEVERITIES:
        errors.append(
            "'payload.severity' is invalid (must be one of the following: 'critical', 'warning', 'error' or 'info')"
        )
    timestamp = payload.get("timestamp")
    if timestamp is not None:
        try:
            datetime.fromisoformat(str(timestamp))
        except ValueError:
            errors.append("'payload.timestamp' must be an ISO 8601 timestamp")
    for name in ("component", "group", "class"):
        if name in payload and not isinstance(payload[name], str):
            errors.append(f"'payload.{name}' must be a string")
    return errors


def _fault_response(service: str, path: str, fault: _Fault) -> web.Response:
    """A plausible answer of `service` with `fault.status`, as the real service words it."""
    status = fault.status
    headers = {} if fault.retry_after is None else {"Retry-After": _retry_after_header(fault.retry_after)}
    if status == 429:
        if service == "slack" and path.startswith("/slack/api/"):
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers=headers)
        if service == "slack":
            return web.Response(text="rate_limited", status=429, headers=headers)
        if service == "pagerduty":
            body: dict[str, Any] = {
                "status": "throttle event",
                "message": "Requests for this service are arriving too quickly.  Please retry later.",
            }
            return web.json_response(body, status=429, headers=headers)
        if service == "twilio":
            body = {
                "code": 20429,
                "message": "Too Many Requests",
                "more_info": "https://www.twilio.com/docs/errors/20429",
                "status": 429,
            }
            return web.json_response(body, status=429, headers=headers)
        if service == "statuspage":
            return web.json_response({"error": "Rate limit exceeded"}, status=429, headers=headers)
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return web.Response(text=f"{status} {phrase}", status=status, headers=headers)


# --- the HTTP stand-ins -----------------------------------------------------------------------------------------


@dataclass
class _Incoming:
    request: web.Request
    body: bytes
    json: Any | None
    form: dict[str, str] | None


_Handler = Callable[[_Incoming], Coroutine[Any, Any, web.Response]]


@dataclass
class _StatuspageIncident:
    data: dict[str, Any]
    page_id: str


@dataclass
class _State:
    """Everything the loop thread and test threads share; guarded by `cond`."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    requests: list[Received] = field(default_factory=list)
    faults: dict[str, _Fault] = field(default_factory=dict)
    incidents: dict[str, _StatuspageIncident] = field(default_factory=dict)
    last_slack_ts_us: int = 0


class StandIns:
    """The HTTP stand-ins for PagerDuty, Slack, Twilio, Statuspage and generic webhooks, in one server.

    Base URLs to configure the operator with (see `base()`): PagerDuty Events API `base("pagerduty")`
    (events go to `/v2/enqueue`), Slack incoming webhooks `base("slack") + "/services/T/B/X"`, the
    Slack Web API `base("slack") + "/api"`, Twilio `base("twilio")` (`/2010-04-01/Accounts/...`),
    Statuspage `base("statuspage")` (`/v1/pages/...`) and webhooks `base("webhook") + "/anything"`.
    `on_receive` is called (on the server's thread) with every recorded request.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        on_receive: Callable[[Received], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._on_receive = on_receive
        self._state = _State()
        self._thread: _LoopThread | None = None
        self._runner: web.AppRunner | None = None

    # lifecycle

    def start(self) -> None:
        """Bind and serve in a daemon thread; `port` is the bound port afterwards."""
        if self._thread is not None:
            raise RuntimeError("stand-ins already started")
        thread = _LoopThread(f"standins-http-{self.port}")
        thread.start()
        try:
            self._runner = thread.run(self._serve())
        except BaseException:
            thread.stop()
            raise
        self._thread = thread

    async def _serve(self) -> web.AppRunner:
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = int(runner.addresses[0][1])
        return runner

    def stop(self) -> None:
        """Close the server and end its thread (idempotent)."""
        thread, runner = self._thread, self._runner
        self._thread = self._runner = None
        if thread is None:
            return
        if runner is not None:
            with contextlib.suppress(Exception):
                thread.run(runner.cleanup())
        thread.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # addresses

    @property
    def allow(self) -> str:
        """The egress allow-list entry that lets the operator call the stand-ins (INCIDENTOPS_NOTIFY_ALLOW)."""
        host = self.url.split("//", 1)[1].rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The server's root URL, e.g. `http://127.0.0.1:8125`."""
        if self._thread is None and self.port == 0:
            raise RuntimeError("stand-ins not started: the port is not known yet")
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def base(self, service: str) -> str:
        """The base URL the operator should use for `service`, e.g. `base("pagerduty")` -> `<url>/pagerduty`."""
        _check_service(service)
        return f"{self.url}/{service}"

    # recorded requests and faults

    def received(self, service: str | None = None) -> list[Received]:
        """A snapshot of the requests received so far (all services, or one), oldest first."""
        if service is not None:
            _check_service(service)
        with self._state.cond:
            return [r for r in self._state.requests if service is None or r.service == service]

    def wait_for(
        self,
        service: str,
        count: int,
        timeout: float = 10.0,
        where: Callable[[Received], bool] | None = None,
    ) -> list[Received]:
        """Block until `count` requests to `service` (matching `where`) were received, and return all that match.

        Faulted requests count too; pass `where=lambda r: not r.faulted` to wait for deliveries.
        Raises AssertionError listing what did arrive when the timeout passes first.
        """
        _check_service(service)
        deadline = time.monotonic() + timeout
        with self._state.cond:
            while True:
                found = [r for r in self._state.requests if r.service == service and (where is None or where(r))]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(self._timeout_message(service, count, timeout, where, found))
                self._state.cond.wait(remaining)

    def _timeout_message(
        self,
        service: str,
        count: int,
        timeout: float,
        where: Callable[[Received], bool] | None,
        found: list[Received],
    ) -> str:
        matching = " matching the condition" if where is not None else ""
        lines = [
            f"expected {count} {service} request(s){matching} within {timeout:g}s, got {len(found)}; "
            f"received {len(self._state.requests)} request(s) in all:"
        ]
        shown = self._state.requests[-20:]
        if len(shown) < len(self._state.requests):
            lines.append(f"  ... {len(self._state.requests) - len(shown)} earlier request(s) not shown")
        for r in shown:
            fault = " (injected fault)" if r.faulted else ""
            lines.append(f"  {r.service}: {r.method} {r.path} -> {r.status}{fault}: {_one_line(r.text, 160)}")
        if not shown:
            lines.append("  (nothing)")
        return "\n".join(lines)

    def fault(self, service: str, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next `times` requests to `service` with `status` (`times=-1`: until `clear()`).

        `retry_after` adds a `Retry-After` header (seconds). The body is what the service sends
        for that status: Slack's `rate_limited`, PagerDuty's `throttle event`, or a plain-text error.
        """
        _check_service(service)
        _check_fault(status, times)
        with self._state.cond:
            self._state.faults[service] = _Fault(status, times, retry_after)

    def clear_faults(self) -> None:
        """Answer every request normally again."""
        with self._state.cond:
            self._state.faults.clear()

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._state.cond:
            self._state.requests.clear()

    def clear(self) -> None:
        """Forget the recorded requests and the faults (Statuspage incidents are kept, so PATCH still works)."""
        with self._state.cond:
            self._state.requests.clear()
            self._state.faults.clear()

    # the application

    def app(self) -> web.Application:
        """The aiohttp application; `start()` serves it, and it can be mounted elsewhere."""
        app = web.Application()
        routes = [
            web.post("/pagerduty/v2/enqueue", self._recorded("pagerduty", self._pagerduty_enqueue)),
            web.post("/slack/services/{a}/{b}/{c}", self._recorded("slack", self._slack_webhook)),
            web.post("/slack/api/chat.postMessage", self._recorded("slack", self._slack_post_message)),
            web.post(
                "/twilio/2010-04-01/Accounts/{account_sid}/Messages.json",
                self._recorded("twilio", self._twilio_message),
            ),
            web.post(
                "/twilio/2010-04-01/Accounts/{account_sid}/Calls.json", self._recorded("twilio", self._twilio_call)
            ),
            web.post("/statuspage/v1/pages/{page_id}/incidents", self._recorded("statuspage", self._statuspage_create)),
            web.patch(
                "/statuspage/v1/pages/{page_id}/incidents/{incident_id}",
                self._recorded("statuspage", self._statuspage_update),
            ),
            web.put(
                "/statuspage/v1/pages/{page_id}/incidents/{incident_id}",
                self._recorded("statuspage", self._statuspage_update),
            ),
            web.post("/webhook/{rest:.*}", self._recorded("webhook", self._webhook)),
            web.get("/_standins/requests", self._control_list),
            web.delete("/_standins/requests", self._control_clear_requests),
            web.post("/_standins/faults", self._control_fault),
            web.delete("/_standins/faults", self._control_clear_faults),
        ]
        app.add_routes(routes)
        return app

    def _recorded(self, service: str, handler: _Handler) -> Callable[[web.Request], Coroutine[Any, Any, web.Response]]:
        """Wrap a service handler: parse the body, apply a pending fault, record the exchange."""

        async def serve(request: web.Request) -> web.Response:
            body = await request.read()
            incoming = _parse(request, body, form_payload=service == "slack")
            fault = self._take_fault(service)
            response = _fault_response(service, request.path, fault) if fault else await handler(incoming)
            self._record(
                Received(
                    service=service,
                    method=request.method,
                    path=request.path,
                    headers={name.lower(): value for name, value in request.headers.items()},
                    body=body,
                    json=incoming.json,
                    form=incoming.form,
                    status=response.status,
                    at=time.time(),
                    faulted=fault is not None,
                    response=response.body if isinstance(response.body, bytes) else b"",
                )
            )
            return response

        return serve

    def _take_fault(self, service: str) -> _Fault | None:
        with self._state.cond:
            fault = self._state.faults.get(service)
            if fault is None:
                return None
            if fault.remaining > 0:
                fault.remaining -= 1
                if fault.remaining == 0:
                    del self._state.faults[service]
            return fault

    def _record(self, received: Received) -> None:
        with self._state.cond:
            self._state.requests.append(received)
            self._state.cond.notify_all()
        if self._on_receive is not None:
            self._on_receive(received)

    # PagerDuty Events API v2

    async def _pagerduty_enqueue(self, incoming: _Incoming) -> web.Response:
        errors = ["Event object is not valid JSON"] if incoming.json is None else pagerduty_errors(incoming.json)
        if errors:
            body = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
            return web.json_response(body, status=400)
        dedup_key = _obj(incoming.json).get("dedup_key") or uuid.uuid4().hex
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": dedup_key}, status=202
        )

    # Slack

    async def _slack_webhook(self, incoming: _Incoming) -> web.Response:
        message = incoming.json
        if not isinstance(message, dict):
            return web.Response(text="invalid_payload", status=400)
        if not (message.get("text") or message.get("blocks") or message.get("attachments")):
            return web.Response(text="no_text", status=400)
        return web.Response(text="ok")

    async def _slack_post_message(self, incoming: _Incoming) -> web.Response:
        params: dict[str, Any] = {}
        if isinstance(incoming.json, dict):
            params = incoming.json
        elif incoming.form is not None:
            params = dict(incoming.form)
        authorization = incoming.request.headers.get("Authorization", "")
        token = authorization.removeprefix("Bearer ").strip() if authorization.startswith("Bearer ") else None
        token = token or params.get("token")
        if not token:
            return web.json_response({"ok": False, "error": "not_authed"})
        if not str(token).startswith(("xoxb-", "xoxp-")):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        channel = params.get("channel")
        if not channel:
            return web.json_response({"ok": False, "error": "channel_not_found"})
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            return web.json_response({"ok": False, "error": "no_text"})
        ts = self._next_slack_ts()
        message: dict[str, Any] = {
            "type": "message",
            "user": "U0STANDIN",
            "bot_id": "B0STANDIN",
            "text": params.get("text", ""),
            "ts": ts,
        }
        for name in ("blocks", "attachments", "thread_ts"):
            if params.get(name):
                message[name] = params[name]
        answer: dict[str, Any] = {"ok": True, "channel": channel, "ts": ts, "message": message}
        content_type = incoming.request.headers.get("Content-Type", "")
        if incoming.json is not None and "charset" not in content_type.lower():
            answer["warning"] = "missing_charset"
            answer["response_metadata"] = {"warnings": ["missing_charset"]}
        return web.json_response(answer)

    def _next_slack_ts(self) -> str:
        """Slack message timestamps: `<seconds>.<6 digits>`, unique and increasing, as they identify messages."""
        with self._state.cond:
            micros = max(time.time_ns() // 1000, self._state.last_slack_ts_us + 1)
            self._state.last_slack_ts_us = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    # Twilio

    async def _twilio_message(self, incoming: _Incoming) -> web.Response:
        account_sid = incoming.request.match_info["account_sid"]
        refusal = _twilio_auth_refusal(incoming.request, account_sid)
        if refusal is not None:
            return refusal
        form = incoming.form or {}
        if not form.get("To"):
            return _twilio_error(21604, "A 'To' phone number is required.")
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return _twilio_error(21603, "A 'From' phone number is required.")
        if not (form.get("Body") or form.get("MediaUrl")):
            return _twilio_error(21602, "Message body is required.")
        sid = "SM" + secrets.token_hex(16)
        message = {
            **_twilio_common(account_sid, sid, "Messages", form),
            "body": form.get("Body", ""),
            "num_segments": "1",
            "num_media": "1" if form.get("MediaUrl") else "0",
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "error_code": None,
            "error_message": None,
        }
        return web.json_response(message, status=201)

    async def _twilio_call(self, incoming: _Incoming) -> web.Response:
        account_sid = incoming.request.match_info["account_sid"]
        refusal = _twilio_auth_refusal(incoming.request, account_sid)
        if refusal is not None:
            return refusal
        form = incoming.form or {}
        if not form.get("To"):
            return _twilio_error(21201, "No 'To' number is specified")
        if not form.get("From"):
            return _twilio_error(21213, "No 'From' number is specified")
        if not (form.get("Twiml") or form.get("Url") or form.get("ApplicationSid")):
            return _twilio_error(21205, "A 'Url', 'Twiml' or 'ApplicationSid' parameter is required.")
        sid = "CA" + secrets.token_hex(16)
        call = {
            **_twilio_common(account_sid, sid, "Calls", form),
            "to_formatted": form["To"],
            "from_formatted": form["From"],
        }
        return web.json_response(call, status=201)

    # Statuspage

    async def _statuspage_create(self, incoming: _Incoming) -> web.Response:
        refusal = _statuspage_auth_refusal(incoming.request)
        if refusal is not None:
            return refusal
        page_id = incoming.request.match_info["page_id"]
        fields, problem = _statuspage_fields(incoming.json)
        if problem is None and not fields.get("name"):
            problem = "name can't be blank"
        if problem is not None:
            return web.json_response({"error": problem}, status=422)
        now = _now_iso()
        incident_id = _statuspage_id()
        status = fields.get("status", "investigating")
        incident: dict[str, Any] = {
            "id": incident_id,
            "page_id": page_id,
            "name": fields["name"],
            "status": status,
            "impact": fields.get("impact_override", "none"),
            "created_at": now,
            "updated_at": now,
            "started_at": now,
            "monitoring_at": now if status == "monitoring" else None,
            "resolved_at": now if status == "resolved" else None,
            "shortlink": f"http://stspg.io/{incident_id[:5]}",
            "components": [],
            "incident_updates": [],
        }
        _statuspage_apply(incident, fields, now)
        with self._state.cond:
            self._state.incidents[incident_id] = _StatuspageIncident(incident, page_id)
            return web.json_response(incident, status=201)

    async def _statuspage_update(self, incoming: _Incoming) -> web.Response:
        refusal = _statuspage_auth_refusal(incoming.request)
        if refusal is not None:
            return refusal
        page_id = incoming.request.match_info["page_id"]
        incident_id = incoming.request.match_info["incident_id"]
        fields, problem = _statuspage_fields(incoming.json)
        with self._state.cond:
            stored = self._state.incidents.get(incident_id)
            if stored is None or stored.page_id != page_id:
                return web.json_response({"error": "Not found"}, status=404)
            if problem is not None:
                return web.json_response({"error": problem}, status=422)
            incident = stored.data
            now = _now_iso()
            if fields.get("name"):
                incident["name"] = fields["name"]
            if "status" in fields:
                incident["status"] = fields["status"]
                if fields["status"] == "monitoring":
                    incident["monitoring_at"] = now
                if fields["status"] == "resolved":
                    incident["resolved_at"] = now
            incident["updated_at"] = now
            _statuspage_apply(incident, fields, now)
            return web.json_response(incident)

    # generic webhooks

    async def _webhook(self, incoming: _Incoming) -> web.Response:
        return web.json_response({"ok": True})

    # control API

    async def _control_list(self, request: web.Request) -> web.Response:
        service = request.query.get("service") or None
        try:
            received = self.received(service)
        except ValueError as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response([r.to_dict() for r in received])

    async def _control_clear_requests(self, request: web.Request) -> web.Response:
        self.clear_requests()
        return web.json_response({"ok": True})

    async def _control_fault(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json()
            retry_after = spec.get("retry_after")
            self.fault(
                str(spec["service"]),
                int(spec["status"]),
                times=int(spec.get("times", 1)),
                retry_after=None if retry_after is None else float(retry_after),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            return web.json_response({"error": f"bad fault: {error}"}, status=400)
        return web.json_response({"ok": True})

    async def _control_clear_faults(self, request: web.Request) -> web.Response:
        self.clear_faults()
        return web.json_response({"ok": True})


def _parse(request: web.Request, body: bytes, *, form_payload: bool) -> _Incoming:
    """Parse a body as the services do: form fields when form-encoded, else JSON (None when it is not JSON).

    A JSON object sent with a form content type (`curl -d '{...}'`) is read as JSON, as the services do.
    """
    form: dict[str, str] | None = None
    parsed: Any | None = None
    if request.content_type == "application/x-www-form-urlencoded" and not body.lstrip().startswith((b"{", b"[")):
        form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        if form_payload and "payload" in form:
            with contextlib.suppress(ValueError):
                parsed = json.loads(form["payload"])
    elif body:
        with contextlib.suppress(ValueError):
            parsed = json.loads(body)
    return _Incoming(request=request, body=body, json=parsed, form=form)


def _twilio_auth_refusal(request: web.Request, account_sid: str) -> web.Response | None:
    """Twilio's 401 unless HTTP basic auth names this account (or an API key, SK...) with a non-empty secret."""
    user, password = "", ""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            user, _, password = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
    if password and (user == account_sid or user.startswith("SK")):
        return None
    body = {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    return web.json_response(body, status=401, headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})


def _twilio_error(code: int, message: str) -> web.Response:
    body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": 400}
    return web.json_response(body, status=400)


def _twilio_common(account_sid: str, sid: str, kind: str, form: Mapping[str, str]) -> dict[str, Any]:
    now = format_datetime(datetime.now(UTC), usegmt=True)
    return {
        "sid": sid,
        "account_sid": account_sid,
        "to": form["To"],
        "from": form.get("From"),
        "status": "queued",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "date_created": now,
        "date_updated": now,
        "price": None,
        "uri": f"/2010-04-01/Accounts/{account_sid}/{kind}/{sid}.json",
    }


def _statuspage_auth_refusal(request: web.Request) -> web.Response | None:
    """Statuspage's 401 unless `Authorization: OAuth <key>` (or an `api_key` query parameter) is given."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if (scheme == "OAuth" and key.strip()) or request.query.get("api_key"):
        return None
    return web.json_response({"error": "Could not authenticate"}, status=401)


def _statuspage_id() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(12))


def _statuspage_fields(body: Any) -> tuple[dict[str, Any], str | None]:
    """The `incident` object of a create/update request, or why Statuspage would answer 422."""
    if not isinstance(body, dict) or not isinstance(body.get("incident"), dict):
        return {}, "incident is missing"
    fields: dict[str, Any] = body["incident"]
    if "status" in fields and fields["status"] not in STATUSPAGE_STATUSES:
        return fields, f"status must be one of {', '.join(STATUSPAGE_STATUSES)}"
    components = fields.get("components", {})
    if not isinstance(components, dict) or any(s not in STATUSPAGE_COMPONENT_STATUSES for s in components.values()):
        return fields, f"component statuses must be one of {', '.join(STATUSPAGE_COMPONENT_STATUSES)}"
    component_ids = fields.get("component_ids", [])
    if not isinstance(component_ids, list) or not all(isinstance(c, str) for c in component_ids):
        return fields, "component_ids must be a list of strings"
    return fields, None


def _statuspage_apply(incident: dict[str, Any], fields: Mapping[str, Any], now: str) -> None:
    """Update components and prepend an incident update (Statuspage lists the newest first)."""
    current = {c["id"]: c for c in incident["components"]}
    affected: list[dict[str, Any]] = []
    changes: dict[str, str] = {
        cid: current.get(cid, {}).get("status", "operational") for cid in fields.get("component_ids", [])
    }
    changes.update(fields.get("components", {}))
    for cid, new_status in changes.items():
        old_status = current.get(cid, {}).get("status", "operational")
        component = {"id": cid, "page_id": incident["page_id"], "name": cid, "status": new_status, "updated_at": now}
        current[cid] = component
        affected.append({"code": cid, "name": cid, "old_status": old_status, "new_status": new_status})
    incident["components"] = list(current.values())
    if "status" in fields or "body" in fields or affected:
        update = {
            "id": _statuspage_id(),
            "incident_id": incident["id"],
            "status": incident["status"],
            "body": fields.get("body", ""),
            "created_at": now,
            "updated_at": now,
            "display_at": now,
            "affected_components": affected,
        }
        incident["incident_updates"].insert(0, update)


# --- SMTP -------------------------------------------------------------------------------------------------------


class ReceivedEmail(EmailMessage):
    """A message the SMTP stand-in accepted, parsed with `email.policy.default`.

    Besides the headers and parts, it carries the SMTP envelope: `mail_from`, `rcpt_tos` (every
    recipient, Bcc included, which the headers do not show) and `auth_login` (the user name of an
    SMTP AUTH, if the client logged in). `at` is when it arrived (`time.time()`).
    """

    def __init__(self, policy: email.policy.Policy | None = None) -> None:
        super().__init__(policy)
        self.mail_from: str = ""
        self.rcpt_tos: list[str] = []
        self.auth_login: str | None = None
        self.at: float = 0.0


# email.policy.default (which is EmailPolicy()), except that it builds ReceivedEmail objects.
_EMAIL_POLICY = EmailPolicy(message_factory=ReceivedEmail)


def _accept_any_login(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
    return AuthResult(success=True, auth_data=auth_data)


class _SmtpHandler:
    def __init__(self, deliver: Callable[[ReceivedEmail], None]) -> None:
        self._deliver = deliver

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd hook)
        content = envelope.original_content or envelope.content or b""
        data = content.encode("utf-8") if isinstance(content, str) else content
        message = BytesParser(policy=_EMAIL_POLICY).parsebytes(data)
        message.mail_from = envelope.mail_from or ""
        message.rcpt_tos = list(envelope.rcpt_tos)
        login = session.auth_data
        message.auth_login = login.login.decode("utf-8", errors="replace") if isinstance(login, LoginPassword) else None
        message.at = time.time()
        self._deliver(message)
        return "250 Message accepted for delivery"


class SmtpStandIn:
    """A real SMTP server on loopback that keeps every message it accepts, for the operator's email channel.

    Plain SMTP only: STARTTLS is not offered (configure the client without TLS). AUTH PLAIN and
    LOGIN are offered without TLS and accept any credentials, so a client configured with a user
    name works too. `on_receive` is called (on the server's thread) with every message.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        on_receive: Callable[[ReceivedEmail], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._on_receive = on_receive
        self._cond = threading.Condition()
        self._messages: list[ReceivedEmail] = []
        self._thread: _LoopThread | None = None
        self._server: asyncio.Server | None = None

    def start(self) -> None:
        """Bind (port 0: a free port the OS picks) and serve in a daemon thread; `port` is the bound port afterwards."""
        if self._thread is not None:
            raise RuntimeError("SMTP stand-in already started")
        # Binding the socket here, rather than letting aiosmtpd's Controller bind a port we guessed,
        # means port 0 works and no other process can take the port in between.
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except BaseException:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        thread = _LoopThread(f"standins-smtp-{self.port}")
        thread.start()
        try:
            self._server = thread.run(self._serve(sock))
        except BaseException:
            sock.close()
            thread.stop()
            raise
        self._thread = thread

    async def _serve(self, sock: socket.socket) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        handler = _SmtpHandler(self._deliver)

        def protocol() -> SMTP:
            return SMTP(
                handler,
                hostname="standins.localhost",
                loop=loop,
                authenticator=_accept_any_login,
                auth_require_tls=False,
            )

        return await loop.create_server(protocol, sock=sock)

    def stop(self) -> None:
        """Close the server and end its thread (idempotent)."""
        thread, server = self._thread, self._server
        self._thread = self._server = None
        if thread is None:
            return
        if server is not None:
            server.close()
        thread.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _deliver(self, message: ReceivedEmail) -> None:
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()
        if self._on_receive is not None:
            self._on_receive(message)

    def messages(self) -> list[ReceivedEmail]:
        """A snapshot of the messages accepted so far, oldest first."""
        with self._cond:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedEmail]:
        """Block until `count` messages were accepted and return them all; AssertionError listing them on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    got = [f"  to {', '.join(m.rcpt_tos)}: {m['Subject']}" for m in self._messages] or ["  (nothing)"]
                    raise AssertionError(
                        "\n".join([f"expected {count} email(s) within {timeout:g}s, got {len(self._messages)}:", *got])
                    )
                self._cond.wait(remaining)
            return list(self._messages)

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._cond:
            self._messages.clear()


# --- the demo's foreground process ------------------------------------------------------------------------------


def describe(received: Received) -> str:
    """One readable line for a received request, as `make demo` prints it."""
    line = f"[{received.service}] {_describe_request(received)}"
    answer = _obj(received.response_json())
    if received.faulted:
        return f"{line} -> answered {received.status} (injected fault)"
    if received.status >= 400:
        detail = answer.get("errors") or answer.get("message") or answer.get("error") or received.response.decode()
        return f"{line} -> rejected {received.status}: {_one_line(str(detail))}"
    if answer.get("ok") is False:  # the Slack Web API fails with 200 and ok=false
        return f"{line} -> rejected: {answer.get('error')}"
    return line


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _describe_request(received: Received) -> str:
    data = _obj(received.json)
    form = received.form or {}
    answer = _obj(received.response_json())
    if received.service == "pagerduty":
        action = data.get("event_action", "?")
        dedup_key = data.get("dedup_key") or answer.get("dedup_key")
        key = f" dedup_key={dedup_key}" if dedup_key else ""
        if action == "trigger":
            payload = _obj(data.get("payload"))
            severity = str(payload.get("severity", "?")).upper()
            summary = _one_line(str(payload.get("summary", "")))
            return f'trigger {severity}{key} summary="{summary}"'
        return f"{action}{key}"
    if received.service == "slack":
        params = data or form
        channel = params.get("channel") or "(webhook's channel)"
        text = str(params.get("text") or "")
        if not text and params.get("blocks"):
            text = f"({len(params['blocks'])} blocks)"
        thread = f" (in thread {params['thread_ts']})" if params.get("thread_ts") else ""
        return f"{channel}: {_one_line(text)}{thread}"
    if received.service == "twilio":
        if received.path.endswith("/Calls.json"):
            return f"call to {form.get('To', '?')}"
        return f"SMS to {form.get('To', '?')}: {_one_line(form.get('Body', ''))}"
    if received.service == "statuspage":
        incident = _obj(data.get("incident"))
        status = incident.get("status") or answer.get("status") or "update"
        name = incident.get("name") or answer.get("name") or received.path.rsplit("/", 1)[-1]
        return f"{status}: {_one_line(str(name))}"
    event = f" event={data['event']}" if "event" in data else ""
    return f"{received.method} {received.path}{event}"


def describe_email(message: ReceivedEmail) -> str:
    """One readable line for a received email, as `make demo` prints it."""
    return f"[email] to {', '.join(message.rcpt_tos)}: {_one_line(str(message['Subject'] or '(no subject)'))}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the HTTP and SMTP stand-ins in the foreground, printing a line per request, until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m localenv.standins",
        description="Local stand-ins for Slack, PagerDuty, Twilio, Statuspage, webhooks and SMTP.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port (default: %(default)s)")
    parser.add_argument("--smtp-port", type=int, default=None, help="SMTP port (default: the HTTP port + 1)")
    args = parser.parse_args(argv)
    smtp_port = args.smtp_port if args.smtp_port is not None else (args.port + 1 if args.port else 0)

    print_lock = threading.Lock()

    def say(line: str) -> None:
        with print_lock:
            print(line, flush=True)

    http_standins = StandIns(args.host, args.port, on_receive=lambda r: say(describe(r)))
    smtp = SmtpStandIn(args.host, smtp_port, on_receive=lambda m: say(describe_email(m)))
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            http_standins.start()
            smtp.start()
        except OSError as error:
            print(f"standins: cannot listen: {error}", file=sys.stderr, flush=True)
            return 1
        say(f"stand-ins listening on {http_standins.url} (SMTP on {args.host}:{smtp.port}, no STARTTLS)")
        for service in SERVICES:
            say(f"  {service:<10} {http_standins.base(service)}")
        stopping.wait()
        return 0
    finally:
        smtp.stop()
        http_standins.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
