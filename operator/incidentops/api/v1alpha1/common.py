"""Types shared by every incidentops resource: base model config, enums, durations, references."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, ValidationError
from pydantic.alias_generators import to_camel

GROUP = "incidentops.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "incidentops"

# Durations use the units Prometheus accepts (y = 365d, w = 7d, d = 24h), written Go-style:
# "90s", "1h30m", "1.5h", "1d". Prometheus itself requires the units in descending order and
# whole numbers; Go-style input is the more forgiving of the two and covers every Prometheus one.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w|y))+$"
# The subset that CEL's duration() understands (it has no d, w or y). Written with [.] rather
# than an escaped dot so the same text works as a CEL string literal and as a Python regex.
CEL_DURATION_PATTERN = r"^([0-9]+([.][0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
    "y": 365 * 86400.0,
}
DURATION_UNITS = "ms, s, m, h, d (24h), w (7d) or y (365d)"
# Go and Prometheus keep durations in int64 nanoseconds, about 292 years at most.
_MAX_DURATION_SECONDS = (2**63 - 1) / 1e9


def parse_duration(text: str) -> timedelta:
    """Parse a duration ("90s", "1h30m", "1d") with the units Prometheus accepts."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f"invalid duration {text!r}: use numbers with a unit of {DURATION_UNITS}, e.g. 30s, 5m, 1h30m or 1d"
        )
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    if seconds > _MAX_DURATION_SECONDS:
        raise ValueError(f"invalid duration {text!r}: too long, the most is about 292y")
    return timedelta(seconds=seconds)


def _parsable_duration(text: str) -> str:
    parse_duration(text)
    return text


def is_cel_duration(text: str) -> bool:
    """Whether CEL's duration() can parse the text (no d, w or y unit), so a CEL rule can compare it."""
    return re.fullmatch(CEL_DURATION_PATTERN, text) is not None


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a Z, the way Kubernetes writes timestamps."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _zoned(value: datetime) -> datetime:
    """A time written without an offset (kubectl patch by hand, say) is UTC, as everywhere in incidentops."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def parse_time(text: str) -> datetime:
    """An RFC 3339 time as Kubernetes writes it ("...Z"); without an offset it is UTC. Raises ValueError."""
    return _zoned(datetime.fromisoformat(text.replace("Z", "+00:00")))


def located(error: ValidationError, root: str = "spec") -> str:
    """The first problem of a validation error, located from `root`: "spec.levels.1.after: ..."."""
    first = error.errors()[0]
    return f"{'.'.join([root, *(str(p) for p in first['loc'])])}: {first['msg']}"


Timestamp = Annotated[datetime, AfterValidator(_zoned), PlainSerializer(format_time, return_type=str, when_used="json")]
Duration = Annotated[
    str, Field(pattern=DURATION_PATTERN, max_length=32, examples=["5m"]), AfterValidator(_parsable_duration)
]
ObservedGeneration = Annotated[
    int | None, Field(ge=0, description="The metadata.generation of the spec this status was computed from.")
]
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

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", use_enum_values=True, defer_build=True
    )

    def wire(self) -> dict[str, Any]:
        """The JSON-ready dict as stored in Kubernetes (camelCase, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(Model):
    """Base for status models: fields this version does not know (a newer operator's) are kept, not erased.

    A write is the whole status, read, changed and put back: with extra="ignore" an older replica
    (a rolling upgrade) or a concern whose model lags would silently drop every field it does not
    know. Kept as extras, they go back as they came; the CRD preserves them too.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", use_enum_values=True, defer_build=True
    )


SEVERITY_LEVELS = (
    "SEV1: complete outage, data loss or security breach. "
    "SEV2: major degradation, more than 50% of users affected. "
    "SEV3: partial impact, less than 50% of users affected, or latency 2-5x normal. "
    "SEV4: minimal impact, a workaround exists. "
    "SEV5: informational."
)


class Severity(StrEnum):
    """How bad an incident is, SEV1 (worst) to SEV5.

    SEV1: complete outage, data loss or security breach. SEV2: major degradation, more than 50% of
    users affected. SEV3: partial impact, less than 50% of users affected, or latency 2-5x normal.
    SEV4: minimal impact, a workaround exists. SEV5: informational.
    """

    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"
    SEV5 = "SEV5"


# The one table of severity names: alert labels (INCIDENTOPS_SEVERITY_LABELS), the events API and the
# plugin's arguments all read it. P1..P5 follow PagerDuty and Opsgenie (P1 is the top priority);
# P0, which some teams use above P1, is SEV1 too. INCIDENTOPS_SEVERITY_MAP is merged over it.
DEFAULT_SEVERITY_MAP: dict[str, Severity] = {
    "sev1": Severity.SEV1,
    "p0": Severity.SEV1,
    "p1": Severity.SEV1,
    "critical": Severity.SEV1,
    "page": Severity.SEV1,
    "emergency": Severity.SEV1,
    "sev2": Severity.SEV2,
    "p2": Severity.SEV2,
    "high": Severity.SEV2,
    "major": Severity.SEV2,
    "error": Severity.SEV2,
    "sev3": Severity.SEV3,
    "p3": Severity.SEV3,
    "warning": Severity.SEV3,
    "medium": Severity.SEV3,
    "moderate": Severity.SEV3,
    "sev4": Severity.SEV4,
    "p4": Severity.SEV4,
    "low": Severity.SEV4,
    "minor": Severity.SEV4,
    "sev5": Severity.SEV5,
    "p5": Severity.SEV5,
    "info": Severity.SEV5,
    "informational": Severity.SEV5,
    "none": Severity.SEV5,
}


def severity_aliases(table: Mapping[str, Severity] | None = None) -> str:
    """The table in words, for help texts and kubectl explain: "SEV1: sev1, p0, p1, critical, ...; SEV2: ..."."""
    table = DEFAULT_SEVERITY_MAP if table is None else table
    return "; ".join(
        f"{level}: {', '.join(name for name, mapped in table.items() if mapped == level)}" for level in Severity
    )


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

    name: Annotated[ObjectName, Field(description="Name of the referenced object, in the same namespace.")]


class SecretKeyReference(Model):
    """Credentials always come from a Secret in the object's namespace, never inline."""

    name: Annotated[ObjectName, Field(description="Name of the Secret, in the same namespace as this object.")]
    key: Annotated[
        str,
        Field(
            pattern=r"^[-._a-zA-Z0-9]+$",
            max_length=253,
            description="Key in the Secret's data whose value is used, e.g. slack-webhook-url.",
        ),
    ]


class WorkloadReference(Model):
    """A workload an incident affects or a remediation step targets."""

    kind: Annotated[
        Literal["Deployment", "StatefulSet", "DaemonSet", "Pod", "Node"],
        Field(description="Kind of the workload: Deployment (the default), StatefulSet, DaemonSet, Pod or Node."),
    ] = "Deployment"
    name: Annotated[
        str | None,
        Field(
            max_length=253,
            description="Name of the workload, e.g. checkout. In a Runbook step's target it may be left out: "
            "the step then acts on the incident's affected workload of this kind.",
        ),
    ] = None
    namespace: Annotated[
        DNSLabel | None,
        Field(
            description="Namespace of the workload; left out, the incident's namespace. Not used for Nodes, "
            "which belong to no namespace."
        ),
    ] = None
