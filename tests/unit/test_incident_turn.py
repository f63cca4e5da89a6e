"""The Incident turn shell with an in-memory store: owned parts, conflicts decided again, the bound and its outcome.

The store is a stand-in for the apiserver's optimistic concurrency only (get, and a status PUT that
fails with 409 on a stale resourceVersion); the real apiserver is exercised in the integration tests.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from incidentops.api.v1alpha1.conditions import set_condition
from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentState, IncidentStatus, TriageResult
from incidentops.concern import Concern, Decision, Move, Notice, Ownership, merge
from incidentops.incidents.turn import Turns
from incidentops.kube import Conflict, NotFound, Obj
from incidentops.lifecycle.concern import LIFECYCLE, move
from incidentops.lifecycle.machine import append_timeline, initial_status
from incidentops.metrics import STATUS_WRITES

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


class Store:
    """Optimistic concurrency as the apiserver does it; `interfere` writes between our read and our write."""

    def __init__(self, obj: Obj) -> None:
        self.obj = copy.deepcopy(obj)
        self.version = 1
        self.obj["metadata"]["resourceVersion"] = "1"
        self.interfere: list[Any] = []
        self.writes = 0
        self.events: list[tuple[str, str]] = []

    async def get(self, kind: Any, namespace: str, name: str) -> Obj:
        if self.obj is None:
            raise NotFound("gone")
        return copy.deepcopy(self.obj)

    async def replace_status(self, kind: Any, body: Obj) -> Obj:
        if self.interfere:
            self.interfere.pop(0)(self)
        if body["metadata"]["resourceVersion"] != self.obj["metadata"]["resourceVersion"]:
            raise Conflict("stale")
        self.version += 1
        self.writes += 1
        self.obj = {**copy.deepcopy(body), "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
        return copy.deepcopy(self.obj)

    def post_event_soon(self, obj: Obj, reason: str, message: str, *, type_: str = "Normal") -> None:
        self.events.append((reason, message))

    def someone_writes(self, status: dict[str, Any]) -> None:
        self.version += 1
        self.obj = {**self.obj, "status": {**self.obj["status"], **status}}
        self.obj["metadata"] = {**self.obj["metadata"], "resourceVersion": str(self.version)}


def incident(status: IncidentStatus | None = None) -> Obj:
    spec = IncidentSpec(title="checkout down", severity="SEV2", service="checkout")
    body: Obj = {"metadata": {"namespace": "shop", "name": "inc", "uid": "u1", "generation": 1}, "spec": spec.wire()}
    body["status"] = (status or initial_status(T0, how="alert")).wire()
    return body


async def no_sleep(_: float) -> None:
    return None


def turns(store: Store, attempts: int = 10) -> Turns:
    return Turns(store, lambda: T0, move, attempts=attempts, sleep=no_sleep)  # type: ignore[arg-type]


class Triaging(Concern):
    """Writes triage (its part), and tries to write outside it too: the shell must drop that."""

    name = "triage"
    owns = Ownership(frozenset({"triage"}))

    def __init__(self) -> None:
        self.decided_on: list[str | None] = []

    def decide(self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Any, now: datetime) -> Decision:
        self.decided_on.append(status.assignee)
        chosen = TriageResult(runbook="rollback", confidence=0.7, source="rules", at=now)
        trespass = status.model_copy(update={"triage": chosen, "assignee": "mallory", "state": IncidentState.CLOSED})
        return Decision(
            append_timeline(trespass, now, "Triaged", "rollback fits"),
            notices=[Notice("Triaged", "rollback fits")],
            moves=[Move(IncidentState.INVESTIGATING, "triage looked")],
        )


async def test_a_concern_writes_its_part_its_timeline_and_asks_moves_of_the_lifecycle() -> None:
    store = Store(incident())
    outcome = await turns(store).run(("shop", "inc"), [Triaging()])
    written = IncidentStatus.model_validate(store.obj["status"])
    assert written.triage is not None and written.triage.runbook == "rollback"
    assert written.assignee is None  # not its part: dropped
    assert written.state == IncidentState.INVESTIGATING  # not CLOSED: only through the state machine's move
    assert [e.type for e in written.timeline][-2:] == ["Triaged", "Investigating"]
    assert store.writes == 1 and store.events == [("Triaged", "rollback fits")]
    assert outcome.written is not None and not outcome.gave_up


async def test_a_lost_race_is_read_again_and_decided_again_on_the_new_status() -> None:
    store = Store(incident())
    store.interfere = [lambda s: s.someone_writes({"assignee": "alice"})]  # a human, between our read and write
    concern = Triaging()
    before = STATUS_WRITES.labels("triage", "conflict")._value.get()
    await turns(store).run(("shop", "inc"), [concern])
    assert concern.decided_on == [None, "alice"]  # the second decision saw the human's change
    written = IncidentStatus.model_validate(store.obj["status"])
    assert written.assignee == "alice" and written.triage is not None  # both survive
    assert STATUS_WRITES.labels("triage", "conflict")._value.get() == before + 1


async def test_the_bound_is_the_same_for_every_caller_a_gave_up_outcome_a_log_line_and_the_metric(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store(incident())
    store.interfere = [lambda s, n=n: s.someone_writes({"notesSeen": n}) for n in range(5)]
    before = STATUS_WRITES.labels("triage", "gave_up")._value.get()
    outcome = await turns(store, attempts=3).run(("shop", "inc"), [Triaging()])
    assert outcome.gave_up and outcome.next_at["triage"] is not None and store.writes == 0
    assert STATUS_WRITES.labels("triage", "gave_up")._value.get() == before + 1
    assert any("kept changing" in r.message and r.levelname == "WARNING" for r in caplog.records)


async def test_nothing_to_change_writes_nothing_and_a_deleted_incident_is_gone() -> None:
    store = Store(incident())

    class Idle(Concern):
        name = "idle"

        def decide(
            self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Any, now: datetime
        ) -> Decision:
            return Decision(status)

    outcome = await turns(store).run(("shop", "inc"), [Idle()])
    assert store.writes == 0 and outcome.written is not None
    store.obj = None  # type: ignore[assignment]
    assert (await turns(store).run(("shop", "inc"), [Idle()])).gone


def test_fields_no_model_knows_and_other_concerns_parts_survive_a_merge() -> None:
    base = IncidentStatus.model_validate({**initial_status(T0, how="x").wire(), "postmortem": {"name": "pm-1"}})
    base = base.model_copy(update={"triage": TriageResult(runbook="a", source="rules")})
    conditions = set_condition(base.conditions, "Remediated", "False", "Running", "x", now=T0)
    decided = base.model_copy(update={"conditions": conditions, "triage": None, "assignee": "x"})
    merged = merge(base, decided, Ownership(frozenset({"remediation"}), frozenset({"Remediated"})))
    assert merged.status.wire()["postmortem"] == {"name": "pm-1"}
    assert merged.status.triage is not None and merged.status.assignee is None
    assert {c.type for c in merged.status.conditions} >= {"Remediated", "Acknowledged", "Resolved"}
    assert sorted(merged.trespassed) == ["assignee", "triage"]


def test_the_lifecycle_owns_the_acknowledged_and_resolved_conditions() -> None:
    assert {"Acknowledged", "Resolved"} <= LIFECYCLE.conditions and "state" in LIFECYCLE.fields
