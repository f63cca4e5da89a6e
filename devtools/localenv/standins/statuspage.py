"""Statuspage: public incidents on a page, created then updated, components with statuses."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from localenv.standins.core import _Incoming, _now_iso, _State, _StatuspageIncident

STATUSPAGE_STATUSES = ("investigating", "identified", "monitoring", "resolved")
STATUSPAGE_COMPONENT_STATUSES = (
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
)


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


class Statuspage:
    """Statuspage incidents: create, then update by id."""

    _state: _State

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
