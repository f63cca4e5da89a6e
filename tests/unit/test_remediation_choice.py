"""Runbook choice and the rollback target on ReplicaSet histories, with times passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from incidentops.api.v1alpha1.common import Severity
from incidentops.api.v1alpha1.incident import AlertsStatus, AlertSummary, IncidentSpec, IncidentStatus
from incidentops.api.v1alpha1.runbook import RunbookSpec
from incidentops.remediation.revisions import ReplicaSetRevision, choose_target
from incidentops.triage.selection import IncidentFacts, choose

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
STEP = [{"name": "roll", "action": "rollback", "target": {"kind": "Deployment", "name": "checkout"}}]


def runbook(**match: object) -> RunbookSpec:
    return RunbookSpec.model_validate({"match": match, "steps": STEP})


def incident(**spec: object) -> tuple[IncidentSpec, IncidentStatus]:
    parsed = IncidentSpec.model_validate(
        {"title": "t", "severity": "SEV2", "service": "checkout", "labels": {"team": "payments"}, **spec}
    )
    recent = [AlertSummary(fingerprint="f", name="HighErrorRate", status="firing", labels={"pod": "p1"}, last_seen=T0)]
    return parsed, IncidentStatus(severity=Severity.SEV1, alerts=AlertsStatus(recent=recent))


def test_the_most_specific_match_wins_ties_by_name() -> None:
    spec, status = incident()
    facts = IncidentFacts.of(spec, status)
    runbooks = [
        ("any-checkout", runbook(services=["checkout"])),
        ("b-errors", runbook(services=["checkout"], alertnames=["HighErrorRate"])),
        ("a-errors", runbook(services=["checkout"], alertnames=["HighErrorRate"])),
        ("sev3-only", runbook(services=["checkout"], alertnames=["HighErrorRate"], severities=["SEV3"])),
        ("other-team", runbook(labels={"team": "search"})),
    ]
    choice = choose(spec, facts, runbooks)
    assert choice.runbook == "a-errors" and "most specific of 3" in choice.reason  # current severity is SEV1


def test_labels_match_on_any_one_alert() -> None:
    spec, status = incident()
    facts = IncidentFacts.of(spec, status)
    assert choose(spec, facts, [("pod", runbook(labels={"team": "payments", "pod": "p1"}))]).runbook == "pod"
    assert choose(spec, facts, [("pod", runbook(labels={"pod": "p2"}))]).runbook is None


def test_spec_runbook_ref_wins_and_must_exist() -> None:
    spec, status = incident(runbookRef={"name": "manual"})
    facts = IncidentFacts.of(spec, status)
    runbooks = [("manual", runbook(services=["search"])), ("auto", runbook(services=["checkout"]))]
    assert choose(spec, facts, runbooks).runbook == "manual"
    missing = choose(spec, facts, runbooks[1:])
    assert missing.runbook is None and "does not exist" in missing.reason


def rs(name: str, minutes: int, revision: int, history: tuple[int, ...] = (), template: str = "") -> ReplicaSetRevision:
    return ReplicaSetRevision(name, T0 + timedelta(minutes=minutes), revision, history, template or name)


def test_rollback_skips_the_hurried_fix_after_the_alert() -> None:
    """v1 good, v2 bad, the alert, v3 (a fix that did not help): back to v1."""
    sets = [rs("v1", 0, 1), rs("v2", 10, 2), rs("v3", 30, 3)]
    target = choose_target(sets, alert_began=T0 + timedelta(minutes=20))
    assert target.refusal is None and target.suspect and target.target and target.current
    assert (target.suspect.number, target.target.number, target.current.number) == (2, 1, 3)
    assert target.target.replica_set.name == "v1" and "1 later revision after the alert skipped" in target.reason


def test_rollback_through_a_replica_set_reused_by_an_earlier_rollback() -> None:
    """v1 (rev 1), v2 (rev 2), rolled back to v1 (now rev 3, history 1), v4 bad (rev 4), alert: back to v1."""
    sets = [rs("v1", 0, 3, (1,)), rs("v2", 10, 2), rs("v4", 40, 4)]
    target = choose_target(sets, alert_began=T0 + timedelta(minutes=45))
    assert target.target is not None and target.suspect is not None
    assert (target.suspect.number, target.target.number, target.target.replica_set.name) == (4, 3, "v1")


def test_no_recent_change_means_no_rollback() -> None:
    sets = [rs("v1", 0, 1), rs("v2", 10, 2)]
    target = choose_target(sets, alert_began=T0 + timedelta(days=3))
    assert target.refusal == "NoRecentChange" and target.target is None
    first = choose_target([rs("v1", 0, 1)], alert_began=T0 + timedelta(minutes=5))
    assert first.refusal == "NoPreviousRevision"


def test_live_template_equal_to_the_target_is_nothing_to_do() -> None:
    sets = [rs("v1", 0, 1, template="aaa"), rs("v2", 10, 2), rs("v3", 30, 3, template="aaa")]
    target = choose_target(sets, alert_began=T0 + timedelta(minutes=20))
    assert target.nothing_to_do


def test_replica_sets_are_read_from_api_objects() -> None:
    obj = {
        "metadata": {
            "name": "checkout-7d9f",
            "creationTimestamp": "2026-11-23T06:00:00Z",
            "annotations": {
                "deployment.kubernetes.io/revision": "5",
                "deployment.kubernetes.io/revision-history": "1,3",
            },
            "labels": {"pod-template-hash": "7d9f"},
        }
    }
    parsed = ReplicaSetRevision.of(obj)
    assert parsed == ReplicaSetRevision("checkout-7d9f", T0, 5, (1, 3), "7d9f")
    assert ReplicaSetRevision.of({"metadata": {"name": "x"}}) is None
