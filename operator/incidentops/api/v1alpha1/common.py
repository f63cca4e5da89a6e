"""Types shared by every incidentops resource: base model config, enums, durations, references."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

GROUP = "incidentops.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "incidentops"

# CEL's duration() understands h, m, s, ms; days are left out on purpose so the schema and CEL agree.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration ("90s", "1h30m") as the schema admits it."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use a number with a unit of ms, s, m or h, e.g. 5m")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a Z, the way Kubernetes writes timestamps."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Timestamp = Annotated[datetime, PlainSerializer(format_time, return_type=str, when_used="json")]
Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=32, examples=["5m"])]
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
DNSLabel = Annotated[str, Field(pattern=DNS_LABEL_PATTERN, max_length=63)]
ObjectName = Annotated[str, Field(pattern=OBJECT_NAME_PATTERN, max_length=253)]


def is_dns_label(text: str) -> bool:
    """Whether the text can name a namespace (RFC 1123 label)."""
    return len(text) <= 63 and re.fullmatch(DNS_LABEL_PATTERN, text) is not None


def is_object_name(text: str) -> bool:
    """Whether the text can name a Deployment, a Pod, a Node (RFC 1123 subdomain)."""
    return len(text) <= 253 and re.fullmatch(OBJECT_NAME_PATTERN, text) is not None


LabelMap = dict[str, Annotated[str, Field(max_length=1024)]]


class Model(BaseModel):
    """Spec models: camelCase on the wire; unknown fields refused, as kubectl's strict validation does."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", use_enum_values=True)

    def wire(self) -> dict[str, Any]:
        """The JSON-ready dict as stored in Kubernetes (camelCase, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(Model):
    """Base for status models: tolerant of fields written by newer or older operators."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", use_enum_values=True)


class Severity(StrEnum):
    """SEV1 is a complete outage; SEV5 is informational (see REQUIREMENTS.md)."""

    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"
    SEV5 = "SEV5"


class Category(StrEnum):
    """What kind of failure an incident is; drives triage, runbook matching and routing."""

    AVAILABILITY = "availability"
    PERFORMANCE = "performance"
    DATA_INTEGRITY = "data-integrity"
    SECURITY = "security"
    CAPACITY = "capacity"
    DEPENDENCY = "dependency"
    CONFIGURATION = "configuration"
    MODEL_QUALITY = "model-quality"


class LocalObjectReference(Model):
    """A reference to an object of a known kind in the same namespace."""

    name: ObjectName


class SecretKeyReference(Model):
    """Credentials always come from a Secret in the object's namespace, never inline."""

    name: ObjectName
    key: Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)]


class WorkloadReference(Model):
    """A workload an incident affects or a remediation step targets."""

    kind: Literal["Deployment", "StatefulSet", "DaemonSet", "Pod", "Node"] = "Deployment"
    name: Annotated[str | None, Field(max_length=253)] = None
    namespace: DNSLabel | None = None
