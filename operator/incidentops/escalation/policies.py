"""Which EscalationPolicy pages an incident: pure.

spec.escalationPolicyRef wins; otherwise the policies of the incident's namespace whose match fits,
the most specific first (a policy naming both severities and services beats one naming either,
which beats a catch-all; ties go to the name), and the configured default last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from incidentops.api.v1alpha1.common import Severity
from incidentops.api.v1alpha1.escalationpolicy import EscalationPolicySpec, PolicyMatch


@dataclass(frozen=True)
class PolicyChoice:
    """The chosen policy (namespace and name), or none, and why."""

    namespace: str | None
    name: str | None
    reason: str


def matches(match: PolicyMatch, severity: Severity, service: str | None) -> bool:
    if match.severities and severity not in match.severities:
        return False
    return not match.services or (service is not None and service in match.services)


def specificity(match: PolicyMatch) -> int:
    return int(bool(match.severities)) + int(bool(match.services))


def choose_policy(
    namespace: str,
    ref: str | None,
    severity: Severity,
    service: str | None,
    policies: Sequence[tuple[str, EscalationPolicySpec]],
    default: str = "",
) -> PolicyChoice:
    """The policy for an incident in `namespace`; `policies` are that namespace's valid ones."""
    if ref:
        return PolicyChoice(namespace, ref, f"named in spec.escalationPolicyRef ({ref})")
    fitting = [(name, spec) for name, spec in policies if matches(spec.match, severity, service)]
    if fitting:
        name, spec = min(fitting, key=lambda item: (-specificity(item[1].match), item[0]))
        what = []
        if spec.match.severities:
            what.append(f"severity {severity}")
        if spec.match.services:
            what.append(f"service {service}")
        return PolicyChoice(namespace, name, f"matches {' and '.join(what) or 'every incident'}")
    if default:
        where, _, name = default.rpartition("/")
        return PolicyChoice(
            where or namespace, name, f"the default policy (INCIDENTOPS_DEFAULT_ESCALATION_POLICY={default})"
        )
    return PolicyChoice(
        None,
        None,
        f"no EscalationPolicy in namespace {namespace} matches {severity}"
        + (f" service {service}" if service else "")
        + " and no default is configured",
    )
