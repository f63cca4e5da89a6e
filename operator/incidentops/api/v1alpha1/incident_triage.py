"""An Incident's triage part of status: what it is (severity, category), which runbook fits, how surely, and why.

Rules always answer first; a language model, when configured, may answer after them. Both results
are kept, with the model's investigation audited (tool calls, tokens, time, why it fell back).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from incidentops.api.v1alpha1.common import Category, Severity, StatusModel, Timestamp

MAX_TOOL_CALLS_KEPT = 16
LlmState = Literal["Pending", "Answered", "FellBack", "Skipped"]
FALLBACK_REASONS = (
    "timeout",
    "rate_limited",
    "server_error",
    "unavailable",
    "invalid_answer",
    "refused",
    "no_answer",
    "call_budget",
    "tool_budget",
    "token_budget",
    "lost",
    "error",
)


class RulesTriage(StatusModel):
    """What the operator's rules concluded, kept even when a model's answer is used."""

    severity: Annotated[
        Severity | None, Field(description="The severity the signals call for (None: the alerts carried no signal).")
    ] = None
    category: Annotated[Category | None, Field(description="The category the rules gave.")] = None
    runbook: Annotated[str | None, Field(max_length=253, description="The runbook the rules chose.")] = None
    confidence: Annotated[float | None, Field(ge=0, le=1, description="How well that runbook fits, 0 to 1.")] = None
    reasoning: Annotated[str | None, Field(max_length=2048, description="Why, in words.")] = None


class TriageToolCall(StatusModel):
    """One read-only tool the model called during its investigation."""

    name: Annotated[str, Field(max_length=64, description="The tool, e.g. recent_changes or metrics.")]
    arguments: Annotated[
        str | None, Field(max_length=256, description="Its arguments as the model gave them (JSON, cut to 256).")
    ] = None
    at: Annotated[Timestamp, Field(description="When it was called.")]
    milliseconds: Annotated[int, Field(ge=0, description="How long the tool took.")] = 0
    bytes: Annotated[int, Field(ge=0, description="How many bytes it handed to the model (after its bound).")] = 0
    refused: Annotated[
        str | None,
        Field(max_length=256, description="Why the call was refused (an unknown tool, a bad argument, the budget)."),
    ] = None


class TriageAnswer(StatusModel):
    """The model's answer through submit_triage, as code validated it (text bounded and redacted)."""

    severity: Annotated[Severity | None, Field(description="The severity the model proposed.")] = None
    category: Annotated[Category | None, Field(description="The category the model proposed.")] = None
    runbook: Annotated[
        str | None, Field(max_length=253, description="The runbook the model chose (None: none fits).")
    ] = None
    confidence: Annotated[float | None, Field(ge=0, le=1, description="The model's confidence, 0 to 1.")] = None
    reasoning: Annotated[str | None, Field(max_length=2048, description="The model's reasoning.")] = None
    suspected_cause: Annotated[
        str | None, Field(max_length=1024, description="What the model suspects caused the incident.")
    ] = None


class LlmTriage(StatusModel):
    """One investigation by a language model: what it was asked for, what it read, what it answered, what it cost."""

    state: Annotated[
        LlmState,
        Field(
            description="Pending (under way), Answered (a valid answer was used), FellBack (the rules result "
            "stands; fallback says why) or Skipped (not asked: a simulation, no evidence change, the budget)."
        ),
    ]
    model: Annotated[str | None, Field(max_length=128, description="The model asked, e.g. claude-sonnet-4-5.")] = None
    evidence: Annotated[
        str | None,
        Field(
            max_length=1024,
            description="The evidence this investigation was for (alert names and severity); another is asked only "
            "when it changes.",
        ),
    ] = None
    investigations: Annotated[
        int, Field(ge=0, description="How many investigations this incident had (each counts against the budget).")
    ] = 0
    started_at: Annotated[Timestamp | None, Field(description="When the investigation started.")] = None
    claimed_until: Annotated[
        Timestamp | None,
        Field(
            description="Until when the operator process that started it owns it; past that (the process died) "
            "another takes it over."
        ),
    ] = None
    hold_until: Annotated[
        Timestamp | None,
        Field(
            description="Remediation waits for the answer until then, only when the answer can change what runs "
            "(the rules' confidence is below a matching automatic runbook's minConfidence). Escalation never waits."
        ),
    ] = None
    finished_at: Annotated[Timestamp | None, Field(description="When the answer (or the fallback) was recorded.")] = (
        None
    )
    seconds: Annotated[float | None, Field(ge=0, description="How long the investigation took.")] = None
    calls: Annotated[int, Field(ge=0, description="Messages API calls made.")] = 0
    tokens_in: Annotated[int, Field(ge=0, description="Input tokens the model reported, over all calls.")] = 0
    tokens_out: Annotated[int, Field(ge=0, description="Output tokens the model reported, over all calls.")] = 0
    tool_calls: Annotated[
        list[TriageToolCall],
        Field(max_length=MAX_TOOL_CALLS_KEPT, description="The tools the model called, in order (bounded)."),
    ] = []
    answer: Annotated[TriageAnswer | None, Field(description="The model's answer, validated.")] = None
    applied: Annotated[
        str | None,
        Field(
            max_length=1024,
            description="What code made of the answer: what it took, what it refused and why (the model advises, "
            "code decides).",
        ),
    ] = None
    fallback: Annotated[
        str | None,
        Field(
            max_length=63,
            description="Why the rules result stands: " + ", ".join(FALLBACK_REASONS) + ".",
        ),
    ] = None
    message: Annotated[str | None, Field(max_length=1024, description="More about the fallback, redacted.")] = None


class TriageResult(StatusModel):
    """How the incident was classified, by rules or by a language model, and why."""

    severity: Annotated[Severity | None, Field(description="The severity triage assessed, SEV1 (worst) to SEV5.")] = (
        None
    )
    category: Annotated[
        Category | None, Field(description="The category triage assessed, e.g. availability or performance.")
    ] = None
    runbook: Annotated[
        str | None, Field(max_length=253, description="The Runbook (in this namespace) triage chose, if any.")
    ] = None
    confidence: Annotated[
        float | None,
        Field(
            ge=0,
            le=1,
            description="How sure triage is, from 0 to 1. An automatic Runbook runs without approval only when it "
            "is at least the Runbook's minConfidence.",
        ),
    ] = None
    reasoning: Annotated[str | None, Field(max_length=8192, description="Why triage decided so, in words.")] = None
    source: Annotated[
        Literal["rules", "llm"] | None,
        Field(description="Who triaged: rules (the operator's classification rules) or llm (a language model)."),
    ] = None
    at: Annotated[Timestamp | None, Field(description="When the incident was triaged.")] = None
    choice: Annotated[
        str | None,
        Field(
            max_length=1024,
            description="Why this runbook (or none): named by spec.runbookRef, the most specific match, or no match.",
        ),
    ] = None
    candidates: Annotated[
        int | None, Field(ge=0, description="How many valid Runbooks of the namespace were considered.")
    ] = None
    matching: Annotated[
        list[Annotated[str, Field(max_length=253)]],
        Field(max_length=50, description="The Runbooks that match the incident: the only ones a model may choose."),
    ] = []
    evidence: Annotated[
        str | None,
        Field(max_length=1024, description="The evidence the rules looked at last (alert names and severity)."),
    ] = None
    rules: Annotated[RulesTriage | None, Field(description="The rules' result, kept when a model's is used.")] = None
    llm: Annotated[
        LlmTriage | None, Field(description="The language model's investigation, when one is configured.")
    ] = None
