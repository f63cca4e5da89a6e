"""An Incident's timeline: what happened, when, and who did it (bounded, newest last)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from incidentops.api.v1alpha1.common import StatusModel, Timestamp

MAX_TIMELINE = 100
MAX_TIMELINE_NAMES = 10


class TimelineEntry(StatusModel):
    """Something that happened, for `kubectl describe` and the postmortem."""

    at: Annotated[
        Timestamp, Field(description="When it happened; for an entry folding several alerts, when the first did.")
    ]
    type: Annotated[
        str,
        Field(
            max_length=63,
            description="What kind of event, e.g. Detected, AlertFiring, AlertResolved, SeverityRaised, "
            "Acknowledged, Investigating, Resolved, Closed, Assigned, Note, StateChangeRefused or Recurred.",
        ),
    ]
    message: Annotated[
        str, Field(max_length=2048, description="What happened, in words, e.g. 3 alerts firing: HighErrorRate.")
    ]
    actor: Annotated[
        str | None,
        Field(
            max_length=253,
            description="Who did it: a responder (e.g. alice), or auto-resolve when the alerts resolved the "
            "incident. Empty for what alerts or the operator did.",
        ),
    ] = None
    count: Annotated[
        int | None,
        Field(
            ge=1,
            description="How many alerts the entry folds: consecutive alert events of the same kind within a "
            "minute of the entry's at share one entry. Left out for a single alert.",
        ),
    ] = None
    last_at: Annotated[
        Timestamp | None, Field(description="When the last event folded into this entry happened (at is the first).")
    ] = None
    names: Annotated[
        list[Annotated[str, Field(max_length=253)]],
        Field(
            max_length=MAX_TIMELINE_NAMES,
            description=f"The distinct alert names folded into this entry (at most {MAX_TIMELINE_NAMES}).",
        ),
    ] = []
    more_names: Annotated[
        bool | None,
        Field(description=f"True when more distinct alert names were folded in than the {MAX_TIMELINE_NAMES} kept."),
    ] = None
