"""What the operator reads off a Postmortem for its status (the Open column): pure, from spec alone."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from incidentops.api.v1alpha1.common import format_time
from incidentops.api.v1alpha1.postmortem import OPEN_ACTION_ITEMS


def status_of(body: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The status the Postmortem should have: action item counts, when it was first seen Published."""
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    items = [i for i in spec.get("actionItems") or [] if isinstance(i, Mapping)]
    published = status.get("publishedAt")
    if spec.get("state") == "Published" and not published:
        published = format_time(now)
    out: dict[str, Any] = {
        "observedGeneration": (body.get("metadata") or {}).get("generation"),
        "openActionItems": sum(1 for i in items if i.get("status", "Open") in OPEN_ACTION_ITEMS),
        "actionItems": len(items),
    }
    if published:
        out["publishedAt"] = published
    return out


def changed(body: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    status = body.get("status") or {}
    return any(status.get(k) != v for k, v in wanted.items())
