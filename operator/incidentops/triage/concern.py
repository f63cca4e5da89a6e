"""Triage as a concern of the Incident turn: rules at once, then (when configured) a model's investigation.

It owns status.triage, and the incident's severity when triage raises it (never against a human's
choice). Rules look when the incident is first seen, when the evidence changes (a new alert name,
a worse severity) and when a human names another runbook; their result is written before anything
waits on it, so escalation pages from it at once.

A model's investigation takes seconds, so it never runs inside a turn: the turn records a claim
(llm.state Pending, claimedUntil) with the resourceVersion it read, so of two replicas only one
investigates; the investigation then runs in the background and hands its outcome to the
scheduler (`deliver`), whose next turn validates and records it. A claim whose process died is
taken over when it expires. Remediation waits for the answer only where it can change what runs
(llm.holdUntil), never longer than the investigation's timeout.

Its length is the three decisions of one concern (the rules' look, a claim taken over, a model's
answer recorded); the pieces they use live next door: the rules (assess), the model's tools, loop
and answer checks (llm/), the ConfigMap (settings), the investigation's runner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from pydantic import ValidationError

from incidentops.api.v1alpha1.common import Category, Severity, parse_time
from incidentops.api.v1alpha1.incident import (
    ENDED_STATES,
    MAX_TIMELINE,
    IncidentSpec,
    IncidentStatus,
    LlmTriage,
    RulesTriage,
    TriageResult,
    current_severity,
)
from incidentops.api.v1alpha1.incident_triage import MAX_TOOL_CALLS_KEPT
from incidentops.api.v1alpha1.resources import RUNBOOK
from incidentops.api.v1alpha1.runbook import RunbookSpec
from incidentops.concern import Background, Decision, Notice, Ownership, WatchedConcern, append_timeline
from incidentops.kube import AsyncKube, Obj
from incidentops.metrics import LLM_BUDGET_REFUSALS, LLM_FALLBACKS, LLM_SECONDS, LLM_TOKENS, TRIAGES
from incidentops.triage.assess import (
    Assessment,
    alert_names,
    evidence_key,
    evidence_parts,
    new_evidence,
    rules_triage,
)
from incidentops.triage.llm.answer import apply
from incidentops.triage.llm.investigation import Outcome
from incidentops.triage.runner import Investigator
from incidentops.triage.selection import effective_category
from incidentops.triage.settings import SettingsSource

log = logging.getLogger(__name__)
MAX_INVESTIGATIONS = 3  # per incident: a model loop never costs more than this (k8sgpt's 9,300 calls)
MAX_TAKEOVERS = 2  # a claim lost with its process is taken over at most this often
CLAIM_GRACE = timedelta(seconds=15)
Key = tuple[str, str]


def _evidence(body: Mapping[str, Any]) -> str:
    status = body.get("status") or {}
    alerts = status.get("alerts") or {}
    names = list(alerts.get("names") or []) + [str(a.get("name")) for a in alerts.get("recent") or []]
    common = ((body.get("spec") or {}).get("labels") or {}).get("alertname")
    return evidence_key([*names, *([common] if common else [])], status.get("severity"))


def _stale(body: Mapping[str, Any]) -> bool:
    """Whether the rules should look (again): never triaged, new evidence, or a human named another runbook."""
    status = body.get("status") or {}
    if not status.get("detectedAt") or status.get("state") in ENDED_STATES:
        return False
    triage = status.get("triage")
    if triage is None or triage.get("evidence") != _evidence(body):
        return True
    ref = ((body.get("spec") or {}).get("runbookRef") or {}).get("name")
    return ref is not None and ref != triage.get("runbook")


@dataclass(frozen=True)
class Runbooks:
    """The namespace's valid Runbooks, and the category rules, as the rules consider them."""

    specs: list[tuple[str, RunbookSpec]] = field(default_factory=list)
    rules: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Investigate:
    """The effect: investigate this incident in the background, with these runbooks to choose from."""

    runbooks: Mapping[str, RunbookSpec]
    rules: RulesTriage


@dataclass(frozen=True)
class Answered:
    """An investigation's outcome, carried into the turn that records it."""

    outcome: Outcome
    runbooks: list[tuple[str, RunbookSpec]] = field(default_factory=list)


