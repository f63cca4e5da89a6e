"""The HTTP stand-ins in one aiohttp application, each service under its own path prefix."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any, Self

from aiohttp import web

from localenv.standins.anthropic import AnthropicMessages
from localenv.standins.control import Control
from localenv.standins.core import (
    INJECTED,
    Received,
    _check_fault,
    _check_service,
    _Fault,
    _fault_response,
    _Handler,
    _LoopThread,
    _one_line,
    _parse,
    _State,
)
from localenv.standins.pagerduty import PagerDuty
from localenv.standins.slack import Slack
from localenv.standins.statuspage import Statuspage
from localenv.standins.twilio import Twilio
from localenv.standins.webhook import Webhooks


class StandIns(PagerDuty, Slack, Twilio, Statuspage, Webhooks, AnthropicMessages, Control):
    """The HTTP stand-ins for PagerDuty, Slack, Twilio, Statuspage, generic webhooks and Anthropic, in one server.

        Base URLs to configure the operator with (see `base()`): PagerDuty Events API `base("pagerduty")`
        (events go to `/v2/enqueue`), Slack incoming webhooks `base("slack") + "/services/T/B/X"`, the
        Slack Web API `base("slack") + "/api"`, Twilio `base("twilio")` (`/2010-04-01/Accounts/...`),
        Statuspage `base("statuspage")` (`/v1/pages/...`), webhooks `base("webhook") + "/anything"` and the
    Anthropic SDK's `base_url` `base("anthropic")` (`/v1/messages`; see `anthropic_script()`).
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
        for that status: Slack's `rate_limited`, PagerDuty's `throttle event`, Anthropic's typed error
        JSON (its 429 always has `retry-after`, 1 s unless told), or a plain-text error.
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
        """Forget the recorded requests, the faults and the Anthropic script and mode (Statuspage incidents are
        kept, so PATCH still works)."""
        with self._state.cond:
            self._state.requests.clear()
            self._state.faults.clear()
        self.anthropic_reset()

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
            web.post("/anthropic/v1/messages", self._recorded("anthropic", self._anthropic_messages)),
            web.route("*", "/anthropic/{rest:.*}", self._recorded("anthropic", self._anthropic_not_found)),
            web.get("/_standins/requests", self._control_list),
            web.delete("/_standins/requests", self._control_clear_requests),
            web.post("/_standins/faults", self._control_fault),
            web.delete("/_standins/faults", self._control_clear_faults),
            web.post("/_standins/anthropic/script", self._control_anthropic_script),
            web.post("/_standins/anthropic/auto", self._control_anthropic_auto),
            web.post("/_standins/anthropic/mode", self._control_anthropic_mode),
            web.delete("/_standins/anthropic", self._control_anthropic_reset),
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
                    faulted=fault is not None or response.get(INJECTED, False),
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
