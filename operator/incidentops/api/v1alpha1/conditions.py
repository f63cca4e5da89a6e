"""Kubernetes-style status conditions.

lastTransitionTime moves only when the status flips, so `kubectl describe` tells how long a
condition has held; observedGeneration says which spec the condition speaks about.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from incidentops.api.v1alpha1.common import StatusModel, Timestamp

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """Condition contains details for one aspect of the current state of this API Resource."""

    type: Annotated[
        str,
        Field(
            pattern=r"^[A-Z][A-Za-z0-9]*$",
            max_length=316,
            description="type of condition in CamelCase, e.g. Ready.",
        ),
    ]
    status: Annotated[ConditionStatus, Field(description="status of the condition, one of True, False, Unknown.")]
    reason: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
            max_length=1024,
            description="reason contains a programmatic identifier indicating the reason for the condition's "
            "last transition. Producers of specific condition types may define expected values and meanings "
            "for this field, and whether the values are considered a guaranteed API. The value should be a "
            "CamelCase string. This field may not be empty.",
        ),
    ]
    message: Annotated[
        str,
        Field(
            max_length=32768,
            description="message is a human readable message indicating details about the transition. "
            "This may be an empty string.",
        ),
    ] = ""
    last_transition_time: Annotated[
        Timestamp,
        Field(
            description="lastTransitionTime is the last time the condition transitioned from one status to "
            "another. This should be when the underlying condition changed. If that is not known, then using "
            "the time when the API field changed is acceptable."
        ),
    ]
    observed_generation: Annotated[
        int | None,
        Field(
            ge=0,
            description="observedGeneration represents the .metadata.generation that the condition was set "
            "based upon. For instance, if .metadata.generation is currently 12, but the "
            ".status.conditions[x].observedGeneration is 9, the condition is out of date with respect to the "
            "current state of the instance.",
        ),
    ] = None


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int | None = None,
) -> list[Condition]:
    """Return the list with one condition set; keeps lastTransitionTime unless the status changes."""
    previous = next((c for c in conditions if c.type == type_), None)
    transition = previous.last_transition_time if previous and previous.status == status else now
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if c.type == type_ else c for c in conditions]


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    """The condition of that type, if any."""
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: list[Condition], type_: str) -> bool:
    """Whether the condition is present and True."""
    found = find_condition(conditions, type_)
    return found is not None and found.status == "True"


# Condition types, and the reasons one concern reads of another's: one place every concern imports.
ACKNOWLEDGED = "Acknowledged"  # the lifecycle's
RESOLVED = "Resolved"  # the lifecycle's
REMEDIATED = "Remediated"  # remediation's
ESCALATED = "Escalated"  # remediation's: it asks escalation to page (reason REMEDIATION_FAILED)
NOTIFIED = "Notified"  # escalation's
TRIAGED = "Triaged"  # triage's
READY = "Ready"  # DetectionRule, Runbook, EscalationPolicy
REMEDIATION_FAILED = "RemediationFailed"
NO_POLICY = "NoPolicy"
