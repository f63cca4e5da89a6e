"""Slack: incoming webhooks (/slack/services/T/B/X) and chat.postMessage (/slack/api), threaded by ts."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from localenv.standins.core import _Incoming, _State


class Slack:
    """Slack: incoming webhooks and the Web API chat.postMessage, with threads."""

    _state: _State

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
