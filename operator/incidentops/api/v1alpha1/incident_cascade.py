"""An Incident's cascade part of status: the upstream incident it is a symptom of, if any.

Services declare what they depend on (the incidentops.dev/depends-on annotation on a workload, or
the triage ConfigMap). When an upstream service has an open incident too, this one is its symptom:
it points at the root (the ROOT column) and its escalation defers to the root's, so a failing
database pages once, not once per service that needs it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from incidentops.api.v1alpha1.common import StatusModel, Timestamp

MAX_DEPENDS_ON = 20


class CascadeStatus(StatusModel):
    """Where the incident sits in a cascade of failures."""

    depends_on: Annotated[
        list[Annotated[str, Field(max_length=253)]],
        Field(max_length=MAX_DEPENDS_ON, description="The services this incident's service declares it depends on."),
    ] = []
    root: Annotated[
        str | None,
        Field(
            max_length=253,
            description="The incident this one is a symptom of (the ROOT column): the furthest upstream open "
            "incident among the service's declared dependencies. Its escalation pages for both.",
        ),
    ] = None
    root_service: Annotated[str | None, Field(max_length=253, description="The root incident's service.")] = None
    path: Annotated[
        list[Annotated[str, Field(max_length=253)]],
        Field(
            max_length=MAX_DEPENDS_ON,
            description="The services from this one up to the root, e.g. [checkout, payments, postgres].",
        ),
    ] = []
    since: Annotated[Timestamp | None, Field(description="Since when it is a symptom.")] = None
    hold_until: Annotated[
        Timestamp | None,
        Field(
            description="A service with declared dependencies waits until then (INCIDENTOPS_CASCADE_WAIT after "
            "detection) before its first page, for an upstream incident to show up: then only the root pages."
        ),
    ] = None
