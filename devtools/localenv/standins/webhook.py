"""Generic webhook receivers: every POST under /webhook/ answers 200 and is recorded."""

from __future__ import annotations

from aiohttp import web

from localenv.standins.core import _Incoming, _State


class Webhooks:
    """Generic webhook receivers: any POST under /webhook/ is accepted."""

    _state: _State

    async def _webhook(self, incoming: _Incoming) -> web.Response:
        return web.json_response({"ok": True})
