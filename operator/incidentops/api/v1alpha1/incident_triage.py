"""An Incident's triage part of status: the runbook that fits, how surely, and why."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from incidentops.api.v1alpha1.common import Category, Severity, StatusModel, Timestamp


class TriageResult(StatusModel):
    """How the incident was classified, by rules or by an LLM, and why."""

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
