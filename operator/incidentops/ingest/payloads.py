"""Wire formats accepted on the ingestion endpoints; lenient about fields newer senders add."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Labels = dict[str, Annotated[str, Field(max_length=4096)]]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class AlertmanagerAlert(_Lenient):
    """One alert of an Alertmanager notification."""

    status: Literal["firing", "resolved"]
    labels: Labels
    annotations: Labels = {}
    starts_at: Annotated[datetime | None, Field(alias="startsAt")] = None
    ends_at: Annotated[datetime | None, Field(alias="endsAt")] = None
    generator_url: Annotated[str | None, Field(alias="generatorURL")] = None
    fingerprint: str | None = None


class AlertmanagerWebhook(_Lenient):
    """Alertmanager's webhook body, version 4."""

    version: str = "4"
    receiver: str = ""
    status: Literal["firing", "resolved"]
    alerts: list[AlertmanagerAlert]
    group_labels: Annotated[Labels, Field(alias="groupLabels")] = {}
    common_labels: Annotated[Labels, Field(alias="commonLabels")] = {}
    common_annotations: Annotated[Labels, Field(alias="commonAnnotations")] = {}
    external_url: Annotated[str, Field(alias="externalURL")] = ""
    group_key: Annotated[str, Field(alias="groupKey")] = ""
    truncated_alerts: Annotated[int, Field(alias="truncatedAlerts", ge=0)] = 0


class Event(_Lenient):
    """The generic event for other sources: one curl opens or closes an incident."""

    type: Literal["alert.fired", "alert.resolved"]
    source: Annotated[str, Field(min_length=1, max_length=63)]
    alert_id: Annotated[str, Field(min_length=1, max_length=256)]
    alert_name: Annotated[str, Field(min_length=1, max_length=253)]
    service: Annotated[str | None, Field(max_length=253)] = None
    namespace: Annotated[str | None, Field(max_length=63)] = None
    severity: Annotated[str | None, Field(max_length=32)] = None
    message: Annotated[str | None, Field(max_length=4096)] = None
    labels: Labels = {}
    timestamp: datetime | None = None
    url: Annotated[str | None, Field(max_length=2048)] = None


class EventBatch(_Lenient):
    """Several events in one request."""

    events: Annotated[list[Event], Field(min_length=1)]
