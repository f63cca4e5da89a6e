"""Readiness verdicts for DetectionRule, Runbook and EscalationPolicy.

The schema already refused what it can express; these checks look at the cluster (does the
referenced Runbook exist? the Secret and its key?) and at rules across fields, and explain
themselves in one reason and one message, as a Ready condition wants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from incidentops.api.v1alpha1.detectionrule import DetectionRuleSpec
from incidentops.api.v1alpha1.escalationpolicy import EscalationPolicySpec
from incidentops.api.v1alpha1.runbook import Action, RunbookSpec, step_refusal
from incidentops.egress import EgressPolicy
from incidentops.redaction import safe_url


class Lookup(Protocol):
    """Existence checks against the cluster, in the object's namespace."""

    async def exists(self, kind: str, namespace: str, name: str) -> bool: ...

    async def secret_has_key(self, namespace: str, name: str, key: str) -> bool | None:
        """True/False for the key; None when the Secret itself is missing."""
        ...


class SecretUnreadable(Exception):
    """The operator may not read that Secret (RBAC grants Secrets by name: the chart's rbac.secretNames)."""


@dataclass(frozen=True)
class Verdict:
    """Ready or not, with the first problem as reason and message and every problem listed."""

    ready: bool
    reason: str
    message: str
    problems: list[str] = field(default_factory=list)


def _count(n: int, noun: str) -> str:
    """The count with its noun, singular for one: 1 level, 2 levels."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass
class _Findings:
    reasons: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, reason: str, problem: str) -> None:
        self.reasons.append(reason)
        self.problems.append(problem)

    def verdict(self, ok_message: str) -> Verdict:
        if not self.problems:
            return Verdict(True, "Valid", ok_message)
        extra = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return Verdict(False, self.reasons[0], self.problems[0] + extra, list(self.problems))


async def check_detection_rule(spec: DetectionRuleSpec, namespace: str, lookup: Lookup) -> Verdict:
    found = _Findings()
    queries = [spec.expr] if spec.expr is not None else [c.query for c in spec.conditions or []]
    if any(not q.strip() for q in queries):
        found.add("EmptyQuery", "the PromQL expression is empty")
    if spec.runbook_ref and not await lookup.exists("Runbook", namespace, spec.runbook_ref.name):
        found.add("RunbookNotFound", f"runbookRef names Runbook {spec.runbook_ref.name!r}, which does not exist")
    policy = spec.escalation_policy_ref
    if policy and not await lookup.exists("EscalationPolicy", namespace, policy.name):
        found.add(
            "EscalationPolicyNotFound",
            f"escalationPolicyRef names EscalationPolicy {policy.name!r}, which does not exist",
        )
    state = "enabled" if spec.enabled else "disabled"
    return found.verdict(f"rule is valid ({state}, every {spec.interval}, for {spec.for_})")


async def check_runbook(
    spec: RunbookSpec, namespace: str, lookup: Lookup, egress: EgressPolicy | None = None
) -> Verdict:
    """Ready only when a run would not be refused for what the Runbook itself says (the run's own rules)."""
    found = _Findings()
    known = {a.value for a in Action}
    if spec.safety.allowed_namespaces and namespace not in spec.safety.allowed_namespaces:
        found.add(
            "NamespaceNotAllowed",
            f"safety.allowedNamespaces ({', '.join(spec.safety.allowed_namespaces)}) leaves out {namespace}, the "
            "only namespace a Runbook of this namespace acts in",
        )
    for step in spec.steps:
        where = f"step {step.name!r}"
        if step.action not in known:
            found.add("UnknownAction", f"{where}: unknown action {step.action!r}")
            continue
        action = Action(step.action)
        problem = step_refusal(step, namespace)
        if problem is not None:
            found.add(problem[0], f"{where}: {problem[1]}")
        if action == Action.SCALE:
            if step.params.replicas is None:
                found.add("MissingParameter", f"{where}: scale needs params.replicas")
            elif step.params.replicas > spec.safety.max_scale:
                found.add(
                    "ExceedsMaxScale",
                    f"{where}: replicas {step.params.replicas} exceeds safety.maxScale {spec.safety.max_scale}",
                )
        if action == Action.PROMQL_CHECK and not (step.params.query or "").strip():
            found.add("MissingParameter", f"{where}: promql-check needs params.query")
        if action == Action.HTTP:
            if not step.params.url:
                found.add("MissingParameter", f"{where}: http needs params.url")
            elif egress is not None and (refusal := egress.static_refusal(step.params.url, namespace)) is not None:
                found.add(refusal.reason, f"{where}: {safe_url(step.params.url)}: {refusal}")
    if spec.verify is not None and not spec.verify.query.strip():
        found.add("EmptyQuery", "verify.query is empty")
    mode = "automatic" if spec.automatic else "approval-gated"
    return found.verdict(f"{_count(len(spec.steps), 'step')}, {mode}, risk {spec.effective_risk()}")


async def check_escalation_policy(spec: EscalationPolicySpec, namespace: str, lookup: Lookup) -> Verdict:
    found = _Findings()
    # The apiserver's CEL rule compares delays only when none uses d, w or y (CEL's duration()
    # has no such units); this covers every delay.
    for previous, index in spec.out_of_order_levels():
        earlier, later = spec.levels[previous], spec.levels[index]
        found.add(
            "DelaysNotIncreasing",
            f"level {later.name or index}: after {later.after} is not later than level "
            f"{earlier.name or previous}'s {earlier.after}; 'after' delays must strictly increase",
        )
    schedules = {s.name for s in spec.schedules}
    checked: dict[tuple[str, str], bool | str | None] = {}
    for index, level in enumerate(spec.levels):
        where = f"level {level.name or index}"
        for target in level.targets:
            if target.type == "schedule" and target.name not in schedules:
                found.add("UnknownSchedule", f"{where}: schedule {target.name!r} is not defined in spec.schedules")
        for channel in level.channels:
            ref = channel.secret_ref
            if ref is None:
                continue
            if (ref.name, ref.key) not in checked:
                try:
                    checked[(ref.name, ref.key)] = await lookup.secret_has_key(namespace, ref.name, ref.key)
                except SecretUnreadable:
                    checked[(ref.name, ref.key)] = "unreadable"
            has_key = checked[(ref.name, ref.key)]
            if has_key == "unreadable":
                found.add(
                    "SecretNotReadable",
                    f"{where}: the operator may not read Secret {ref.name!r} (it reads Secrets only by name: add it "
                    "to the chart's rbac.secretNames)",
                )
            elif has_key is None:
                found.add("SecretNotFound", f"{where}: {channel.type} channel's Secret {ref.name!r} does not exist")
            elif not has_key:
                found.add("SecretKeyMissing", f"{where}: Secret {ref.name!r} has no key {ref.key!r}")
    times = spec.repeat.times
    repeats = f"repeats {_count(times, 'time')}" if times else "does not repeat"
    return found.verdict(f"{_count(len(spec.levels), 'level')}, {repeats}")
