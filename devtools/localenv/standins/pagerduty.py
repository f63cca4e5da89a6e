"""PagerDuty Events API v2 (trigger, acknowledge, resolve), refusing what PagerDuty refuses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from aiohttp import web

from localenv.standins.core import _Incoming, _obj, _State

PD_ACTIONS = ("trigger", "acknowledge", "resolve")
PD_SEVERITIES = ("critical", "error", "warning", "info")


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


class PagerDuty:
    """PagerDuty Events API v2: POST /pagerduty/v2/enqueue, validated as PagerDuty does."""

    _state: _State

    async def _pagerduty_enqueue(self, incoming: _Incoming) -> web.Response:
        errors = ["Event object is not valid JSON"] if incoming.json is None else pagerduty_errors(incoming.json)
        if errors:
            body = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
            return web.json_response(body, status=400)
        dedup_key = _obj(incoming.json).get("dedup_key") or uuid.uuid4().hex
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": dedup_key}, status=202
        )
