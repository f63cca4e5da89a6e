"""What ack/resolve refuse, and the exact spec patches they write (no cluster needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from incidentops.api.v1alpha1.incident import IncidentState, IncidentStatus
from incidentops.cli.actions import (
    Incident,
    Refused,
    acknowledgement_patch,
    acknowledgement_recorded,
    check_acknowledge,
    check_resolve,
    resolution_patch,
    resolution_recorded,
)
from incidentops.lifecycle.intents import reconcile_intents
from incidentops.lifecycle.machine import acknowledge, initial_status, transition

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def incident(status: IncidentStatus | None = None, **spec: Any) -> Incident:
    body: dict[str, Any] = {
        "metadata": {"name": "api-5xx", "namespace": "prod", "resourceVersion": "42"},
        "spec": {"title": "API 5xx", "severity": "SEV2", "futureField": "ignored", **spec},
    }
    if status is not None:
        body["status"] = status.wire()
    return Incident.of(body)


def detected() -> IncidentStatus:
    return initial_status(NOW - timedelta(minutes=3), how="test")


def test_patches_write_only_the_intent_in_camel_case() -> None:
    assert acknowledgement_patch("alice", NOW) == {
        "spec": {"acknowledgement": {"by": "alice", "at": "2026-03-01T12:00:00.000Z"}}
    }
    assert resolution_patch("bob", NOW, "rolled back", "bad config") == {
        "spec": {
            "resolution": {
                "by": "bob",
                "at": "2026-03-01T12:00:00.000Z",
                "summary": "rolled back",
                "rootCause": "bad config",
            }
        }
    }
    assert "rootCause" not in resolution_patch("bob", NOW, "rolled back", "")["spec"]["resolution"]


def test_patches_refuse_what_the_schema_would_reject() -> None:
    with pytest.raises(ValidationError):
        acknowledgement_patch("", NOW)
    with pytest.raises(ValidationError):
        resolution_patch("bob", NOW, "x" * 5000, "")


def test_unknown_spec_fields_from_a_newer_crd_are_tolerated() -> None:
    parsed = incident(detected())
    assert parsed.resource_version == "42" and parsed.has_status
    assert not incident().has_status and incident().status.state == IncidentState.DETECTED


def test_ack_is_allowed_on_a_fresh_or_working_incident() -> None:
    check_acknowledge(incident(), NOW)
    check_acknowledge(incident(detected()), NOW)
    working = transition(detected(), IncidentState.INVESTIGATING, now=NOW, actor="bot")
    check_acknowledge(incident(working), NOW)


def test_ack_twice_names_who_acknowledged() -> None:
    acked = acknowledge(detected(), by="alice", now=NOW)
    with pytest.raises(Refused, match=r'"api-5xx" is already acknowledged by alice$'):
        check_acknowledge(incident(acked), NOW)
    with pytest.raises(Refused, match=r"already acknowledged by carol \(the operator has not recorded it yet\)"):
        check_acknowledge(incident(detected(), acknowledgement={"by": "carol"}), NOW)


@pytest.mark.parametrize("final", [IncidentState.RESOLVED, IncidentState.CLOSED])
def test_ack_is_refused_once_resolved_or_closed(final: IncidentState) -> None:
    status = transition(detected(), IncidentState.RESOLVED, now=NOW, actor="auto-resolve")
    if final == IncidentState.CLOSED:
        status = transition(status, IncidentState.CLOSED, now=NOW, actor="bot")
    with pytest.raises(Refused, match=f"already {final}; there is nothing to acknowledge"):
        check_acknowledge(incident(status), NOW)


def test_resolve_rules() -> None:
    check_resolve(incident(detected()))
    auto = transition(detected(), IncidentState.RESOLVED, now=NOW, actor="auto-resolve")
    check_resolve(incident(auto))  # a human may still record the summary and root cause
    with pytest.raises(Refused, match="already resolved by bob"):
        check_resolve(incident(auto, resolution={"by": "bob"}))
    closed = transition(auto, IncidentState.CLOSED, now=NOW, actor="bot")
    with pytest.raises(Refused, match="already Closed; it can no longer be resolved"):
        check_resolve(incident(closed))


def test_wait_predicates_follow_what_the_operator_writes() -> None:
    base = incident(detected(), acknowledgement={"by": "alice"})
    assert not acknowledgement_recorded(base)
    reconciled = reconcile_intents(base.spec, base.status, now=NOW, generation=2).status
    assert acknowledgement_recorded(incident(reconciled, acknowledgement={"by": "alice"}))

    too_late = transition(detected(), IncidentState.RESOLVED, now=NOW, actor="auto-resolve")
    late = incident(too_late, acknowledgement={"by": "alice"})
    ignored = reconcile_intents(late.spec, late.status, now=NOW, generation=2).status
    with pytest.raises(Refused, match="ignored the acknowledgement"):
        acknowledgement_recorded(incident(ignored))

    resolving = incident(detected(), resolution={"by": "bob", "summary": "fixed"})
    assert not resolution_recorded(resolving, "bob")
    done = reconcile_intents(resolving.spec, resolving.status, now=NOW, generation=2).status
    assert resolution_recorded(incident(done), "bob")
    assert not resolution_recorded(incident(done), "someone-else")
