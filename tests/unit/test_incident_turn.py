"""The Incident turn shell with an in-memory store: owned parts, conflicts decided again, the bound and its outcome.

The store is a stand-in for the apiserver's optimistic concurrency only (get, and a status PUT that
fails with 409 on a stale resourceVersion); the real apiserver is exercised in the integration tests.
"""

from __future__ import annotations

import copy
import inspect
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from incidentops.api.v1alpha1.common import Severity
from incidentops.api.v1alpha1.conditions import set_condition
from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentState, IncidentStatus, StepState, TriageResult
from incidentops.api.v1alpha1.runbook import RunbookSpec
from incidentops.concern import Concern, Decision, Move, Notice, Ownership, WatchedConcern, merge
from incidentops.config import Config, load
from incidentops.deadlines import Deadlines
from incidentops.escalation.concern import Escalation
from incidentops.incidents.note import Note
from incidentops.incidents.scheduler import IncidentScheduler
from incidentops.incidents.turn import EFFECT_RETRY, Turns
from incidentops.ingest.alerts import Alert
from incidentops.ingest.concern import Alerts
from incidentops.kube import Conflict, NotFound, Obj, Unavailable
from incidentops.lifecycle.concern import LIFECYCLE, Lifecycle, move
from incidentops.lifecycle.machine import append_timeline, initial_status
from incidentops.metrics import STATUS_WRITES
from incidentops.remediation import engine
from incidentops.remediation.concern import Observation, Remediation
from incidentops.remediation.guards import Verdict
from incidentops.triage.concern import Triage

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
        self.others: dict[str, list[Obj]] = {}  # other kinds (Runbooks, EscalationPolicies) by kind
        self.client = SimpleNamespace(apiserver_url="https://127.0.0.1:6443", service=None)

    async def get(self, kind: Any, namespace: str, name: str) -> Obj:
        if kind.kind != "Incident":
            found = [o for o in self.others.get(kind.kind, []) if o["metadata"]["name"] == name]
            if not found:
                raise NotFound(name)
            return copy.deepcopy(found[0])
        if self.obj is None:
            raise NotFound("gone")
        return copy.deepcopy(self.obj)

    async def patch_labels(self, kind: Any, namespace: str, name: str, labels: dict[str, str]) -> None:
        self.obj["metadata"]["labels"] = {**(self.obj["metadata"].get("labels") or {}), **labels}

    async def list(self, kind: Any, namespace: str) -> list[Obj]:
        return copy.deepcopy(self.others.get(kind.kind, []))

    async def replace_status(self, kind: Any, body: Obj) -> Obj:
        if self.interfere:
            interfering = self.interfere.pop(0)(self)  # another writer, between our read and our write
            if inspect.isawaitable(interfering):
                await interfering
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
    base = IncidentStatus.model_validate({**initial_status(T0, how="x").wire(), "retrospective": {"name": "pm-1"}})
    base = base.model_copy(update={"triage": TriageResult(runbook="a", source="rules")})
    conditions = set_condition(base.conditions, "Remediated", "False", "Running", "x", now=T0)
    decided = base.model_copy(update={"conditions": conditions, "triage": None, "assignee": "x"})
    merged = merge(base, decided, Ownership(frozenset({"remediation"}), frozenset({"Remediated"})))
    assert merged.status.wire()["retrospective"] == {"name": "pm-1"}
    assert merged.status.triage is not None and merged.status.assignee is None
    assert {c.type for c in merged.status.conditions} >= {"Remediated", "Acknowledged", "Resolved"}
    assert sorted(merged.trespassed) == ["assignee", "triage"]


def test_the_lifecycle_owns_the_acknowledged_and_resolved_conditions() -> None:
    assert {"Acknowledged", "Resolved"} <= LIFECYCLE.conditions and "state" in LIFECYCLE.fields


# -- every concern decides again on what it reads after a lost race ---------------------------------
#
# Each test lets another writer land between a concern's read and its write (a human, or a second
# operator process running the same concern through its own shell), and shows that the concern's
# second decision is made on the status as it now is: nothing the other wrote is undone, nothing
# is done twice.

ACK_SPEC = {"acknowledgement": {"by": "alice"}}
RUNBOOK_SPEC = {"automatic": True, "steps": [{"name": "restart", "action": "restart", "target": {"name": "web"}}]}
POLICY_SPEC = {
    "levels": [
        {
            "name": "primary",
            "after": "0s",
            "targets": [{"type": "user", "name": "alice"}],
            "channels": [{"type": "webhook", "url": "https://hooks.example.com/page"}],
        }
    ]
}


def config() -> Config:
    return load({"INCIDENTOPS_WEBHOOK_AUTH": "none"})


