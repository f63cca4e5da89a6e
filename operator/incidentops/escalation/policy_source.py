"""The incident's EscalationPolicy, read from the cluster: only a policy that can page is chosen.

A policy that is not Ready (its Secret missing, its delays out of order...) would page nobody
while the timeline said it paged. So policies that are not Ready are passed over while a Ready
one fits, and when the only fitting one (or the one spec names) is broken, the configured default
pages instead, with a warning that names the broken one; with no usable default, nobody is paged
and the incident says why (Notified=False, NoPolicy).

Ready is read from the policy's own condition when it is current (observedGeneration); a policy
the readiness check has not looked at yet is checked here, with the same check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from incidentops.api.v1alpha1.common import Severity
from incidentops.api.v1alpha1.escalationpolicy import EscalationPolicySpec
from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentStatus, current_severity
from incidentops.api.v1alpha1.resources import ESCALATION_POLICY
from incidentops.config import Config
from incidentops.escalation.policies import PolicyChoice, choose_policy, matches
from incidentops.kube import AsyncKube, NotFound, Obj
from incidentops.readiness.checks import check_escalation_policy
from incidentops.readiness.lookup import ClusterLookup


@dataclass(frozen=True)
class Chosen:
    """The policy that pages (or none), its generation, and a warning when a broken one was passed over."""

    choice: PolicyChoice
    policy: EscalationPolicySpec | None = None
    generation: int | None = None
    warning: str | None = None


class PolicySource:
    def __init__(self, kube: AsyncKube, config: Config) -> None:
        self.kube = kube
        self.config = config
        self.lookup = ClusterLookup(kube)

    async def problem(self, obj: Obj, spec: EscalationPolicySpec) -> str | None:
        """Why the policy cannot page ("SecretNotFound: ..."), or None when it is Ready."""
        meta, status = obj.get("metadata") or {}, obj.get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        if ready is not None and status.get("observedGeneration") == meta.get("generation"):
            return None if ready.get("status") == "True" else f"{ready.get('reason')}: {ready.get('message')}"
        verdict = await check_escalation_policy(spec, str(meta.get("namespace") or ""), self.lookup)
        return None if verdict.ready else f"{verdict.reason}: {verdict.message}"

    async def read(self, namespace: str, name: str) -> tuple[Obj, EscalationPolicySpec] | None:
        try:
            obj = await self.kube.get(ESCALATION_POLICY, namespace, name)
            return obj, EscalationPolicySpec.model_validate(obj.get("spec") or {})
        except (NotFound, ValidationError):
            return None

    async def current(self, namespace: str, name: str, reason: str) -> Chosen | None:
        """The policy an incident already pages with (kept even if it broke since: its failures show)."""
        found = await self.read(namespace, name)
        if found is None:
            return None
        return Chosen(PolicyChoice(namespace, name, reason), found[1], found[0]["metadata"].get("generation"))

    async def choose(self, namespace: str, spec: IncidentSpec, status: IncidentStatus) -> Chosen:
        ref = spec.escalation_policy_ref.name if spec.escalation_policy_ref else None
        severity = Severity(current_severity(spec, status))
        usable: list[tuple[str, EscalationPolicySpec]] = []
        broken: dict[str, str] = {}
        for item in await self.kube.list(ESCALATION_POLICY, namespace):
            name = str(item["metadata"]["name"])
            try:
                parsed = EscalationPolicySpec.model_validate(item.get("spec") or {})
            except ValidationError:
                if name == ref:
                    broken[name] = "InvalidSpec: the policy does not validate"
                continue
            problem = await self.problem(item, parsed)
            if problem is None:
                usable.append((name, parsed))
            elif name == ref or matches(parsed.match, severity, spec.service):
                broken[name] = problem
        usable_names = {name for name, _ in usable}
        if ref is not None and ref not in usable_names and ref not in broken:
            broken[ref] = "NotFound: it does not exist"
        named = ref if ref in usable_names else None
        choice = choose_policy(namespace, named, severity, spec.service, usable, self.config.default_escalation_policy)
        skipped = "; ".join(f"{name} is not Ready ({why})" for name, why in sorted(broken.items()))
        warning = f"passed over EscalationPolicy {skipped}" if skipped else None
        if choice.name is None or choice.namespace is None:
            reason = choice.reason + (f"; {warning}" if warning else "")
            return Chosen(PolicyChoice(None, None, reason[:1024]))
        found = await self.read(choice.namespace, choice.name)
        problem = "NotFound: it does not exist or does not validate" if found is None else None
        if found is not None and not (choice.namespace == namespace and choice.name in usable_names):
            problem = await self.problem(found[0], found[1])  # the default, from elsewhere: check it too
        if problem is not None:
            why = f"EscalationPolicy {choice.namespace}/{choice.name} ({choice.reason}) cannot page: {problem}"
            return Chosen(PolicyChoice(None, None, (why + (f"; {warning}" if warning else ""))[:1024]))
        assert found is not None
        reason = choice.reason + (f"; {warning}" if warning else "")
        generation: Any = found[0]["metadata"].get("generation")
        return Chosen(PolicyChoice(choice.namespace, choice.name, reason[:1024]), found[1], generation, warning)
