"""Guard decisions: each hold says why; refusals beat approvals; the storm budget caps automatic actions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from incidentops.api.v1alpha1.runbook import Action, RunbookSpec
from incidentops.remediation.actions.delete_pod import choose_pods
from incidentops.remediation.guards import PastRun, Proposal, decide

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def restart_runbook(**spec: object) -> RunbookSpec:
    steps = [{"name": "restart", "action": "restart", "target": {"kind": "Deployment", "name": "api"}}]
    return RunbookSpec.model_validate({"steps": steps, "automatic": True, **spec})


BASE = Proposal(
    runbook_name="restart-api",
    runbook=restart_runbook(),
    action=Action.RESTART,
    target="shop/Deployment/api",
    target_namespace="shop",
    target_opted_out=False,
    category="availability",
    confidence=0.9,
    now=NOW,
)


def reasons(proposal: Proposal) -> tuple[str, list[str]]:
    verdict = decide(proposal)
    return verdict.mode, [h.reason for h in verdict.holds]


def test_a_confident_low_risk_automatic_runbook_acts_alone() -> None:
    assert reasons(BASE) == ("automatic", [])


def test_each_reason_for_a_human_is_named() -> None:
    assert reasons(replace(BASE, runbook=restart_runbook(automatic=False))) == ("approval", ["NotAutomatic"])
    assert reasons(replace(BASE, confidence=0.5)) == ("approval", ["LowConfidence"])
    assert reasons(replace(BASE, category="security")) == ("approval", ["HumansFirst"])
    assert reasons(replace(BASE, network_partition=True)) == ("approval", ["HumansFirst"])
    medium = replace(BASE, runbook=restart_runbook(risk="medium"))
    assert reasons(medium) == ("approval", ["RiskAboveCeiling"])
    assert reasons(replace(medium, risk_ceiling="medium")) == ("automatic", [])


def test_cooldown_per_target_and_runs_per_hour_come_from_history() -> None:
    last = PastRun("other-runbook", "shop/Deployment/api", NOW - timedelta(minutes=5), automatic=False)
    assert reasons(replace(BASE, history=[last])) == ("approval", ["Cooldown"])  # across runbooks, default 10m
    assert reasons(replace(BASE, history=[replace(last, at=NOW - timedelta(minutes=11))])) == ("automatic", [])
    runs = [PastRun("restart-api", f"shop/Deployment/x{i}", NOW - timedelta(minutes=20 + i), False) for i in range(3)]
    assert reasons(replace(BASE, history=runs)) == ("approval", ["RateLimited"])


def test_the_storm_budget_leaves_the_rest_to_humans() -> None:
    storm = [PastRun(f"rb{i}", f"ns{i}/Deployment/d", NOW - timedelta(minutes=1), automatic=True) for i in range(3)]
    assert reasons(replace(BASE, history=storm)) == ("approval", ["StormBudgetSpent"])
    assert reasons(replace(BASE, history=storm[:2])) == ("automatic", [])
    # runs, not steps: one incident's three steps are one run of the budget
    steps = [PastRun("rb", f"ns/Deployment/d{i}", NOW - timedelta(minutes=1), True, incident="uid-1") for i in range(3)]
    assert reasons(replace(BASE, history=steps)) == ("automatic", [])


def test_refusals_hold_whatever_is_approved() -> None:
    assert reasons(replace(BASE, target_opted_out=True)) == ("refused", ["TargetOptedOut"])
    fenced = replace(BASE, runbook=restart_runbook(safety={"allowedNamespaces": ["prod"]}))
    assert reasons(fenced) == ("refused", ["NamespaceNotAllowed"])
    assert reasons(replace(BASE, planned_replicas=50)) == ("refused", ["AboveMaxScale"])  # default maxScale 20


def _pod(name: str, ready: bool, created: str, deleting: bool = False) -> dict[str, object]:
    meta: dict[str, object] = {"name": name, "uid": name, "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = created
    return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_delete_pod_blast_radius() -> None:
    stuck = [_pod("a", True, "1"), _pod("b", False, "2"), _pod("c", False, "3"), _pod("d", False, "0", deleting=True)]
    chosen, why = choose_pods(stuck)
    assert [p["metadata"]["name"] for p in chosen] == ["b", "c"] and why == "2 pods not ready"  # type: ignore[index]
    chosen, _ = choose_pods([_pod("new", True, "2"), _pod("old", True, "1")])
    assert [p["metadata"]["name"] for p in chosen] == ["old"]  # type: ignore[index]
    assert choose_pods([_pod("only", True, "1")])[0] == []
