"""A Deployment's recent rollouts, as the model may see them: times, images, and which settings changed.

Environment variables are named, never shown: a value may be a credential (and one from a Secret
is not even read). What changed between two revisions is told by comparing values in memory;
only the names leave this module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from incidentops.kube import Obj

REVISION = "deployment.kubernetes.io/revision"
MAX_REVISIONS = 5


def _containers(template: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = template.get("spec") or {}
    return [c for c in (spec.get("containers") or []) if isinstance(c, Mapping)]


def _env(container: Mapping[str, Any]) -> dict[str, str]:
    """name -> a fingerprint of where its value comes from (a hash of a literal, a reference's kind)."""
    out: dict[str, str] = {}
    for item in container.get("env") or []:
        if not isinstance(item, Mapping) or not item.get("name"):
            continue
        if "value" in item:
            digest = hashlib.sha256(str(item.get("value")).encode()).hexdigest()[:12]
            out[str(item["name"])] = f"value:{digest}"
        else:
            source = item.get("valueFrom") or {}
            kinds = sorted(k for k in source if isinstance(k, str))
            out[str(item["name"])] = (
                "from:" + ",".join(kinds) + ":" + hashlib.sha256(str(source).encode()).hexdigest()[:12]
            )
    return out


def _describe(rs: Obj) -> dict[str, Any]:
    meta = rs.get("metadata") or {}
    template = (rs.get("spec") or {}).get("template") or {}
    containers = _containers(template)
    status = rs.get("status") or {}
    return {
        "revision": int((meta.get("annotations") or {}).get(REVISION, "0") or 0),
        "created": meta.get("creationTimestamp"),
        "replicas": status.get("replicas", 0),
        "ready": status.get("readyReplicas", 0),
        "images": {str(c.get("name")): str(c.get("image")) for c in containers},
        "env": {str(c.get("name")): sorted(_env(c)) for c in containers},
        "_env": {str(c.get("name")): _env(c) for c in containers},
    }


def _diff(newer: Mapping[str, Any], older: Mapping[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    images = {
        name: {"from": older["images"].get(name), "to": image}
        for name, image in newer["images"].items()
        if older["images"].get(name) != image
    }
    if images:
        changes["images"] = images
    env: dict[str, Any] = {}
    for name, values in newer["_env"].items():
        before = older["_env"].get(name, {})
        added = sorted(set(values) - set(before))
        removed = sorted(set(before) - set(values))
        changed = sorted(k for k in set(values) & set(before) if values[k] != before[k])
        if added or removed or changed:
            env[name] = {"added": added, "removed": removed, "valueChanged": changed}
    if env:
        changes["env"] = env
    return changes


def history(replica_sets: Iterable[Obj], deployment_uid: str | None = None) -> list[dict[str, Any]]:
    """The newest revisions first, each with what changed since the one before (names, never values)."""
    owned = [
        rs
        for rs in replica_sets
        if deployment_uid is None
        or any(o.get("uid") == deployment_uid for o in (rs.get("metadata") or {}).get("ownerReferences") or [])
    ]
    described = sorted((_describe(rs) for rs in owned), key=lambda d: d["revision"])
    out: list[dict[str, Any]] = []
    for index, item in enumerate(described):
        entry = {k: v for k, v in item.items() if not k.startswith("_")}
        if index > 0:
            entry["changedFromPrevious"] = _diff(item, described[index - 1]) or "nothing in images or env"
        out.append(entry)
    return list(reversed(out))[:MAX_REVISIONS]
