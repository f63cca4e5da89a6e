"""Twilio-style SMS and calls (/twilio/2010-04-01/Accounts/SID/Messages.json, Calls.json)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from localenv.standins.core import _Incoming, _State


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


class Twilio:
    """Twilio-style Messages.json and Calls.json, with basic auth."""

    _state: _State

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
