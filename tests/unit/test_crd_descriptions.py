"""Every property of every generated CRD has a description, so `kubectl explain` never says <no description>."""

from __future__ import annotations

from typing import Any

import pytest

from incidentops.api.v1alpha1.crdgen import openapi_schema
from incidentops.api.v1alpha1.resources import KINDS, Kind


def undocumented(node: dict[str, Any], path: str) -> list[str]:
    """Property paths under the node without a description (items as [], map values as {})."""
    missing = []
    for name, sub in node.get("properties", {}).items():
        where = f"{path}.{name}"
        if not str(sub.get("description", "")).strip():
            missing.append(where)
        missing.extend(undocumented(sub, where))
    if isinstance(node.get("items"), dict):
        missing.extend(undocumented(node["items"], f"{path}[]"))
    if isinstance(node.get("additionalProperties"), dict):
        missing.extend(undocumented(node["additionalProperties"], f"{path}{{}}"))
    return missing


def test_the_walker_finds_nested_gaps() -> None:
    schema = {
        "properties": {
            "a": {"description": "ok", "properties": {"b": {"type": "string"}}},
            "c": {"description": "ok", "items": {"properties": {"d": {"description": " "}}}},
            "e": {"description": "ok", "additionalProperties": {"properties": {"f": {}}}},
        }
    }
    assert undocumented(schema, "X") == ["X.a.b", "X.c[].d", "X.e{}.f"]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_property_has_a_description(kind: Kind) -> None:
    schema = openapi_schema(kind)
    assert str(schema.get("description", "")).strip(), f"{kind.kind} has no description"
    # The root metadata may carry nothing but its type (the apiserver refuses more); kubectl explain
    # shows the standard ObjectMeta description for it.
    missing = [p for p in undocumented(schema, kind.kind) if p != f"{kind.kind}.metadata"]
    assert not missing, f"{len(missing)} properties of {kind.kind} without a description:\n  " + "\n  ".join(missing)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_root_metadata_is_only_typed_as_the_apiserver_demands(kind: Kind) -> None:
    assert openapi_schema(kind)["properties"]["metadata"] == {"type": "object"}


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_no_description_sends_users_to_files_they_do_not_have(kind: Kind) -> None:
    text = repr(openapi_schema(kind))
    for name in ("REQUIREMENTS.md", "DESIGN.md"):
        assert name not in text, f"{kind.kind}'s schema refers to {name}"
