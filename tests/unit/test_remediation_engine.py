"""The step engine with an injected clock: approvals, exactly-once keys, timeouts, onFailure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.incident import StepState
from incidentops.api.v1alpha1.runbook import RunbookSpec
from incidentops.remediation.engine import Act, Observed, decide, start, undoable, undone
from incidentops.remediation.guards import Hold, Verdict

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
AUTO = Verdict("automatic")
TARGET = {"kind": "Deployment", "name": "api"}


def runbook(*steps: dict[str, Any], verify: bool = False) -> RunbookSpec:
    body: dict[str, Any] = {"steps": [{"target": TARGET, **s} for s in steps]}
    if verify:
        body["verify"] = {"query": "up == 0"}
    return RunbookSpec.model_validate(body)


def states(decision: Any) -> list[str]:
    return [str(s.state) for s in decision.status.steps]


def test_automatic_steps_run_in_order_each_with_its_key() -> None:
    rb = runbook(
        {"name": "scale", "action": "scale", "params": {"replicas": 4}},
        {"name": "wait", "action": "wait-rollout"},
        verify=True,
    )
    status = start("scale-up", rb, "matches")
    first = decide("uid", rb, status, {}, None, T0)
    assert first.needs == "scale" and first.effects == []
    planned = Observed(diff=["spec.replicas: 2 -> 4"], before={"replicas": "2"}, verdict=AUTO)
    running = decide("uid", rb, first.status, {}, planned, T0)
    assert running.effects == [Act("scale", "uid/scale/1")] and states(running) == ["Running", "Pending"]
    step = running.status.steps[0]
    assert (step.dry_run_diff, step.before, step.started_at) == ("spec.replicas: 2 -> 4", {"replicas": "2"}, T0)
    done = decide("uid", rb, running.status, {}, Observed(happened=True), T0 + timedelta(seconds=1))
    assert states(done) == ["Succeeded", "Pending"] and done.needs == "wait"  # the next step is looked at afresh
    waiting = decide("uid", rb, done.status, {}, Observed(nothing_to_do=True, verdict=AUTO), T0)
    assert states(waiting) == ["Succeeded", "Running"] and waiting.effects == [Act("wait", "uid/wait/1")]
    finished = decide("uid", rb, waiting.status, {}, Observed(happened=True), T0 + timedelta(seconds=30))
    assert finished.status.phase == "Verifying" and states(finished) == ["Succeeded", "Succeeded"]


def test_a_step_that_needs_approval_waits_then_runs_once_approved() -> None:
    rb = runbook({"name": "rollback", "action": "rollback"})
    status = start("rb", rb, "")
    held = Verdict("approval", [Hold("RiskAboveCeiling", "medium risk is above the automatic ceiling (low)")])
    observed = Observed(diff=['image: "bad" -> "v1"'], verdict=held)
    waiting = decide("uid", rb, status, {}, observed, T0)
    assert waiting.status.phase == "AwaitingApproval" and waiting.effects == []
    assert waiting.status.steps[0].reason == "RiskAboveCeiling" and waiting.status.steps[0].dry_run_diff
    assert [n.reason for n in waiting.notices] == ["AwaitingApproval"]
    again = decide("uid", rb, waiting.status, {}, observed, T0 + timedelta(minutes=1))
    assert again.notices == [] and again.effects == []  # said once, not on every turn
    approved = decide("uid", rb, again.status, {"rollback": "alice"}, observed, T0 + timedelta(minutes=2))
    assert approved.effects == [Act("rollback", "uid/rollback/1")] and approved.status.steps[0].approved_by == "alice"


def test_requires_approval_holds_even_an_automatic_verdict() -> None:
    rb = runbook({"name": "restart", "action": "restart", "requiresApproval": True})
    waiting = decide("uid", rb, start("rb", rb, ""), {}, Observed(verdict=AUTO, diff=["x"]), T0)
    assert (
        waiting.status.steps[0].state == StepState.AWAITING_APPROVAL
        and waiting.status.steps[0].reason == "RequiresApproval"
    )


def test_an_intent_recorded_but_never_applied_is_applied_with_the_same_key() -> None:
    """kill -9 between the status write and the action: after restart, check, then act once."""
    rb = runbook({"name": "restart", "action": "restart"})
    running = decide("uid", rb, start("rb", rb, ""), {}, Observed(verdict=AUTO, diff=["x"]), T0).status
    later = T0 + timedelta(seconds=60)  # past IN_DOUBT_AFTER
    in_doubt = decide("uid", rb, running, {}, None, later)
    assert in_doubt.needs == "restart" and in_doubt.effects == []  # first: did it happen?
    acting_elsewhere = decide("uid", rb, running, {}, Observed(happened=False), T0 + timedelta(seconds=5))
    assert acting_elsewhere.effects == []  # fresh intent: whoever recorded it may be acting right now
    not_yet = decide("uid", rb, running, {}, Observed(happened=False), later)
    assert not_yet.effects == [Act("restart", "uid/restart/1")]  # same key, same attempt
    already = decide("uid", rb, running, {}, Observed(happened=True), later)
    assert already.effects == [] and already.status.phase == "Done"


def test_a_probe_times_out_and_the_run_stops() -> None:
    rb = runbook({"name": "wait", "action": "wait-rollout", "timeout": "1m"}, {"name": "restart", "action": "restart"})
    running = decide("uid", rb, start("rb", rb, ""), {}, Observed(nothing_to_do=True, verdict=AUTO), T0).status
    pending = decide("uid", rb, running, {}, Observed(happened=False), T0 + timedelta(seconds=30))
    assert pending.effects == [] and pending.needs == "wait"  # a probe waits; it never re-applies
    late = decide("uid", rb, running, {}, Observed(happened=False), T0 + timedelta(minutes=1))
    assert late.status.phase == "Failed" and states(late) == ["Failed", "Pending"]
    assert late.status.steps[0].reason == "Timeout"


def test_on_failure_rollback_undoes_the_done_steps_in_reverse() -> None:
    rb = runbook(
        {"name": "scale", "action": "scale", "params": {"replicas": 4}},
        {"name": "rollback", "action": "rollback"},
        {"name": "restart", "action": "restart", "onFailure": "rollback"},
    )
    status = start("rb", rb, "")
    for name, before in (("scale", {"replicas": "2"}), ("rollback", {"templateHash": "abc"})):
        status = decide("uid", rb, status, {}, Observed(verdict=AUTO, diff=["x"], before=before), T0).status
        status = decide("uid", rb, status, {}, Observed(happened=True), T0).status
        assert status.steps[[s.name for s in status.steps].index(name)].state == StepState.SUCCEEDED
    status = decide("uid", rb, status, {}, Observed(verdict=AUTO, diff=["x"]), T0).status
    failed = decide("uid", rb, status, {}, Observed(happened=False, error="apiserver answered 500"), T0)
    assert failed.status.phase == "Undoing" and failed.status.failure == "StepFailed" and failed.effects == []
    status = failed.status
    order = []
    while (index := undoable(status)) is not None:
        order.append(status.steps[index].name)
        status = undone(status, index, "undone", T0)
    assert order == ["rollback", "scale"] and status.phase == "Failed"
    assert states(type("D", (), {"status": status})()) == ["RolledBack", "RolledBack", "Failed"]


def test_refused_and_nothing_to_do_steps_end_without_acting() -> None:
    rb = runbook(
        {"name": "scale", "action": "scale", "params": {"replicas": 4}, "onFailure": "continue"},
        {"name": "rollback", "action": "rollback"},
    )
    status = start("rb", rb, "")
    refused = decide(
        "uid", rb, status, {}, Observed(refusal="HPAOwnsReplicas", message="the HPA owns it", verdict=AUTO), T0
    )
    assert states(refused) == ["Failed", "Pending"] and refused.needs == "rollback" and refused.effects == []
    skipped = decide(
        "uid", rb, refused.status, {}, Observed(nothing_to_do=True, message="already v1", verdict=AUTO), T0
    )
    assert states(skipped) == ["Failed", "Skipped"] and skipped.status.phase == "Done"


def test_no_runbook_says_so() -> None:
    status = start(None, None, "none of the 3 runbooks in this namespace matches")
    assert (status.phase, status.reason) == ("NoRunbook", "none of the 3 runbooks in this namespace matches")