def other_kind(kind: str, name: str, spec: dict[str, Any]) -> Obj:
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "Valid",
        "message": "",
        "lastTransitionTime": "2026-11-23T03:00:00Z",
    }
    return {
        "metadata": {"namespace": "shop", "name": name, "generation": 1},
        "spec": spec,
        "status": {"observedGeneration": 1, "conditions": [ready]},
    }


def resolved_by_a_human(store: Store) -> None:
    status = IncidentStatus.model_validate(store.obj["status"])
    resolved = move(status, Move(IncidentState.RESOLVED, "fixed by hand", actor="bob"), T0, 1)
    store.someone_writes(resolved.wire())


def web_alert(key: str) -> Alert:
    labels = {"alertname": "WebDown", "instance": key}
    return Alert(
        dedup_key=key, fingerprint=key, name="WebDown", firing=True, labels=labels,
        severity=Severity.SEV2, service="web", namespace="shop", source="test",
    )  # fmt: skip


def alerts_concern(key: str) -> Alerts:
    return Alerts(
        [web_alert(key)], created=False, window=timedelta(minutes=30), auto_resolve=True, recent_limit=10,
        namespace="shop",
    )  # fmt: skip


async def test_lifecycle_applies_the_acknowledgement_to_the_status_that_grew_meanwhile() -> None:
    body = incident()
    body["spec"].update(ACK_SPEC)
    body["metadata"]["generation"] = 2
    store = Store(body)
    grown = {**store.obj["status"]["alerts"], "count": 7}
    store.interfere = [lambda s: s.someone_writes({"alerts": grown})]  # the ingester folded in alerts

    await turns(store).run(("shop", "inc"), [Lifecycle(store)])  # type: ignore[arg-type]
    written = IncidentStatus.model_validate(store.obj["status"])
    assert written.acknowledged_by == "alice" and written.state == IncidentState.ACKNOWLEDGED
    assert written.alerts.count == 7  # the lifecycle owns alerts too: its first decision would have undone this
    assert store.writes == 1 and [e.type for e in written.timeline].count("Acknowledged") == 1


async def test_alerts_from_two_processes_both_count_and_a_resolved_incident_refuses_the_next_batch() -> None:
    store = Store(incident())
    second = turns(store)
    store.interfere = [lambda s: second.run(("shop", "inc"), [alerts_concern("b")])]
    await turns(store).run(("shop", "inc"), [alerts_concern("a")])
    written = IncidentStatus.model_validate(store.obj["status"])
    assert written.alerts.count == 2 and written.alerts.firing == 2  # neither batch lost

    store.interfere = [resolved_by_a_human]
    late = alerts_concern("c")
    outcome = await turns(store).run(("shop", "inc"), [late])
    written = IncidentStatus.model_validate(store.obj["status"])
    assert late.refused and written.state == IncidentState.RESOLVED and written.alerts.count == 2
    assert outcome.decisions == {}  # the ingester opens the next episode instead


async def test_triage_does_not_choose_for_an_incident_resolved_while_it_read_the_runbooks() -> None:

    store = Store(incident())
    store.others["Runbook"] = [other_kind("Runbook", "restart-web", RUNBOOK_SPEC)]
    store.interfere = [resolved_by_a_human]
    await turns(store).run(("shop", "inc"), [Triage(store)])  # type: ignore[arg-type]
    written = IncidentStatus.model_validate(store.obj["status"])
    assert written.state == IncidentState.RESOLVED and written.triage is None and store.writes == 0


async def test_a_step_another_process_started_meanwhile_is_not_started_again() -> None:

    runbook = RunbookSpec.model_validate(RUNBOOK_SPEC)

    class Responder(Remediation):
        """The real decide; observe reads the step as the cluster would show it (no apiserver here)."""

        def __init__(self) -> None:
            super().__init__(store, config(), lambda: T0, None)  # type: ignore[arg-type]
            self.acted: list[Any] = []

        async def observe(self, obj: Obj, status: IncidentStatus, now: datetime, carried: Any) -> Any:
            assert status.remediation is not None
            if status.remediation.steps[0].state == StepState.RUNNING:
                seen = engine.Observed(happened=False)  # the other process's restart is still in flight
            else:
                seen = engine.Observed(diff=["restartedAt: <none> -> now"], verdict=Verdict("automatic"))
            return Observation("steps", runbook, approvals={}, step=seen, needs="restart")

        async def act(self, written: Obj, decision: Decision) -> Any:
            self.acted.extend(decision.effects)
            return None

    status = initial_status(T0, how="alert").model_copy(
        update={
            "triage": TriageResult(runbook="restart-web", confidence=0.7, source="rules", at=T0),
            "remediation": engine.start("restart-web", runbook, "matches"),
        }
    )
    store = Store(incident(status))
    first, second = Responder(), Responder()
    store.interfere = [lambda s: turns(s).run(("shop", "inc"), [second])]
    await turns(store).run(("shop", "inc"), [first])
    assert len(second.acted) == 1 and first.acted == []  # one restart, by the process that won the write
    written = IncidentStatus.model_validate(store.obj["status"])
    assert written.remediation is not None and written.remediation.steps[0].state == StepState.RUNNING


