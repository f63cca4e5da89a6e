"""What every stand-in shares: the recorded request, faults, the loop thread, the shared state."""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import math
import secrets
import signal
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from aiohttp import web

T = TypeVar("T")

SERVICES: tuple[str, ...] = ("pagerduty", "slack", "twilio", "statuspage", "webhook", "anthropic")
"""The services `StandIns` speaks for; each one is served under `/<service>/`."""

DEFAULT_PORT = 8125
STARTUP_TIMEOUT = 10.0

INJECTED = web.ResponseKey("standins_injected", bool)
"""Set on a response a handler answered as an injected fault (a scripted error), so it is recorded as `faulted`."""

ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed the rate limit for your organization. Please retry later."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
"""Anthropic's error types by status, with a message as the API words it."""


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


def _anthropic_error(status: int, message: str | None = None, retry_after: float | None = None) -> web.Response:
    """An Anthropic API error: `{"type": "error", "error": {"type", "message"}}`, typed by status.

    A 429 always carries `retry-after` (1 s unless told), as the real API's does.
    """
    default = ANTHROPIC_ERRORS[500] if status >= 500 else ANTHROPIC_ERRORS[400]
    kind, default_message = ANTHROPIC_ERRORS.get(status, default)
    if status == 429 and retry_after is None:
        retry_after = 1
    headers = {"request-id": f"req_{secrets.token_hex(12)}"}
    if retry_after is not None:
        headers["retry-after"] = _retry_after_header(retry_after)
    body = {"type": "error", "error": {"type": kind, "message": message or default_message}}
    return web.json_response(body, status=status, headers=headers)


def _fault_response(service: str, path: str, fault: _Fault) -> web.Response:
    """A plausible answer of `service` with `fault.status`, as the real service words it."""
    status = fault.status
    if service == "anthropic":
        return _anthropic_error(status, retry_after=fault.retry_after)
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
class _AnthropicState:
    """How the Anthropic stand-in answers: queued script steps first, else `mode` ("auto" or "obey")."""

    script: deque[dict[str, Any]] = field(default_factory=deque)
    mode: str = "auto"
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: float = 0.0


@dataclass
class _State:
    """Everything the loop thread and test threads share; guarded by `cond`."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    requests: list[Received] = field(default_factory=list)
    faults: dict[str, _Fault] = field(default_factory=dict)
    incidents: dict[str, _StatuspageIncident] = field(default_factory=dict)
    last_slack_ts_us: int = 0
    anthropic: _AnthropicState = field(default_factory=_AnthropicState)


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


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: Any, default: int) -> int:
    return value if _is_int(value) else default


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
