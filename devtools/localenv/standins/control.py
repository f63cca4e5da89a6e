"""The control API (not recorded), for processes that cannot use the Python API."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from localenv.standins.core import Received, _State


class Control:
    """The control API: what was received, faults to inject, and how the Anthropic stand-in answers."""

    _state: _State

    # StandIns provides these (its Python API); the control API only exposes them over HTTP.
    def received(self, service: str | None = None) -> list[Received]:
        raise NotImplementedError

    def clear_requests(self) -> None:
        raise NotImplementedError

    def fault(self, service: str, status: int, times: int = 1, retry_after: float | None = None) -> None:
        raise NotImplementedError

    def clear_faults(self) -> None:
        raise NotImplementedError

    def anthropic_script(self, steps: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def anthropic_auto(self, answers: dict[str, dict[str, Any]] | None = None, latency: float = 0.0) -> None:
        raise NotImplementedError

    def anthropic_mode(self, mode: str) -> None:
        raise NotImplementedError

    def anthropic_reset(self) -> None:
        raise NotImplementedError

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

    async def _control_anthropic_script(self, request: web.Request) -> web.Response:
        try:
            steps = await request.json()
            if not isinstance(steps, list):
                raise ValueError(f"expected a JSON list of steps, not {steps!r}")
            self.anthropic_script(steps)
        except ValueError as error:
            return web.json_response({"error": f"bad script: {error}"}, status=400)
        return web.json_response({"ok": True})

    async def _control_anthropic_auto(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json()
            if not isinstance(spec, dict):
                raise ValueError(f"expected a JSON object, not {spec!r}")
            self.anthropic_auto(spec.get("answers"), latency=spec.get("latency", 0.0))
        except ValueError as error:
            return web.json_response({"error": f"bad auto settings: {error}"}, status=400)
        return web.json_response({"ok": True})

    async def _control_anthropic_mode(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json()
            if not isinstance(spec, dict):
                raise ValueError(f"expected a JSON object, not {spec!r}")
            self.anthropic_mode(str(spec.get("mode")))
        except ValueError as error:
            return web.json_response({"error": f"bad mode: {error}"}, status=400)
        return web.json_response({"ok": True})

    async def _control_anthropic_reset(self, request: web.Request) -> web.Response:
        self.anthropic_reset()
        return web.json_response({"ok": True})
