"""The control API (not recorded), for processes that cannot use the Python API."""

from __future__ import annotations

from aiohttp import web

from localenv.standins.core import Received, _State


class Control:
    """The control API: what was received, and faults to inject."""

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
