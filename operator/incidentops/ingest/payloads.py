"""Wire formats accepted on the ingestion endpoints, read leniently.

Alertmanager does not retry a 4xx, so refusing a body loses every alert in it. A body is refused
(Unreadable, answered 400) only when it cannot be read at all: not an object, or no list of
alerts, or an event without what identifies it. Anything else that is odd about a field (a
mistyped value, an unparseable time) is ignored with a warning that the answer carries; text of
any length is accepted here and bounded at normalization. Times without an offset are UTC.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

MAX_WARNINGS = 20


class Unreadable(ValueError):
    """The body (or one entry of it) cannot be read; the message names the field."""


@dataclass
class Reading:
    """What reading a body noticed: fields ignored, entries that could not be read."""

    where: str = ""
    warnings: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def warn(self, text: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(text)
        elif len(self.warnings) == MAX_WARNINGS:
            self.warnings.append("more warnings left out")

    def at(self, where: str) -> Reading:
        """The same record, naming fields under `where` (an alert's index, say)."""
        return Reading(where, self.warnings, self.rejected)

    def context(self) -> dict[str, Any]:
        return {"reading": self}


def _reading(info: ValidationInfo) -> Reading | None:
    context = info.context if isinstance(info.context, dict) else {}
    found = context.get("reading")
    return found if isinstance(found, Reading) else None


def _path(info: ValidationInfo, name: str | None = None) -> str:
    reading = _reading(info)
    field_name = _WIRE_NAMES.get(info.field_name or "", info.field_name or "")
    parts = [p for p in ((reading.where if reading else ""), field_name, name or "") if p]
    return ".".join(parts)


def _text_value(value: Any) -> str | None:
    """Labels and annotations are strings on the wire; numbers and booleans are read as their text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, default=str)


def _text(value: Any) -> Any:
    if isinstance(value, str | None):
        return value
    if isinstance(value, bool | int | float):
        return _text_value(value)
    return value  # anything else fails the str check and is ignored by _lenient


def _label_map(value: Any, info: ValidationInfo) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"expected an object of string values, got {type(value).__name__}")
    result: dict[str, str] = {}
    for key, item in value.items():
        text = _text_value(item)
        if text is None:
            continue
        if not isinstance(item, str) and (reading := _reading(info)) is not None:
            reading.warn(f"{_path(info, str(key))}: {type(item).__name__} read as the string {text[:40]!r}")
        result[str(key)] = text
    return result


def _timestamp(value: Any) -> Any:
    """RFC 3339; a time without an offset is UTC; Go's zero time means 'not set'."""
    if isinstance(value, str) and value.startswith("0001-01-01"):
        return None
    return value


def _utc(value: datetime | None) -> datetime | None:
    """In UTC; a time without an offset is UTC. One that has no UTC equivalent is refused (ignored)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time out of range once converted to UTC") from None


def lenient(default: Callable[[], Any] = lambda: None) -> WrapValidator:
    """A field that cannot be read is ignored (its default), with a warning; the alert survives."""

    def validate(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        try:
            return handler(value)
        except ValidationError as error:
            reading = _reading(info)
            if reading is not None:
                problem = error.errors()[0]["msg"]
                shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
                reading.warn(f"{_path(info)}: {problem} (got {shown}); ignored")
            return default()

    return WrapValidator(validate)


def _status(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


Lenient = lenient()
Text = Annotated[str | None, BeforeValidator(_text), Lenient]
Labels = Annotated[dict[str, str], BeforeValidator(_label_map), lenient(dict)]
Time = Annotated[datetime | None, BeforeValidator(_timestamp), AfterValidator(_utc), Lenient]
AlertStatus = Annotated[Literal["firing", "resolved"] | None, BeforeValidator(_status), Lenient]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class AlertmanagerAlert(_Lenient):
    """One alert of an Alertmanager notification."""

    status: AlertStatus = None
    labels: Labels = {}
    annotations: Labels = {}
    starts_at: Annotated[Time, Field(alias="startsAt")] = None
    ends_at: Annotated[Time, Field(alias="endsAt")] = None
    generator_url: Annotated[Text, Field(alias="generatorURL")] = None
    fingerprint: Text = None

    def start(self) -> datetime | None:
        return self.starts_at

    def end(self) -> datetime | None:
        return self.ends_at


class AlertmanagerWebhook(_Lenient):
    """Alertmanager's webhook body, version 4 (the alerts are read one by one, see read_alertmanager)."""

    version: Text = "4"
    receiver: Text = ""
    status: AlertStatus = None
    alerts: list[AlertmanagerAlert] = Field(description="The alerts of the group; at least the labels of each.")
    group_labels: Annotated[Labels, Field(alias="groupLabels")] = {}
    common_labels: Annotated[Labels, Field(alias="commonLabels")] = {}
    common_annotations: Annotated[Labels, Field(alias="commonAnnotations")] = {}
    external_url: Annotated[Text, Field(alias="externalURL")] = ""
    group_key: Annotated[Text, Field(alias="groupKey")] = ""
    truncated_alerts: Annotated[int, Field(alias="truncatedAlerts", ge=0), lenient(int)] = 0


EventType = Literal["alert.fired", "alert.resolved"]
_EVENT_TYPES: dict[str, EventType] = {
    "alert.fired": "alert.fired",
    "fired": "alert.fired",
    "firing": "alert.fired",
    "alert.resolved": "alert.resolved",
    "resolved": "alert.resolved",
}


def _event_type(value: Any) -> Any:
    if isinstance(value, str):
        return _EVENT_TYPES.get(value.strip().lower(), value)
    return value


def _required_text(value: Any) -> Any:
    text = _text(value)
    return text.strip() if isinstance(text, str) else text


RequiredText = Annotated[str, BeforeValidator(_required_text), Field(min_length=1)]


class Event(_Lenient):
    """The generic event for other sources: one curl opens or closes an incident."""

    type: Annotated[
        EventType,
        BeforeValidator(_event_type),
        Field(description="alert.fired or alert.resolved (also fired, resolved)"),
    ]
    source: Annotated[RequiredText, Field(description="Who sends it; with alert_id it identifies the alert.")]
    alert_id: Annotated[RequiredText, Field(description="Stable id of the alert; resend it with alert.resolved.")]
    alert_name: Annotated[RequiredText, Field(description="Becomes the alertname label.")]
    service: Text = None
    namespace: Text = None
    severity: Text = None
    message: Text = None
    labels: Labels = {}
    timestamp: Time = None
    url: Text = None

    def time(self) -> datetime | None:
        return self.timestamp


class EventBatch(_Lenient):
    """Several events in one request."""

    events: Annotated[list[Event], Field(min_length=1)]


_WIRE_NAMES = {
    name: info.alias
    for model in (AlertmanagerAlert, AlertmanagerWebhook, Event)
    for name, info in model.model_fields.items()
    if info.alias
}


# json.loads joins a surrogate pair into one character, so a surrogate left in a string is a lone one
# ("\ud800" is valid JSON): it cannot be encoded as UTF-8, and would fail every write that carries it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def sanitized(data: Any, reading: Reading, where: str = "") -> Any:
    """The body with every lone UTF-16 surrogate in any string (keys too) replaced by U+FFFD, each field warned."""
    if isinstance(data, str):
        if _LONE_SURROGATE.search(data) is None:
            return data
        reading.warn(f"{where or 'body'}: a lone UTF-16 surrogate was replaced with U+FFFD")
        return _LONE_SURROGATE.sub("\ufffd", data)
    if isinstance(data, list):
        return [sanitized(item, reading, f"{where}.{i}" if where else str(i)) for i, item in enumerate(data)]
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            name = _LONE_SURROGATE.sub("\ufffd", key)
            if name != key:
                reading.warn(f"{where or 'body'}: a key with a lone UTF-16 surrogate was renamed {name!r}")
            out[name] = sanitized(value, reading, f"{where}.{name}" if where else name)
        return out
    return data


def _first_problem(error: ValidationError, where: str) -> str:
    item = error.errors()[0]
    loc = ".".join(str(p) for p in (where, *item["loc"]) if p != "")
    return f"{loc or 'body'}: {item['msg']}"


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Unreadable(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def read_alertmanager(data: Any, reading: Reading) -> tuple[AlertmanagerWebhook, list[AlertmanagerAlert]]:
    """The notification and every alert in it that is an object; other entries are reported."""
    body = _object(data, "body")
    raw_alerts = body.get("alerts")
    if not isinstance(raw_alerts, list):
        shown = "missing" if raw_alerts is None else f"a {type(raw_alerts).__name__}"
        raise Unreadable(f"alerts: expected a list of alerts, got {shown}")
    envelope = AlertmanagerWebhook.model_validate({**body, "alerts": []}, context=reading.context())
    if envelope.truncated_alerts:
        reading.warn(f"Alertmanager left {envelope.truncated_alerts} alerts of this group out (max_alerts)")
    alerts = []
    for index, raw in enumerate(raw_alerts):
        where = f"alerts.{index}"
        if not isinstance(raw, dict):
            reading.rejected.append(f"{where}: expected an alert object, got {type(raw).__name__}")
            continue
        alerts.append(AlertmanagerAlert.model_validate(raw, context=reading.at(where).context()))
    return envelope, alerts


def read_events(data: Any, reading: Reading) -> list[Event]:
    """One event or {"events": [...]}; in a batch an unreadable event is reported, the rest kept."""
    body = _object(data, "body")
    if "events" not in body:
        try:
            return [Event.model_validate(body, context=reading.context())]
        except ValidationError as error:
            raise Unreadable(_first_problem(error, "")) from None
    raw_events = body["events"]
    if not isinstance(raw_events, list) or not raw_events:
        raise Unreadable("events: expected a non-empty list of events")
    events = []
    for index, raw in enumerate(raw_events):
        where = f"events.{index}"
        try:
            events.append(Event.model_validate(_object(raw, where), context=reading.at(where).context()))
        except ValidationError as error:
            reading.rejected.append(_first_problem(error, where))
        except Unreadable as error:
            reading.rejected.append(str(error))
    if not events:
        raise Unreadable("no event could be read: " + "; ".join(reading.rejected[:5]))
    return events
