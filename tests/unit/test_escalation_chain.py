"""The escalation decision with an injected clock: levels on time, acknowledgement, repeats, resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.conditions import set_condition
from incidentops.api.v1alpha1.escalationpolicy import EscalationPolicySpec
from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentState, IncidentStatus
from incidentops.escalation import chain
from incidentops.escalation.contacts import parse_directory
from incidentops.escalation.policies import choose_policy

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
DIRECTORY = parse_directory(
    """
users:
  alice: {email: alice@example.com, phone: "+15550001", slack: UALICE}
  bob: {phone: "+15550002"}
teams:
  sre: {members: [alice, bob]}
"""
)


def policy(**extra: Any) -> EscalationPolicySpec:
    spec: dict[str, Any] = {
        "levels": [
            {
                "name": "primary",
                "after": "0m",
                "targets": [{"type": "user", "name": "alice"}],
                "channels": [{"type": "pagerduty", "secretRef": {"name": "pd", "key": "key"}}],
            },
            {
                "name": "secondary",
                "after": "5m",
                "targets": [{"type": "team", "name": "sre"}],
                "channels": [
                    {"type": "sms", "secretRef": {"name": "tw", "key": "key"}, "sender": "+15550100"},
                    {"type": "slack", "secretRef": {"name": "sl", "key": "url"}},
                ],
            },
        ]
    }
    return EscalationPolicySpec.model_validate({**spec, **extra})


def incident(**status: Any) -> tuple[IncidentSpec, IncidentStatus]:
    spec = IncidentSpec(title="checkout down", severity="SEV2", service="checkout")
    return spec, IncidentStatus.model_validate({"state": "Detected", "detectedAt": T0, **status})


def step(
    spec: IncidentSpec, status: IncidentStatus, now: datetime, pol: EscalationPolicySpec | None = None
) -> chain.Decision:
    sit = chain.Situation(
        uid="u1",
        spec=spec,
        status=status,
        policy_name="oncall",
        policy=pol or policy(),
        policy_reason="test",
        now=now,
        directory=DIRECTORY,
    )
    return chain.decide(sit)


def pages(status: IncidentStatus) -> list[tuple[int, str, str]]:
    esc = status.escalation
    assert esc is not None
    return [(d.level, d.channel, d.target) for d in esc.deliveries if d.event == "page"]


def test_first_level_is_paged_at_detection_and_the_second_is_due_after_its_delay() -> None:
    spec, status = incident()
    d = step(spec, status, T0)
    assert pages(d.status) == [(1, "pagerduty", "alice")]
    esc = d.status.escalation
    assert esc is not None and esc.level == 1 and esc.next_level == 2
    assert esc.next_escalation_at == T0 + timedelta(minutes=5)
    assert [f.level for f in d.fired] == [1]
    # deciding again at the same time changes nothing: nothing is paged twice
    again = step(spec, d.status, T0 + timedelta(seconds=10))
    assert again.status.escalation == esc and not again.fired


def test_second_level_fires_at_its_deadline_not_before() -> None:
    spec, status = incident()
    first = step(spec, status, T0).status
    before = step(spec, first, T0 + timedelta(minutes=5) - timedelta(milliseconds=1))
    assert not before.fired
    at = step(spec, first, T0 + timedelta(minutes=5))
    assert [f.level for f in at.fired] == [2]
    # per person for sms (the team expands to its members), once for slack
    assert pages(at.status)[1:] == [(2, "sms", "alice"), (2, "sms", "bob"), (2, "slack", "sre")]
    # The last level gets as long to answer as it waited after level 1 (5m) before "nobody acknowledged".
    esc = at.status.escalation
    assert esc is not None and esc.stopped is None and esc.next_escalation_at == T0 + timedelta(minutes=10)
    assert not any(e.type == "EscalationExhausted" for e in at.status.timeline)
    almost = step(spec, at.status, T0 + timedelta(minutes=10) - timedelta(milliseconds=1)).status
    assert almost.escalation is not None and almost.escalation.stopped is None
    done = step(spec, at.status, T0 + timedelta(minutes=10))
    esc = done.status.escalation
    assert esc is not None and esc.stopped == "Exhausted" and esc.next_escalation_at is None
    [exhausted] = [e for e in done.status.timeline if e.type == "EscalationExhausted"]
    assert exhausted.message == "every level of oncall was paged and nobody acknowledged within 5m of the last page"
    assert not done.fired


def test_a_one_level_policy_waits_its_repeat_interval_before_it_is_exhausted() -> None:
    spec, status = incident()
    single = EscalationPolicySpec.model_validate({"levels": [policy().levels[0].wire()]})
    paged = step(spec, status, T0, single).status
    assert paged.escalation is not None and paged.escalation.stopped is None
    assert paged.escalation.next_escalation_at == T0 + timedelta(minutes=30)  # after 0m: the repeat interval
    assert step(spec, paged, T0 + timedelta(minutes=30), single).status.escalation.stopped == "Exhausted"  # type: ignore[union-attr]


def test_acknowledged_before_the_deadline_stops_the_chain() -> None:
    spec, status = incident()
    first = step(spec, status, T0).status
    acked = first.model_copy(update={"acknowledged_at": T0 + timedelta(minutes=4), "acknowledged_by": "alice"})
    d = step(spec, acked, T0 + timedelta(minutes=10))
    assert [lvl for lvl, _, _ in pages(d.status)] == [1]
    esc = d.status.escalation
    assert esc is not None and esc.stopped == "Acknowledged" and esc.next_escalation_at is None
    # the one paged over PagerDuty hears of the acknowledgement, once
    assert [(x.event, x.channel) for x in esc.deliveries if x.event != "page"] == [("acknowledged", "pagerduty")]
    assert step(spec, d.status, T0 + timedelta(minutes=11)).status.escalation == esc


def test_acknowledged_exactly_at_the_deadline_still_stops_it() -> None:
    spec, status = incident()
    first = step(spec, status, T0).status
    acked = first.model_copy(update={"acknowledged_at": T0 + timedelta(minutes=5)})
    assert not step(spec, acked, T0 + timedelta(minutes=5)).fired


def test_acknowledged_after_the_deadline_the_level_was_already_paged() -> None:
    spec, status = incident()
    second = step(spec, step(spec, status, T0).status, T0 + timedelta(minutes=5)).status
    acked = second.model_copy(update={"acknowledged_at": T0 + timedelta(minutes=6)})
    d = step(spec, acked, T0 + timedelta(minutes=6))
    events = [(x.event, x.channel) for x in (d.status.escalation or chain.EscalationStatus()).deliveries]
    assert ("acknowledged", "slack") in events and ("acknowledged", "pagerduty") in events
    assert ("acknowledged", "sms") not in events  # nobody is woken to hear that


def test_repeats_run_the_chain_again_after_the_interval() -> None:
    spec, status = incident()
    pol = policy(repeat={"times": 1, "interval": "10m"})
    s = step(spec, status, T0, pol).status
    s = step(spec, s, T0 + timedelta(minutes=5), pol).status
    esc = s.escalation
    assert esc is not None and esc.round == 1 and esc.next_level == 1
    assert esc.next_escalation_at == T0 + timedelta(minutes=15)
    s = step(spec, s, T0 + timedelta(minutes=15), pol).status
    assert s.escalation is not None
    assert [(d.level, d.round) for d in s.escalation.deliveries if d.event == "page"][-1] == (1, 1)
    s = step(spec, s, T0 + timedelta(minutes=20), pol).status
    assert s.escalation is not None and s.escalation.stopped is None  # round 2's last level: 5m to answer
    s = step(spec, s, T0 + timedelta(minutes=25), pol).status
    assert s.escalation is not None and s.escalation.stopped == "Exhausted"
    assert any(e.type == "EscalationExhausted" for e in s.timeline)


def test_a_late_decision_fires_every_overdue_level_in_order() -> None:
    spec, status = incident()
    d = step(spec, status, T0 + timedelta(minutes=30))  # the operator was down
    assert [f.level for f in d.fired] == [1, 2]
    assert [f.due for f in d.fired] == [T0, T0 + timedelta(minutes=5)]


def test_resolution_mid_chain_stops_it_and_tells_everyone_paged() -> None:
    spec, status = incident()
    second = step(spec, step(spec, status, T0).status, T0 + timedelta(minutes=5)).status
    resolved = second.model_copy(update={"state": IncidentState.RESOLVED, "resolved_at": T0 + timedelta(minutes=7)})
    d = step(spec, resolved, T0 + timedelta(minutes=7))
    esc = d.status.escalation
    assert esc is not None and esc.stopped == "Resolved" and esc.next_escalation_at is None
    told = sorted((x.channel, x.target) for x in esc.deliveries if x.event == "resolved")
    assert told == [("pagerduty", "alice"), ("slack", "sre"), ("sms", "alice"), ("sms", "bob")]


def test_resolved_before_anyone_was_paged_sends_nothing() -> None:
    spec, status = incident()
    pol = policy(levels=[{**policy().levels[0].wire(), "after": "1m"}])
    s = step(spec, status, T0, pol).status
    resolved = s.model_copy(update={"state": IncidentState.RESOLVED})
    esc = step(spec, resolved, T0 + timedelta(minutes=2), pol).status.escalation
    assert esc is not None and esc.deliveries == []


def test_a_human_escalation_request_pages_the_next_level_now_once() -> None:
    spec, status = incident()
    first = step(spec, status, T0).status
    request = {"by": "alice", "at": T0 + timedelta(minutes=1), "reason": "need db help"}
    asked = IncidentSpec.model_validate({**spec.wire(), "escalationRequest": request})
    d = step(asked, first, T0 + timedelta(minutes=1))
    assert [(f.level, f.manual) for f in d.fired] == [(2, True)]
    assert step(asked, d.status, T0 + timedelta(minutes=2)).fired == []
    assert any(e.type == "EscalationRequested" and e.actor == "alice" for e in d.status.timeline)


def test_remediation_failure_pages_the_first_level_before_its_delay() -> None:
    spec, status = incident()
    pol = policy(levels=[{**policy().levels[0].wire(), "after": "10m"}])
    s = step(spec, status, T0, pol).status
    assert not pages(s)
    failed = s.model_copy(
        update={"conditions": set_condition(s.conditions, "Escalated", "True", "RemediationFailed", "x", now=T0)}
    )
    d = step(spec, failed, T0 + timedelta(minutes=1), pol)
    assert pages(d.status) == [(1, "pagerduty", "alice")]
    assert d.status.escalation is not None and "remediation-failed" in d.status.escalation.announced


def test_no_policy_is_a_condition_and_a_warning_not_silence() -> None:
    spec, status = incident()
    sit = chain.Situation("u1", spec, status, None, None, "no policy matches SEV2", T0)
    d = chain.decide(sit)
    cond = next(c for c in d.status.conditions if c.type == "Notified")
    assert (cond.status, cond.reason) == ("False", "NoPolicy")
    assert d.notices and d.notices[0].warning
    assert chain.decide(chain.Situation("u1", spec, d.status, None, None, "x", T0)).notices == []


def test_a_failed_delivery_sets_the_condition() -> None:
    spec, status = incident()
    s = step(spec, status, T0).status
    esc = s.escalation
    assert esc is not None
    failed = esc.model_copy(
        update={"deliveries": [esc.deliveries[0].model_copy(update={"state": "Failed", "message": "HTTP 500"})]}
    )
    d = step(spec, s.model_copy(update={"escalation": failed}), T0 + timedelta(seconds=1))
    cond = next(c for c in d.status.conditions if c.type == "Notified")
    assert (cond.status, cond.reason) == ("False", "NotificationFailed") and "HTTP 500" in cond.message


def test_policy_choice_prefers_the_ref_then_the_most_specific_then_the_default() -> None:
    any_ = policy()
    sev1 = policy(match={"severities": ["SEV1"]})
    both = policy(match={"severities": ["SEV1"], "services": ["checkout"]})
    pols = [("a-any", any_), ("b-sev1", sev1), ("c-both", both)]
    assert choose_policy("shop", "mine", "SEV1", "checkout", pols).name == "mine"
    assert choose_policy("shop", None, "SEV1", "checkout", pols).name == "c-both"
    assert choose_policy("shop", None, "SEV1", "cart", pols).name == "b-sev1"
    assert choose_policy("shop", None, "SEV3", "cart", pols).name == "a-any"
    fallback = choose_policy("shop", None, "SEV3", "cart", [("b-sev1", sev1)], default="ops/default")
    assert (fallback.namespace, fallback.name) == ("ops", "default")
    assert choose_policy("shop", None, "SEV3", None, []).name is None


def test_an_incident_over_before_escalation_looked_is_left_as_it_is() -> None:
    """No policy, and resolved before the first look: writing an empty escalation part would be a write for nothing."""
    spec, status = incident(state="Resolved")
    sit = chain.Situation(
        uid="u1", spec=spec, status=status, policy_name=None, policy=None, policy_reason="none", now=T0
    )
    decided = chain.decide(sit)
    assert decided.status == status and decided.status.escalation is None and not decided.notices
