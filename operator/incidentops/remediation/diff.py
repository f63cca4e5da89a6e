"""What a mutation would change, as an approver reads it: the live object against its dry-run result.

Only the intent is compared (spec, and the labels and annotations a human set): resourceVersion,
generation, managedFields, timestamps and status change on every write and would bury the change.
"""

from __future__ import annotations

import json
from typing import Any

NOISY_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision"})
MAX_VALUE = 120
MAX_LINES = 60


def _intent(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in NOISY_ANNOTATIONS}
    return {"metadata": {"labels": meta.get("labels") or {}, "annotations": annotations}, "spec": obj.get("spec") or {}}


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flatten(value[key], f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            _flatten(item, f"{path}[{index}]", out)
    elif value not in ({}, []):  # an empty map or list says what its absence says
        out[path] = value


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def spec_diff(live: dict[str, Any], planned: dict[str, Any]) -> list[str]:
    """One line per changed field: `path: old -> new` (added and removed fields show <none>)."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    _flatten(_intent(live), "", before)
    _flatten(_intent(planned), "", after)
    lines = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path, "<none>"), after.get(path, "<none>")
        if old != new:
            lines.append(
                f"{path}: {_shown(old) if old != '<none>' else old} -> {_shown(new) if new != '<none>' else new}"
            )
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"... and {len(lines) - MAX_LINES} more changed fields"]
    return lines
