"""The pure parts around the step engine: verification windows, rules confidence, targets, the ledger,
approvals, outcomes on the Incident, and which watch events wake the responder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from incidentops.api.v1alpha1.incident import (
    Approval,
    IncidentSpec,
    IncidentState,
    IncidentStatus,
    RemediationStatus,
    RemediationStepStatus,
    StepState,
)
from incidentops.api.v1alpha1.runbook import Action, RunbookMatch, RunbookSpec, RunbookStep, Verification
from incidentops.concern import Move, Notice
from incidentops.lifecycle.concern import move
from incidentops.lifecycle.machine import initial_status
from incidentops.remediation.actions import REGISTRY
from incidentops.remediation.actions.base import Context
from incidentops.remediation.concern import wants_turn
from incidentops.remediation.guards import PastRun, accepted_approvals
from incidentops.remediation.ledger import Ledger
from incidentops.remediation.outcomes import settle
from incidentops.remediation.steps import parsed as _parsed
from incidentops.remediation.targets import NoTarget, Target, resolve
from incidentops.remediation.verification import QueryResult, begin, next_check, turn
from incidentops.triage.rules import runbook_fit

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
FIRING = QueryResult(firing=('error_ratio{service="checkout"} 0.6',))
CLEAR = QueryResult()
DOWN = QueryResult(error="Prometheus at http://prom:9090 did not answer")


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_verification_needs_a_whole_clear_window_within_the_timeout() -> None:
    spec = Verification(query="x > 0", window="30s", timeout="2m")
    progress = begin(T0)
    step = turn(spec, progress, FIRING, s(5))
    assert step.outcome is None and step.progress.clear_since is None and "still firing" in step.message
    step = turn(spec, step.progress, CLEAR, s(10))
    assert step.outcome is None and step.progress.clear_since == s(10)
    step = turn(spec, step.progress, FIRING, s(20))  # a relapse breaks the streak
    assert step.progress.clear_since is None
    step = turn(spec, step.progress, CLEAR, s(25))
    assert next_check(spec, step.progress, 15) == s(40)
    step = turn(spec, step.progress, CLEAR, s(54))
    assert step.outcome is None  # 29 s clear: not yet
    step = turn(spec, step.progress, CLEAR, s(55))
    assert step.outcome == "verified" and step.progress.finished_at == s(55)


def test_prometheus_down_never_counts_as_clear() -> None:
    spec = Verification(query="x > 0", window="10s", timeout="1m")
    step = turn(spec, begin(T0), CLEAR, s(1))
    step = turn(spec, step.progress, DOWN, s(8))
    assert step.progress.clear_since is None and "query failed" in (step.progress.last_result or "")
    step = turn(spec, step.progress, DOWN, s(60))
    assert step.outcome == "unavailable" and "did not answer" in step.message
    assert next_check(spec, begin(T0), 5) == s(5)


def test_rules_confidence_follows_how_much_the_match_pins_down() -> None:
    assert runbook_fit(RunbookMatch(), named=True).confidence == 1.0
    assert runbook_fit(RunbookMatch(), named=False).confidence == 0.3
    assert runbook_fit(RunbookMatch(alertnames=["A"]), named=False).confidence == 0.7
    both = runbook_fit(RunbookMatch(alertnames=["A"], categories=["availability"]), named=False)
    assert both.confidence == 0.8 and "categories" in both.reasoning
    many = RunbookMatch(alertnames=["A"], severities=["SEV1"], services=["x"], labels={"team": "a", "tier": "b"})
    assert runbook_fit(many, named=False).confidence == 0.95  # the ceiling without a human's word


def _spec(**extra: Any) -> IncidentSpec:
    body = {"title": "t", "severity": "SEV2", "source": "alertmanager", "dedupKey": "k", **extra}
    return IncidentSpec.model_validate(body)


def test_targets_default_to_the_incident_workload_and_stay_in_its_namespace() -> None:
    spec = _spec(affectedWorkloads=[{"kind": "Deployment", "name": "checkout"}])
    restart = RunbookStep.model_validate({"name": "r", "action": "restart"})
    assert str(resolve(restart, "shop", spec, [])) == "shop/Deployment/checkout"
    named = RunbookStep.model_validate({"name": "r", "action": "restart", "target": {"name": "api"}})
    assert resolve(named, "shop", spec, []).name == "api"
    elsewhere = RunbookStep.model_validate(
        {"name": "r", "action": "restart", "target": {"name": "api", "namespace": "kube-system"}}
    )
    with pytest.raises(NoTarget) as refused:
        resolve(elsewhere, "shop", spec, [])
    assert refused.value.reason == "OtherNamespace"
    with pytest.raises(NoTarget) as none:
        resolve(restart, "shop", _spec(), [])
    assert none.value.reason == "NoTarget"
    cordon = RunbookStep.model_validate({"name": "c", "action": "cordon"})
    assert str(resolve(cordon, "shop", spec, [{"node": "node-7"}])) == "Node/node-7"
    # The schema offers only what runs: a StatefulSet target is refused before any run could fail on it.
    with pytest.raises(ValidationError, match="'Deployment' or 'Node'"):
        RunbookStep.model_validate({"name": "r", "action": "restart", "target": {"kind": "StatefulSet"}})
    node_restart = RunbookStep.model_validate({"name": "r", "action": "restart", "target": {"kind": "Node"}})
    with pytest.raises(NoTarget, match="Deployments"):
        resolve(node_restart, "shop", spec, [])


def test_the_ledger_keeps_other_incidents_changing_steps_across_status_updates() -> None:
    ledger = Ledger()
    status = {
        "remediation": {
            "runbook": "restart",
            "steps": [
                {
                    "name": "r",
                    "action": "restart",
                    "startedAt": "2026-11-23T03:00:00Z",
                    "target": "a",
                    "automatic": True,
                },
                {"name": "w", "action": "wait-rollout", "startedAt": "2026-11-23T03:00:01Z", "target": "a"},
            ],
        }
    }
    ledger.observe("uid-1", status)
    assert ledger.history(excluding="uid-1") == []  # its own run never holds its later steps back
    [run] = ledger.history(excluding="uid-2")
    assert (run.runbook, run.target, run.at, run.automatic) == ("restart", "a", T0, True)
    ledger.record(
        "uid-3", PastRun("scale", "b", s(5.0004567), True, "uid-3")
    )  # recorded before the watch brings it back
    ledger.observe("uid-3", {})
    back = {
        "remediation": {
            "runbook": "scale",
            "steps": [{"action": "scale", "startedAt": "2026-11-23T03:00:05.000Z", "target": "b", "automatic": True}],
        }
    }
    ledger.observe("uid-3", back)  # the same run, as status writes it (milliseconds): counted once
    assert len(ledger.history(excluding="uid-2")) == 2
    assert {r.target for r in ledger.history(excluding="uid-2")} == {"a", "b"}
    ledger.forget("uid-1")  # a deleted Incident's runs still count: deleting must not reset a guard
    assert [r.target for r in ledger.history(excluding="x")] == ["a", "b"]
    assert ledger.history(excluding="x", now=T0 + timedelta(days=2)) == []  # until they age out


def test_high_risk_approvals_count_only_from_named_approvers() -> None:
    steps = [{"name": "cordon", "action": "cordon", "target": {"kind": "Node", "name": "n"}}]
    high = RunbookSpec.model_validate({"steps": steps, "risk": "high", "approvers": ["carol"]})
    medium = RunbookSpec.model_validate({"steps": steps})
    approvals = [Approval(step="cordon", by="mallory"), Approval(step="cordon", by="carol")]
    assert accepted_approvals(high, approvals) == {"cordon": "carol"}
    assert accepted_approvals(high, approvals[:1]) == {}
    assert accepted_approvals(medium, approvals) == {"cordon": "mallory"}


def _running(phase: str, state: StepState) -> RemediationStatus:
    step = RemediationStepStatus(name="rollback", action="rollback", state=state, started_at=T0)
    return RemediationStatus(runbook="rollback-bad-release", phase=phase, steps=[step], reason="r")  # type: ignore[arg-type]


def test_outcomes_move_the_incident_and_set_remediated_and_escalated() -> None:
    status = initial_status(T0, how="alert")
    chosen = RemediationStatus(
        runbook="rollback-bad-release",
        phase="Running",
        steps=[RemediationStepStatus(name="rollback", action="rollback", state=StepState.PENDING)],
    )
    status, _, moves = settle(status, chosen, [Notice("RunbookChosen", "matches")], T0)
    assert moves == []
    acting = moved(*settle(status, _running("Running", StepState.RUNNING), [], s(1)), s(1))
    assert acting.state == IncidentState.MITIGATING  # asked of the lifecycle, which allows it
    verified, shown, moves = settle(acting, _running("Verified", StepState.SUCCEEDED), [], s(30))
    verified = moved(verified, shown, moves, s(30))
    assert verified.state == IncidentState.MONITORING and verified.mitigated_at == s(30)
    # Starting a run later does not take an incident back from Monitoring to Mitigating.
    again, _, moves = settle(verified, _running("Running", StepState.RUNNING), [], s(40))
    assert moved(again, [], moves, s(40)).state == IncidentState.MONITORING
    conditions = {c.type: (c.status, c.reason) for c in verified.conditions}
    assert conditions["Remediated"] == ("True", "Verified")
    assert "RemediationVerified" in [n.reason for n in shown]
    failed_run = _running("Failed", StepState.ROLLED_BACK).model_copy(update={"failure": "VerificationFailed"})
    failed, shown, moves = settle(acting, failed_run, [], s(30), escalate=True)
    assert moves == []
    conditions = {c.type: (c.status, c.reason) for c in failed.conditions}
    assert conditions["Remediated"] == ("False", "VerificationFailed")
    assert conditions["Escalated"] == ("True", "RemediationFailed")
    assert failed.state == IncidentState.MITIGATING  # not fixed: it stays where humans pick it up
    assert {"EscalationRequested", "RemediationFailed"} <= {n.reason for n in shown}


def moved(status: IncidentStatus, shown: Any, moves: list[Move], at: datetime) -> IncidentStatus:
    """What the lifecycle makes of the moves remediation asked for."""
    for requested in moves:
        status = move(status, requested, at, None)
    return status


def _body(status: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "i", "namespace": "n", "uid": "u"}, "spec": spec, "status": status}


def test_watch_events_wake_the_responder_only_when_there_is_work() -> None:
    assert not wants_turn(_body({}))  # no status yet: the ingester's
    assert not wants_turn(_body({"state": "Detected"}))  # triage has not chosen yet: it goes first
    assert wants_turn(_body({"state": "Detected", "triage": {"source": "rules"}}))  # triaged, no run yet
    assert not wants_turn(_body({"state": "Resolved"}))
    waiting = {"phase": "AwaitingApproval", "runbook": "rb", "steps": [{"name": "x", "state": "AwaitingApproval"}]}
    assert not wants_turn(_body({"state": "Detected", "remediation": waiting}))
    assert wants_turn(_body({"state": "Detected", "remediation": waiting}, approvals=[{"step": "x", "by": "a"}]))
    assert wants_turn(_body({"state": "Resolved", "remediation": waiting}))  # to stop it
    assert wants_turn(_body({"state": "Mitigating", "remediation": {"phase": "Verifying"}}))
    done = {"phase": "Verified", "runbook": "rb"}
    assert not wants_turn(_body({"state": "Monitoring", "remediation": done}))
    assert wants_turn(_body({"state": "Monitoring", "remediation": done}, runbookRef={"name": "other"}))


def test_what_a_step_replaced_comes_back_from_status_strings() -> None:
    assert _parsed({"replicas": "2", "unschedulable": "False", "templateHash": "5d8f"}) == {
        "replicas": 2,
        "unschedulable": False,
        "templateHash": "5d8f",
    }


STEP = Target("shop", "notify", kind="Step")


def test_notify_fills_in_the_incident_and_nothing_else() -> None:
    notify = REGISTRY[Action.NOTIFY]
    context = Context(incident="shop/inc-1", facts={"service": "checkout"})
    plan = notify.plan(None, STEP, {"message": "$service is being fixed for $incident (${unknown})"}, "k", context)  # type: ignore[arg-type]
    assert notify.apply(None, plan) == "checkout is being fixed for shop/inc-1 (${unknown})"  # type: ignore[arg-type]


def test_prometheus_down_at_the_timeout_is_told_apart_from_still_firing() -> None:
    """Both fail the run (nothing was proven); the message says which it was."""
    spec = Verification(query="x > 0", window="10s", timeout="30s")
    step = turn(spec, begin(T0), FIRING, s(5))
    step = turn(spec, step.progress, DOWN, s(30))
    assert step.outcome == "unavailable" and "could not verify" in step.message
    step = turn(spec, begin(T0), FIRING, s(30))
    assert step.outcome == "failed"


def test_approvals_count_for_the_run_they_were_given_in() -> None:
    steps = [{"name": "rollback", "action": "rollback", "target": {"kind": "Deployment", "name": "a"}}]
    runbook = RunbookSpec.model_validate({"steps": steps})
    old = Approval(step="rollback", by="alice", at=s(-60))
    fresh = Approval(step="rollback", by="bob", at=s(5))
    assert accepted_approvals(runbook, [old], since=T0) == {}
    assert accepted_approvals(runbook, [old, fresh], since=T0) == {"rollback": "bob"}


def test_an_approval_for_one_runbook_never_runs_another_runbooks_step_of_the_same_name() -> None:
    """bob may approve runbook A; pointing the incident at runbook B must not run B's step in his name."""
    steps = [{"name": "restart", "action": "restart", "target": {"kind": "Deployment", "name": "a"}}]
    runbook = RunbookSpec.model_validate({"steps": steps})
    for_a = Approval(step="restart", by="bob", runbook="restart-a")  # no `at`: the time check cannot catch it
    assert accepted_approvals(runbook, [for_a], since=T0, name="restart-b") == {}
    assert accepted_approvals(runbook, [for_a], since=T0, name="restart-a") == {"restart": "bob"}


def test_network_partitions_are_named_or_labelled_not_guessed() -> None:
    from incidentops.remediation.guards import network_partition  # noqa: PLC0415

    assert network_partition({"NetworkPartition"}, [])
    assert network_partition({"ZoneNetworkPartitionDetected"}, [])
    assert network_partition({"Anything"}, [{"network-partition": "true"}])
    assert not network_partition({"KafkaOfflinePartitions"}, [{"partition": "3"}])
