"""Operator configuration from INCIDENTOPS_* environment variables, validated once at start."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from incidentops.api.v1alpha1.common import DEFAULT_SEVERITY_MAP, Severity, parse_duration
from incidentops.egress import EgressPolicy, Protected, parse_rules

PREFIX = "INCIDENTOPS_"


class ConfigError(ValueError):
    """A setting is wrong; the message names the variable and what is expected."""


def severity_map(environ: Mapping[str, str] | None = None) -> dict[str, Severity]:
    """The table with INCIDENTOPS_SEVERITY_MAP merged over it (the plugin reads the same variable)."""
    env = os.environ if environ is None else environ
    text = env.get(PREFIX + "SEVERITY_MAP")
    if not text:
        return dict(DEFAULT_SEVERITY_MAP)
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f'{PREFIX}SEVERITY_MAP: not JSON ({error.msg}); expected e.g. \'{{"p1": "SEV1"}}\'') from None
    if not isinstance(overrides, dict):
        raise ConfigError(f"{PREFIX}SEVERITY_MAP: expected a JSON object mapping label values to SEV1..SEV5")
    merged: dict[str, Severity] = dict(DEFAULT_SEVERITY_MAP)
    for key, value in overrides.items():
        try:
            merged[str(key).strip().lower()] = Severity(str(value).strip().upper())
        except ValueError:
            raise ConfigError(
                f"{PREFIX}SEVERITY_MAP: {key!r} maps to {value!r}; expected one of {', '.join(Severity)}"
            ) from None
    return merged


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class Config(BaseModel):
    """Every setting, with the variable that sets it in the field's description."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    http_host: str = "0.0.0.0"
    http_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    namespaces: list[str] = Field(default=[], description="Watched namespaces; empty means all.")
    incident_namespace: str = Field(default="", description="Where incidents go when no watched namespace fits.")
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    webhook_auth: Literal["token", "none"] = "token"
    webhook_token: str = ""
    webhook_token_secret: str = Field(default="", description="namespace/name/key of a Secret holding the token.")
    max_body_bytes: Annotated[int, Field(ge=1024)] = 10 * 1024 * 1024
    severity_labels: list[str] = ["severity", "priority"]
    severity_map: dict[str, Severity] = dict(DEFAULT_SEVERITY_MAP)
    default_severity: Severity = Severity.SEV3
    service_labels: list[str] = ["service", "app", "job", "deployment"]
    correlation_labels: list[str] = Field(
        default=[], description="Labels forming the correlation key; empty means namespace + service."
    )
    dedup_labels: list[str] = Field(default=[], description="Labels forming the dedup key; empty: fingerprint.")
    correlation_window: str = "5m"
    auto_resolve: bool = True
    recent_alerts: Annotated[int, Field(ge=1, le=10)] = 5
    peering: str = Field(default="standalone", description="Kopf peering name, or 'standalone'.")
    priority: int = 0
    kube_workers: Annotated[int, Field(ge=1, le=128)] = 16
    remediation: bool = Field(default=True, description="Run runbooks at all; false only records the choice.")
    risk_ceiling: Literal["low", "medium", "high"] = Field(
        default="low", description="The highest runbook risk that may run without an approval."
    )
    storm_budget: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=5, description="Automatic remediation runs allowed cluster-wide per storm window."
    )
    storm_window: str = "10m"
    remediation_poll: str = Field(default="5s", description="How often running probes and verifications look again.")
    in_doubt_after: str = Field(
        default="45s", description="How long a recorded step may go without its effect before it is retried."
    )
    rollback_lookback: str = Field(default="24h", description="How far before an alert a rollback looks for a change.")
    prometheus_url: str = Field(default="", description="Prometheus for verify queries and promql-check steps.")
    prometheus_token: str = ""
    prometheus_token_secret: str = Field(default="", description="namespace/name/key of a Secret holding the token.")
    prometheus_timeout: str = "10s"
    escalation: bool = Field(default=True, description="Page people through EscalationPolicies at all.")
    default_escalation_policy: str = Field(
        default="", description="name (in the incident's namespace) or namespace/name of the fallback policy."
    )
    contacts_secret: str = Field(
        default="", description="namespace/name/key of the contact directory (YAML: users and teams)."
    )
    templates_configmap: str = Field(default="", description="namespace/name of a ConfigMap overriding templates.")
    notify_attempts: Annotated[int, Field(ge=1, le=50)] = 6
    notify_backoff: str = Field(default="2s", description="First retry delay of a notification; it doubles.")
    notify_backoff_max: str = "5m"
    notify_timeout: str = Field(default="10s", description="How long one call to a channel may take.")
    smtp_host: str = "localhost"
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    smtp_starttls: bool = False
    smtp_from: str = "incidentops@localhost"
    pagerduty_webhook_secret: str = Field(default="", description="The signing secret of PagerDuty's v3 webhook.")
    pagerduty_webhook_secret_ref: str = Field(default="", description="namespace/name/key of a Secret holding it.")
    http_allow: list[str] = Field(
        default=[],
        description="Where runbook http steps may call besides Services of the incident's own namespace: hosts, "
        "*.domains, IPs or CIDRs, each optionally with :port.",
    )
    notify_allow: list[str] = Field(
        default=[],
        description="Non-public destinations notification channels may call (public addresses always may).",
    )
    cluster_domain: str = Field(default="cluster.local", description="The cluster's DNS domain (svc names).")
    triage_configmap: str = Field(
        default="", description="namespace/name of a ConfigMap with category rules, dependencies and named queries."
    )
    cascade_wait: str = Field(
        default="30s",
        description="How long an incident of a service with declared dependencies holds its first page, for an "
        "upstream incident to show up (then only the root pages).",
    )
    llm: Literal["auto", "off"] = Field(
        default="auto", description="auto: triage with a language model when an API key is configured; off: never."
    )
    llm_api_key_secret: str = Field(
        default="", description="namespace/name/key of a Secret holding the Anthropic API key (else ANTHROPIC_API_KEY)."
    )
    llm_model: str = Field(default="claude-haiku-4-5", max_length=128, description="The model triage asks.")
    llm_timeout: str = Field(default="30s", description="How long one investigation may take, tool calls included.")
    llm_max_tool_calls: Annotated[int, Field(ge=0, le=20)] = Field(
        default=6, description="Read-only tool calls one investigation may make."
    )
    llm_max_tokens: Annotated[int, Field(ge=64, le=8192)] = Field(
        default=1024, description="Output tokens one answer of the model may take."
    )
    llm_token_budget: Annotated[int, Field(ge=1000, le=1_000_000)] = Field(
        default=40_000, description="Input plus output tokens one investigation may use in all."
    )
    llm_calls_per_hour: Annotated[int, Field(ge=0, le=100_000)] = Field(
        default=120, description="Messages API calls this process may make per hour (triage and postmortems)."
    )
    llm_tool_result_bytes: Annotated[int, Field(ge=512, le=65_536)] = Field(
        default=8192, description="Bytes of one tool result handed to the model."
    )
    llm_free_promql: bool = Field(
        default=False, description="Let the model run PromQL of its own (read-only) besides the named queries."
    )
    llm_postmortems: bool = Field(default=True, description="Let the model draft postmortems' narrative sections.")
    retention: str = Field(
        default="", description="How long a Resolved or Closed incident is kept before it is deleted; empty: forever."
    )
    postmortem_severities: list[Severity] = Field(
        default=[Severity.SEV1, Severity.SEV2], description="Severities whose resolution writes a postmortem."
    )

    @field_validator("http_allow", "notify_allow")
    @classmethod
    def _allow(cls, value: list[str]) -> list[str]:
        parse_rules(value)
        return value

    @field_validator("prometheus_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected a URL such as http://prometheus:9090, with http:// or https:// (got {value!r})")
        return value

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        if value:
            parse_duration(value)
        return value

    @field_validator(
        "correlation_window",
        "storm_window",
        "remediation_poll",
        "in_doubt_after",
        "rollback_lookback",
        "prometheus_timeout",
        "notify_backoff",
        "notify_backoff_max",
        "notify_timeout",
        "cascade_wait",
        "llm_timeout",
    )
    @classmethod
    def _window(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator(
        "webhook_token_secret",
        "prometheus_token_secret",
        "contacts_secret",
        "pagerduty_webhook_secret_ref",
        "llm_api_key_secret",
    )
    @classmethod
    def _secret(cls, value: str) -> str:
        if value and len(value.split("/")) != 3:
            raise ValueError("expected namespace/name/key")
        return value

    @field_validator("templates_configmap", "triage_configmap")
    @classmethod
    def _configmap(cls, value: str) -> str:
        if value and len(value.split("/")) != 2:
            raise ValueError("expected namespace/name")
        return value

    @field_validator("default_escalation_policy")
    @classmethod
    def _policy(cls, value: str) -> str:
        if value and len(value.split("/")) > 2:
            raise ValueError("expected name or namespace/name")
        return value

    @property
    def llm_configured(self) -> bool:
        """Whether triage may ask a language model: not turned off, and a key is configured somewhere."""
        return self.llm == "auto" and bool(self.llm_api_key_secret or os.environ.get("ANTHROPIC_API_KEY"))

    def seconds(self, field: str) -> float:
        """A duration setting in seconds, e.g. seconds("remediation_poll")."""
        return parse_duration(str(getattr(self, field))).total_seconds()

    @property
    def correlation_window_seconds(self) -> float:
        return parse_duration(self.correlation_window).total_seconds()

    @property
    def labels_read(self) -> frozenset[str]:
        """Labels the operator interprets; they survive when an alert's labels must be cut."""
        fixed = {"alertname", "namespace", "category", "deployment", "statefulset", "daemonset"}
        return frozenset(
            fixed.union(self.severity_labels, self.service_labels, self.correlation_labels, self.dedup_labels)
        )

    @property
    def home_namespace(self) -> str:
        """The namespace for incidents whose alert names no watched namespace."""
        return self.incident_namespace or (self.namespaces[0] if self.namespaces else "default")

    def watches(self, namespace: str) -> bool:
        return not self.namespaces or namespace in self.namespaces

    def runbook_egress(self, protected: tuple[Protected, ...] = ()) -> EgressPolicy:
        """Where http steps may call: Services of the incident's namespace, and INCIDENTOPS_HTTP_ALLOW."""
        return EgressPolicy(
            "INCIDENTOPS_HTTP_ALLOW",
            parse_rules(self.http_allow),
            public=False,
            protected=protected,
            cluster_domain=self.cluster_domain,
        )

    def channel_egress(self, protected: tuple[Protected, ...] = ()) -> EgressPolicy:
        """Where channels may send: public addresses, the policy's namespace's Services, INCIDENTOPS_NOTIFY_ALLOW."""
        return EgressPolicy(
            "INCIDENTOPS_NOTIFY_ALLOW",
            parse_rules(self.notify_allow),
            public=True,
            protected=protected,
            cluster_domain=self.cluster_domain,
        )


_BOOL_FIELDS = {"auto_resolve", "remediation", "escalation", "smtp_starttls", "llm_free_promql", "llm_postmortems"}
_LIST_FIELDS = {
    "namespaces",
    "severity_labels",
    "service_labels",
    "correlation_labels",
    "dedup_labels",
    "http_allow",
    "notify_allow",
    "postmortem_severities",
}
# Read by the test tooling and the plugin, not by the operator: no warning for them.
TOOLING = frozenset({"CACHE", "LOCAL_CLUSTER", "PROMETHEUS_BIN", "ALERTMANAGER_BIN"})


def unknown_settings(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each INCIDENTOPS_* variable that sets nothing, naming the closest real one."""
    env = os.environ if environ is None else environ
    known = [PREFIX + name.upper() for name in Config.model_fields]
    out = []
    for key in sorted(env):
        if not key.startswith(PREFIX) or key[len(PREFIX) :] in TOOLING or key in known:
            continue
        names = [name[len(PREFIX) :] for name in known]  # the shared prefix would make everything look close
        close = difflib.get_close_matches(key[len(PREFIX) :], names, n=1, cutoff=0.75)
        hint = f"; did you mean {PREFIX}{close[0]}?" if close else ""
        out.append(f"{key} is not a setting of incidentops and is ignored{hint}")
    return out


def load(environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the configuration; raises ConfigError with the offending variable named."""
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    known = set(Config.model_fields)
    for key, value in env.items():
        if not key.startswith(PREFIX):
            continue
        field = key[len(PREFIX) :].lower()
        if field not in known:
            continue
        if field == "postmortem_severities":
            raw[field] = [v.upper() for v in _csv(value) if v.lower() not in ("none", "off")]
        elif field in _LIST_FIELDS:
            raw[field] = _csv(value)
        elif field == "severity_map":
            raw[field] = severity_map(env)
        elif field in _BOOL_FIELDS:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"{key}: expected true or false, got {value!r}")
            raw[field] = value.lower() in ("true", "1", "yes")
        elif field == "log_level":
            raw[field] = value.upper()
        else:
            raw[field] = value
    try:
        config = Config.model_validate(raw)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            name = PREFIX + str(item["loc"][0]).upper() if item["loc"] else PREFIX
            message = str(item["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}={env.get(name, '')!r}: {message}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    if config.webhook_auth == "token" and not (config.webhook_token or config.webhook_token_secret):
        raise ConfigError(
            "webhook authentication needs a token: set INCIDENTOPS_WEBHOOK_TOKEN or "
            "INCIDENTOPS_WEBHOOK_TOKEN_SECRET=namespace/name/key, or run without one explicitly with "
            "INCIDENTOPS_WEBHOOK_AUTH=none"
        )
    return config
