"""Readiness verdicts: what the schema cannot check, explained in one reason and one message."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from incidentops.api.v1alpha1.escalationpolicy import EscalationPolicySpec
from incidentops.api.v1alpha1.runbook import RunbookSpec
from incidentops.readiness.checks import SecretUnreadable, Verdict, check_escalation_policy, check_runbook
from incidentops.readiness.verdicts import _invalid


class Everything:
    """A cluster in which every referenced object and Secret key exists."""

    async def exists(self, kind: str, namespace: str, name: str) -> bool:
        return True

    async def secret_has_key(self, namespace: str, name: str, key: str) -> bool | None:
        return True


def _level(name: str, after: str) -> dict[str, Any]:
    return {
        "name": name,
        "after": after,
        "targets": [{"type": "user", "name": name}],
        "channels": [{"type": "email", "to": [f"{name}@example.com"]}],
    }


def _policy(*afters: str, times: int = 0) -> EscalationPolicySpec:
    levels = [_level(f"l{i}", after) for i, after in enumerate(afters)]
    return EscalationPolicySpec.model_validate({"levels": levels, "repeat": {"times": times}})


def _check_policy(spec: EscalationPolicySpec) -> Verdict:
    return asyncio.run(check_escalation_policy(spec, "ns", Everything()))


@pytest.mark.parametrize("afters", [("0m", "1d"), ("12h", "1d", "1w", "1y"), ("0s", "23h", "1d")])
def test_increasing_delays_in_days_are_ready(afters: tuple[str, ...]) -> None:
    assert _check_policy(_policy(*afters)).ready


@pytest.mark.parametrize(
    ("afters", "later", "earlier"),
    [
        (("1d", "12h"), "l1: after 12h", "l0's 1d"),
        (("0m", "24h", "1d"), "l2: after 1d", "l1's 24h"),
        (("1w", "2d"), "l1: after 2d", "l0's 1w"),
    ],
)
def test_delays_in_days_that_do_not_increase_are_not_ready(afters: tuple[str, ...], later: str, earlier: str) -> None:
    """The apiserver cannot compare such delays (CEL has no days); the model admits them, readiness refuses."""
    verdict = _check_policy(_policy(*afters))
    assert not verdict.ready
    assert verdict.reason == "DelaysNotIncreasing"
    assert f"level {later} is not later than level {earlier}" in verdict.message
    assert "strictly increase" in verdict.message


def test_every_out_of_order_pair_is_listed() -> None:
    verdict = _check_policy(_policy("1d", "1h", "1d", "1h"))
    assert verdict.reason == "DelaysNotIncreasing"
    assert [p.split(":")[0] for p in verdict.problems] == ["level l1", "level l3"]
    assert verdict.message.endswith("(and 1 more)")


@pytest.mark.parametrize(
    ("afters", "times", "message"),
    [
        (("0m",), 0, "1 level, does not repeat"),
        (("0m", "5m"), 1, "2 levels, repeats 1 time"),
        (("0m", "5m", "1d"), 2, "3 levels, repeats 2 times"),
    ],
)
def test_ready_message_counts_in_good_english(afters: tuple[str, ...], times: int, message: str) -> None:
    verdict = _check_policy(_policy(*afters, times=times))
    assert verdict.ready and verdict.reason == "Valid"
    assert verdict.message == message


@pytest.mark.parametrize(("steps", "count"), [(1, "1 step"), (2, "2 steps")])
def test_runbook_message_counts_steps(steps: int, count: str) -> None:
    spec = RunbookSpec.model_validate(
        {"steps": [{"name": f"s{i}", "action": "notify", "params": {"message": "hi"}} for i in range(steps)]}
    )
    verdict = asyncio.run(check_runbook(spec, "ns", Everything()))
    assert verdict.ready
    assert verdict.message.startswith(f"{count}, approval-gated")


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


class SecretsByNameOnly(Everything):
    """The chart's RBAC: the operator may get only the Secrets it was named."""

    async def secret_has_key(self, namespace: str, name: str, key: str) -> bool | None:
        if name != "paging":
            raise SecretUnreadable(f"not allowed: secrets {name!r} is forbidden")
        return True


def test_a_secret_the_operator_may_not_read_says_how_to_grant_it() -> None:
    level = {
        "name": "primary",
        "after": "0s",
        "targets": [{"type": "user", "name": "alice"}],
        "channels": [
            {"type": "slack", "secretRef": {"name": "paging", "key": "url"}},
            {"type": "pagerduty", "secretRef": {"name": "database", "key": "password"}},
        ],
    }
    spec = EscalationPolicySpec.model_validate({"levels": [level]})
    verdict = asyncio.run(check_escalation_policy(spec, "shop", SecretsByNameOnly()))
    assert (verdict.ready, verdict.reason) == (False, "SecretNotReadable")
    assert "'database'" in verdict.message and "rbac.secretNames" in verdict.message