class Triage(WatchedConcern):
    name = "triage"
    owns = Ownership(frozenset({"triage", "severity", "severity_source"}))

    def __init__(
        self,
        kube: AsyncKube,
        settings: SettingsSource | None = None,
        investigator: Investigator | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.investigator = investigator
        self.background = Background(self.name)

    def bind(self, wake: Callable[[Key, str], None], deliver: Callable[[Key, str, Any], None]) -> None:
        self.background.bind(deliver)

    async def close(self) -> None:
        await self.background.close()
        if self.investigator is not None:
            await self.investigator.close()

    # -- what wakes it ------------------------------------------------------------------------------

    def wake(self, body: Mapping[str, Any], now: datetime) -> datetime | None:
        if _stale(body):
            return now
        llm = ((body.get("status") or {}).get("triage") or {}).get("llm") or {}
        if llm.get("state") == "Pending" and llm.get("claimedUntil"):
            return max(now, parse_time(str(llm["claimedUntil"])))  # taken over if its process died
        return None

    # -- reading --------------------------------------------------------------------------------------

    async def observe(self, obj: Obj, status: IncidentStatus, now: datetime, carried: Any) -> Any:
        body = {**obj, "status": status.wire()}
        if not isinstance(carried, Outcome) and not _stale(body) and not self._taken_over(obj, status, now):
            return None
        found = []
        for item in await self.kube.list(RUNBOOK, obj["metadata"]["namespace"]):
            try:
                found.append((str(item["metadata"]["name"]), RunbookSpec.model_validate(item.get("spec") or {})))
            except ValidationError:
                continue  # its Ready condition says why; an invalid runbook is never chosen
        if isinstance(carried, Outcome):
            return Answered(carried, found)
        settings = await self.settings.current() if self.settings else None
        return Runbooks(found, settings.category_rules if settings else ())

    def _taken_over(self, obj: Obj, status: IncidentStatus, now: datetime) -> bool:
        """A claim past its time whose investigation is not under way here (queued behind a storm, say)."""
        llm = status.triage.llm if status.triage else None
        expired = bool(llm and llm.state == "Pending" and llm.claimed_until and llm.claimed_until <= now)
        meta = obj["metadata"]
        return expired and (meta["namespace"], meta["name"]) not in self.background.live

    # -- deciding (pure) ------------------------------------------------------------------------------

    def decide(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Any, now: datetime
    ) -> Decision | None:
        if isinstance(observed, Answered):
            return self._record(obj, spec, status, observed, now)
        if not isinstance(observed, Runbooks):
            return None
        if self._taken_over(obj, status, now) and not _stale({**obj, "status": status.wire()}):
            return self._take_over(spec, status, observed, now)
        assessed = rules_triage(spec, status, observed.specs, observed.rules)
        rules = assessed.rules
        notices: list[Notice] = []
        updated, raised = raise_severity(
            status, rules.severity, now, f"rules: {rules.reasoning.split(';')[0] if rules.reasoning else ''}"
        )
        if raised:
            notices.append(Notice("SeverityRaised", raised, warning=True))
        before = status.triage
        evidence = evidence_key(alert_names(updated, spec), updated.severity)
        result = TriageResult(
            severity=current_severity(spec, updated),
            category=rules.category or spec.category,
            runbook=rules.runbook,
            confidence=rules.confidence,
            reasoning=rules.reasoning,
            source="rules",
            at=now,
            choice=assessed.choice,
            candidates=assessed.candidates,
            matching=list(assessed.matching),
            evidence=evidence,
            rules=rules,
            llm=before.llm if before else None,
        )
        named = spec.runbook_ref is not None  # a human's (or a rule's) runbook: the model's choice never overrides it
        if (
            before is not None
            and before.source == "llm"
            and before.llm
            and not named
            and not new_evidence(before.llm.evidence, evidence)
        ):
            result = before.model_copy(
                update={"evidence": evidence, "rules": rules, "matching": list(assessed.matching)}
            )
        effects: list[Any] = []
        llm = self._next_investigation(spec, updated, result, assessed, observed, now)
        if llm is not None:
            result = result.model_copy(update={"llm": llm})
            if llm.state == "Pending":
                effects.append(Investigate({n: rb for n, rb in observed.specs if n in assessed.matching}, rules))
        updated = updated.model_copy(update={"triage": result})
        if before is None:
            notices.append(Notice("Triaged", _said(result)))
        drill = spec.drill

        async def counted(_: Obj) -> None:
            if not drill:
                TRIAGES.labels("rules", "assessed").inc()

        return Decision(updated, notices, effects=effects, written=counted)

    def _next_investigation(
        self,
        spec: IncidentSpec,
        status: IncidentStatus,
        result: TriageResult,
        assessed: Assessment,
        observed: Runbooks,
        now: datetime,
    ) -> LlmTriage | None:
        """A new claim when the model should look (again), a Skipped record, or None to leave it be."""
        investigator = self.investigator
        before = result.llm
        if investigator is None or status.state in ENDED_STATES:
            return None
        if spec.drill:
            return None if before else LlmTriage(state="Skipped", message="simulations are triaged by rules only")
        if before is not None and (
            before.state == "Pending" or not new_evidence(before.evidence, result.evidence or "")
        ):
            return None
        count = before.investigations if before else 0
        if count >= MAX_INVESTIGATIONS:
            return None  # the audit of the last one stays; the rules' result is current
        specs = dict(observed.specs)
        security = effective_category(spec, status.model_copy(update={"triage": result})) == Category.SECURITY
        holds = (
            not security
            and spec.runbook_ref is None
            and any(
                specs[name].automatic
                and (name != assessed.rules.runbook or (assessed.rules.confidence or 0) < specs[name].min_confidence)
                for name in assessed.matching
            )
        )
        return LlmTriage(
            state="Pending",
            model=investigator.model,
            evidence=result.evidence,
            investigations=count + 1,
            started_at=now,
            claimed_until=now + investigator.timeout + CLAIM_GRACE,
            hold_until=now + investigator.timeout if holds else None,
        )

    def _take_over(self, spec: IncidentSpec, status: IncidentStatus, observed: Runbooks, now: datetime) -> Decision:
        """A claim whose process died: investigate again (a few times at most), else the rules stand."""
        assert status.triage is not None and status.triage.llm is not None
        llm = status.triage.llm
        assessed = rules_triage(spec, status, observed.specs, observed.rules)
        if llm.investigations >= MAX_TAKEOVERS + 1 or self.investigator is None:
            lost = "the investigation was lost with its operator process"
            ended = llm.model_copy(
                update={
                    "state": "FellBack",
                    "fallback": "lost",
                    "finished_at": now,
                    "hold_until": None,
                    "message": lost,
                }
            )
            return Decision(status.model_copy(update={"triage": status.triage.model_copy(update={"llm": ended})}))
        claim = llm.model_copy(
            update={
                "investigations": llm.investigations + 1,
                "started_at": now,
                "claimed_until": now + self.investigator.timeout + CLAIM_GRACE,
                "hold_until": now + self.investigator.timeout if llm.hold_until else None,
            }
        )
        updated = status.model_copy(update={"triage": status.triage.model_copy(update={"llm": claim})})
        runbooks = {n: rb for n, rb in observed.specs if n in assessed.matching}
        return Decision(updated, effects=[Investigate(runbooks, assessed.rules)])

    def _record(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Answered, now: datetime
    ) -> Decision | None:
        """The outcome of an investigation: applied within bounds, or the rules' result stands (and why)."""
        triage = status.triage
        if triage is None or triage.llm is None or triage.llm.state != "Pending":
            return None  # recorded already (or superseded): nothing to do twice
        outcome = observed.outcome
        llm = triage.llm.model_copy(
            update={
                "finished_at": now,
                "hold_until": None,
                "claimed_until": None,
                "seconds": outcome.seconds,
                "calls": outcome.calls,
                "tokens_in": outcome.tokens_in,
                "tokens_out": outcome.tokens_out,
                "tool_calls": outcome.tool_calls[:MAX_TOOL_CALLS_KEPT],
                "answer": outcome.answer,
            }
        )
        matching = {n for n, rb in observed.runbooks if n in triage.matching}
        answer = outcome.answer
        fallback, message = outcome.fallback, outcome.message
        if answer is not None and answer.runbook and answer.runbook not in matching:
            fallback, message = "invalid_answer", f"runbook {answer.runbook} no longer matches (deleted or changed)"
        notices: list[Notice] = []
        updated = status
        if fallback is not None or answer is None:
            llm = llm.model_copy(update={"state": "FellBack", "fallback": fallback or "no_answer", "message": message})
            notices.append(Notice("TriageFellBack", f"the model's triage was not used ({llm.fallback}): "
                                  f"{message or 'no answer'}; the rules' result stands", warning=True))  # fmt: skip
            result = triage.model_copy(update={"llm": llm})
        else:
            rules = triage.rules or RulesTriage()
            current = Severity(current_severity(spec, status))
            security = effective_category(spec, status) == Category.SECURITY
            applied = apply(
                answer,
                current=current,
                rules_severity=Severity(rules.severity) if rules.severity else None,
                rules_category=Category(rules.category) if rules.category else None,
                security=security,
                ignored=outcome.ignored,
            )
            runbook, confidence, said = applied.runbook, applied.confidence, applied.said
            if spec.runbook_ref is not None:
                runbook, confidence = triage.runbook, triage.confidence
                said += f"; the runbook stays {triage.runbook} (named by a human in spec.runbookRef)"
            llm = llm.model_copy(update={"state": "Answered", "applied": said[:1024]})
            if status.severity_source != "human" and applied.severity < current:
                updated, raised = raise_severity(status, applied.severity, now, f"the model ({llm.model}): {said}")
                if raised:
                    notices.append(Notice("SeverityRaised", raised, warning=True))
            result = triage.model_copy(
                update={
                    "severity": current_severity(spec, updated),
                    "category": applied.category,
                    "runbook": runbook,
                    "confidence": confidence,
                    "reasoning": (answer.reasoning or "")[:8192],
                    "source": "llm",
                    "at": now,
                    "choice": f"chosen by the model among {len(matching)} matching runbook(s)" if runbook else
                    "the model chose no runbook",
                    "evidence": evidence_key(alert_names(updated, spec), updated.severity),
                    "llm": _seen(llm, updated),
                }
            )  # fmt: skip
            notices.append(Notice("TriagedByModel", f"{llm.model}: {_said(result)}; code: {said}"[:1024]))
        if new_evidence(result.llm.evidence if result.llm else None, result.evidence or ""):
            # a new alert name came while the model looked: the rules look again, and the model after them
            result = result.model_copy(update={"evidence": result.llm.evidence if result.llm else None})
        updated = append_timeline(updated.model_copy(update={"triage": result}), now, "Triaged",
                                  (notices[-1].message if notices else "")[:2048], "triage")  # fmt: skip
        drill = spec.drill
        recorded = llm

        async def counted(_: Obj) -> None:
            if drill:
                return
            TRIAGES.labels("llm", "answered" if recorded.state == "Answered" else "fell_back").inc()
            LLM_SECONDS.observe(recorded.seconds or 0.0)
            LLM_TOKENS.labels("in").inc(recorded.tokens_in)
            LLM_TOKENS.labels("out").inc(recorded.tokens_out)
            if recorded.fallback:
                LLM_FALLBACKS.labels(recorded.fallback).inc()
                if recorded.fallback == "call_budget":
                    LLM_BUDGET_REFUSALS.inc()

        return Decision(updated, notices, written=counted)

    # -- acting (after the write) ---------------------------------------------------------------------

    async def act(self, written: Obj, decision: Decision) -> Any:
        """Start the investigation in the background: a slow model never holds up the incident's turns."""
        investigator = self.investigator
        for effect in decision.effects:
            if isinstance(effect, Investigate) and investigator is not None:
                self.background.start(
                    written, partial(investigator.investigate, written, effect.runbooks, effect.rules)
                )
        return None


def raise_severity(
    status: IncidentStatus, proposed: Severity | str | None, now: datetime, why: str
) -> tuple[IncidentStatus, str]:
    """The status with its severity raised to `proposed` (never lowered, never against a human)."""
    if proposed is None or status.severity is None or status.severity_source == "human":
        return status, ""
    if Severity(proposed) >= Severity(status.severity):
        return status, ""
    text = f"severity raised {status.severity} → {proposed} by triage: {why}"[: MAX_TIMELINE * 20]
    raised = status.model_copy(update={"severity": Severity(proposed), "severity_source": "triage"})
    return append_timeline(raised, now, "SeverityRaised", text[:2048], "triage"), text[:1024]


def _seen(llm: LlmTriage, status: IncidentStatus) -> LlmTriage:
    """The investigation's evidence with the severity it left the incident at: its own raise is not news."""
    parts = evidence_parts(llm.evidence)
    names = parts[1] if parts else frozenset()
    return llm.model_copy(update={"evidence": evidence_key(names, status.severity)})


def _said(result: TriageResult) -> str:
    runbook = f"runbook {result.runbook}" if result.runbook else "no runbook"
    if result.runbook and result.confidence is not None:
        runbook += f" ({result.confidence:.2f})"
    return f"{result.severity}, {result.category or 'category unknown'}, {runbook}"
