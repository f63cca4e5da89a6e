"""The shipped sample policies are valid and route by severity as REQUIREMENTS.md describes."""

from __future__ import annotations

from pathlib import Path

import yaml

from incidentops.api.v1alpha1.escalationpolicy import EscalationPolicySpec
from incidentops.escalation.policies import choose_policy

DIRECTORY = Path(__file__).resolve().parents[2] / "escalation-policies"


def load() -> list[tuple[str, EscalationPolicySpec]]:
    policies = []
    for path in sorted(DIRECTORY.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc["kind"] == "EscalationPolicy":
            policies.append((doc["metadata"]["name"], EscalationPolicySpec.model_validate(doc["spec"])))
    return policies


def test_every_severity_has_exactly_the_policy_it_should() -> None:
    policies = load()
    chosen = {
        sev: choose_policy("shop", None, sev, "checkout", policies).name
        for sev in ("SEV1", "SEV2", "SEV3", "SEV4", "SEV5")
    }
    assert chosen == {
        "SEV1": "sev1-everyone-by-phone",
        "SEV2": "sev2-primary-and-secondary",
        "SEV3": "sev3-incident-channel-and-email",
        "SEV4": "sev4-team-channel",
        "SEV5": "sev4-team-channel",
    }


def test_sev1_pages_by_phone_and_sev4_wakes_nobody() -> None:
    policies = dict(load())
    sev1 = policies["sev1-everyone-by-phone"]
    assert all(any(c.type == "phone" for c in level.channels) for level in sev1.levels)
    sev4 = policies["sev4-team-channel"]
    assert not {c.type for level in sev4.levels for c in level.channels} & {"phone", "sms", "pagerduty"}
