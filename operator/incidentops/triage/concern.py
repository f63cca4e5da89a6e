"""Triage as a concern of the Incident turn: which runbook fits, how surely, and why (rules, for now).

It owns status.triage. It looks when an incident first has status, and again when a human names
another runbook (spec.runbookRef); remediation reads its result. A result from another source
(an LLM, later) is not overwritten by the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from incidentops.api.v1alpha1.incident import ENDED_STATES, IncidentSpec, IncidentStatus, TriageResult
from incidentops.api.v1alpha1.resources import RUNBOOK
from incidentops.api.v1alpha1.runbook import RunbookSpec
from incidentops.concern import Decision, Ownership, WatchedConcern
from incidentops.kube import AsyncKube, Obj
from incidentops.triage.rules import runbook_fit
from incidentops.triage.selection import IncidentFacts, choose


@dataclass(frozen=True)
class Runbooks:
    """The namespace's valid Runbooks, as triage considers them."""

    specs: list[tuple[str, RunbookSpec]] = field(default_factory=list)


def _stale(body: Mapping[str, Any]) -> bool:
    """Whether the incident wants (another) triage: never triaged, or a human named another runbook."""
    status = body.get("status") or {}
    if not status.get("detectedAt") or status.get("state") in ENDED_STATES:
        return False
    triage = status.get("triage")
    if triage is None:
        return True
    ref = ((body.get("spec") or {}).get("runbookRef") or {}).get("name")
    return ref is not None and ref != triage.get("runbook") and triage.get("source") in (None, "rules")


class Triage(WatchedConcern):
    name = "triage"
    owns = Ownership(frozenset({"triage"}))

    def __init__(self, kube: AsyncKube) -> None:
        self.kube = kube

    def wake(self, body: Mapping[str, Any], now: datetime) -> datetime | None:
        return now if _stale(body) else None

    async def observe(self, obj: Obj, status: IncidentStatus, now: datetime, carried: Any) -> Any:
        if not _stale({**obj, "status": status.wire()}):
            return None
        found = []
        for item in await self.kube.list(RUNBOOK, obj["metadata"]["namespace"]):
            try:
                found.append((str(item["metadata"]["name"]), RunbookSpec.model_validate(item.get("spec") or {})))
            except ValidationError:
                continue  # its Ready condition says why; an invalid runbook is never chosen
        return Runbooks(found)

    def decide(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Any, now: datetime
    ) -> Decision | None:
        if not isinstance(observed, Runbooks):
            return None
        choice = choose(spec, IncidentFacts.of(spec, status), observed.specs)
        chosen = dict(observed.specs).get(choice.runbook or "")
        if chosen is None:
            result = TriageResult(source="rules", at=now, choice=choice.reason, candidates=len(observed.specs))
        else:
            named = spec.runbook_ref is not None and spec.runbook_ref.name == choice.runbook
            fit = runbook_fit(chosen.match, named=named)
            result = TriageResult(
                runbook=choice.runbook,
                confidence=fit.confidence,
                reasoning=fit.reasoning,
                source="rules",
                at=now,
                choice=choice.reason,
                candidates=len(observed.specs),
            )
        return Decision(status.model_copy(update={"triage": result}))
