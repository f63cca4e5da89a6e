"""An Incident's postmortem part of status: whether one is required, and where the document stands."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from incidentops.api.v1alpha1.common import StatusModel, Timestamp


class PostmortemLink(StatusModel):
    """The incident's postmortem: required or not, being written, or written (its state mirrored)."""

    required: Annotated[
        bool,
        Field(
            description="Whether the incident needs one (its severity at resolution is in "
            "INCIDENTOPS_POSTMORTEM_SEVERITIES, SEV1 and SEV2 by default; simulations never do). Closing an "
            "incident that needs one waits until it is Published."
        ),
    ] = False
    name: Annotated[str | None, Field(max_length=253, description="The Postmortem's name (kubectl get pm NAME).")] = (
        None
    )
    state: Annotated[
        Literal["Writing", "Draft", "InReview", "Published", "Deleted"] | None,
        Field(description="Writing (under way), else the document's spec.state as last seen, or Deleted."),
    ] = None
    claimed_until: Annotated[
        Timestamp | None,
        Field(description="While Writing: until when the operator process writing it owns the task."),
    ] = None
    attempts: Annotated[int, Field(ge=0, description="How many times writing it was started.")] = 0
    written_at: Annotated[Timestamp | None, Field(description="When the operator created it.")] = None
    message: Annotated[
        str | None, Field(max_length=1024, description="What went wrong the last time, if anything.")
    ] = None