async def test_a_level_another_process_claimed_meanwhile_is_not_paged_again() -> None:

    class Pager(Escalation):
        """The real observe and decide; act records the claimed pages instead of sending them."""

        def __init__(self) -> None:
            super().__init__(store, config(), lambda: T0)  # type: ignore[arg-type]
            self.acted: list[str] = []

        async def act(self, written: Obj, decision: Decision) -> Any:
            self.acted += [d.idempotency_key for claimed in decision.effects for d in claimed.deliveries]
            return None

    store = Store(incident())
    store.others["EscalationPolicy"] = [other_kind("EscalationPolicy", "oncall", POLICY_SPEC)]
    first, second = Pager(), Pager()
    store.interfere = [lambda s: turns(s).run(("shop", "inc"), [second])]
    await turns(store).run(("shop", "inc"), [first])
    assert len(second.acted) == 1 and first.acted == []  # paged once, by the process that won the write
    written = IncidentStatus.model_validate(store.obj["status"])
    assert written.escalation is not None and [d.event for d in written.escalation.deliveries] == ["page"]


async def test_a_note_another_process_added_meanwhile_is_not_added_twice() -> None:

    store = Store(incident())
    gone = ("DetectionRuleGone", "DetectionRule web-rule was deleted")
    store.interfere = [lambda s: turns(s).run(("shop", "inc"), [Note(*gone)])]
    outcome = await turns(store).run(("shop", "inc"), [Note(*gone)])
    written = IncidentStatus.model_validate(store.obj["status"])
    assert [(e.type, e.message) for e in written.timeline].count(gone) == 1 and outcome.decisions == {}


# -- effects: one concern's failure is its own; a result not yet recorded is kept ---------------------


class Sending(WatchedConcern):
    """Sends once, then records that it did (in triage's place: any part of its own will do)."""

    def __init__(self, name: str = "sending", fails: bool = False) -> None:
        self.name = name
        self.owns = Ownership(frozenset({"triage"}))
        self.fails = fails
        self.sent = 0

    def wake(self, body: Any, now: datetime) -> datetime | None:
        return now if not (body.get("status") or {}).get("triage") else None

    def decide(self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Any, now: datetime) -> Decision:
        if status.triage is not None:
            return Decision(status)
        if observed == "delivered":  # the result of the send: record it
            return Decision(status.model_copy(update={"triage": TriageResult(source="rules", at=now)}))
        return Decision(status, effects=["page"])

    async def act(self, written: Obj, decision: Decision) -> Any:
        if self.fails:
            raise Unavailable("the apiserver went away")
        self.sent += 1
        return "delivered"


async def test_one_concerns_failed_effect_neither_stops_the_others_nor_loses_their_results() -> None:
    store = Store(incident())
    failing, sending = Sending("failing", fails=True), Sending("sending")
    failing.owns = Ownership(frozenset({"assignee"}))  # parts of their own
    outcome = await turns(store).run(("shop", "inc"), [failing, sending])
    assert sending.sent == 1 and outcome.carried == {"sending": "delivered"}
    assert outcome.again_for == {"sending"}
    assert outcome.next_at["failing"] == T0 + EFFECT_RETRY  # it looks again, later


async def test_a_sent_result_whose_recording_failed_is_recorded_later_never_sent_again() -> None:
    store = Store(incident())
    now = [T0]
    sending = Sending()
    shell = Turns(store, lambda: now[0], move, sleep=no_sleep)  # type: ignore[arg-type]
    scheduler = IncidentScheduler(shell, [sending], Deadlines(lambda: now[0]), lambda: now[0])  # type: ignore[arg-type]

    def apiserver_away(_: Store) -> None:
        raise Unavailable("503 while recording")

    store.interfere.append(apiserver_away)
    scheduler.observe(store.obj)
    again = await scheduler._work(("shop", "inc"))
    assert sending.sent == 1 and store.obj["status"].get("triage") is None  # sent, not yet recorded
    assert again is not None
    now[0] = again
    await scheduler._work(("shop", "inc"))
    assert sending.sent == 1  # not sent again: the kept result was recorded
    assert store.obj["status"]["triage"]["source"] == "rules"
