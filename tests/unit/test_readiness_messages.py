"""The InvalidSpec message names where in spec the first problem is, without repeating "spec"."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from incidentops.api.v1alpha1.escalationpolicy import EscalationPolicySpec
from incidentops.handlers.readiness import _invalid


def _level(name: str, after: str) -> dict[str, Any]:
    return {
        "name": name,
        "after": after,
        "targets": [{"type": "user", "name": name}],
        "channels": [{"type": "email", "to": [f"{name}@example.com"]}],
    }


def _message(spec: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        EscalationPolicySpec.model_validate(spec)
    verdict = _invalid(caught.value)
    assert (verdict.ready, verdict.reason) == (False, "InvalidSpec")
    return verdict.message


def test_a_check_on_the_whole_spec_is_located_at_spec() -> None:
    message = _message({"levels": [_level("a", "10m"), _level("b", "5m")]})
    assert message.startswith("spec: ")
    assert "spec.spec" not in message


def test_a_field_is_located_by_its_path_under_spec() -> None:
    message = _message({"levels": [_level("a", "soon")]})
    assert message.startswith("spec.levels.0.after: ")
