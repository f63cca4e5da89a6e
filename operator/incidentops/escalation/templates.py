"""Message templates: the internal page, updates, the resolution notice, and the customer-facing text.

Alert text is untrusted: templates render in Jinja's sandbox, every field is cut to a bound
before it reaches a template, and the output is cut again. Users override any template through
a ConfigMap (INCIDENTOPS_TEMPLATES_CONFIGMAP, keys such as page.text or customer.text); an
override that fails to render falls back to the built-in one, and the message says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from incidentops.api.v1alpha1.common import Severity, format_time

FIELD_LIMIT = 512
LONG_FIELD_LIMIT = 2048
OUTPUT_LIMIT = 8000
# REQUIREMENTS.md: how often a status update is due, by severity.
UPDATE_EVERY = {"SEV1": "15 minutes", "SEV2": "30 minutes", "SEV3": "60 minutes", "SEV4": "2 hours", "SEV5": "24 hours"}
IMPACT = {
    "SEV1": "a complete outage",
    "SEV2": "a major degradation",
    "SEV3": "a partial degradation",
    "SEV4": "a minor issue",
    "SEV5": "no customer impact",
}

DEFAULTS: dict[str, str] = {
    "page.subject": "[{{ severity }}] {{ title }} ({{ namespace }}/{{ service or name }})",
    "page.text": (
        "{{ severity }} incident {{ namespace }}/{{ name }}: {{ title }}\n"
        "Service: {{ service or 'unknown' }}   Category: {{ category or 'unknown' }}   State: {{ state }}\n"
        "{% if summary %}{{ summary }}\n{% endif %}"
        "Detected {{ detected_at }} ({{ age }} ago); {{ alerts_firing }} alert(s) firing.\n"
        "{% if remediation %}Remediation: {{ remediation }}\n{% endif %}"
        "Escalation level {{ level }}{% if level_name %} ({{ level_name }}){% endif %}"
        "{% if round %}, repeat {{ round }}{% endif %}: {{ targets or 'on call' }}.\n"
        "Acknowledge: kubectl incident ack -n {{ namespace }} {{ name }}"
    ),
    "update.subject": "[{{ severity }}] update: {{ title }}",
    "update.text": (
        "Update on {{ namespace }}/{{ name }} ({{ severity }}): {{ news }}\n"
        "State: {{ state }}{% if acknowledged_by %}, acknowledged by {{ acknowledged_by }}{% endif %}.\n"
        "{% if remediation %}Current actions: {{ remediation }}\n{% endif %}"
        "Next update within {{ next_update }}."
    ),
    "resolution.subject": "[{{ severity }}] resolved: {{ title }}",
    "resolution.text": (
        "Resolved: {{ namespace }}/{{ name }} ({{ severity }}) {{ title }}\n"
        "Duration: {{ duration }}{% if resolved_by %}; resolved by {{ resolved_by }}{% endif %}.\n"
        "{% if root_cause %}Root cause: {{ root_cause }}\n{% endif %}"
        "{% if resolution_summary %}Summary: {{ resolution_summary }}\n{% endif %}"
    ),
    "customer.text": (
        "{% if resolved %}This incident has been resolved. {{ service or 'The service' }} is operating normally."
        "{% else %}We are investigating {{ impact }} affecting {{ service or 'one of our services' }}. "
        "{% if state == 'Monitoring' %}A fix has been applied and we are monitoring the results."
        "{% elif state in ('Identified', 'Mitigating') %}The cause has been identified and a fix is being applied."
        "{% else %}We will post an update within {{ next_update }}.{% endif %}{% endif %}"
    ),
    "customer.name": "{{ service or 'Service' }}: {{ impact }}",
}
HTML = '<html><body><h3>{{ subject }}</h3><pre style="font-family: monospace">{{ text }}</pre></body></html>'
KIND_OF_EVENT = {"page": "page", "acknowledged": "update", "update": "update", "resolved": "resolution"}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    customer_name: str
    customer_text: str
    problems: tuple[str, ...] = ()


def _bounded(value: Any, limit: int = FIELD_LIMIT) -> Any:
    if isinstance(value, str):
        return value if len(value) <= limit else value[: limit - 1] + "…"
    return value


def human_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def fields_of(
    *,
    name: str,
    namespace: str,
    title: str,
    severity: str,
    state: str,
    now: datetime,
    detected_at: datetime | None,
    resolved_at: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The template fields, every string bounded (alert text is untrusted)."""
    detected = detected_at or now
    end = resolved_at or now
    fields: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "title": title,
        "severity": severity,
        "state": state,
        "detected_at": format_time(detected),
        "age": human_duration((now - detected).total_seconds()),
        "duration": human_duration((end - detected).total_seconds()),
        "next_update": UPDATE_EVERY.get(severity, "60 minutes"),
        "impact": IMPACT.get(severity, "an issue"),
        "resolved": state in ("Resolved", "Closed"),
    }
    for key, value in extra.items():
        fields[key] = _bounded(value, LONG_FIELD_LIMIT if key in ("summary", "resolution_summary") else FIELD_LIMIT)
    return {k: _bounded(v) if k not in ("summary", "resolution_summary") else v for k, v in fields.items()}


class Templates:
    """The built-in templates with the user's overrides on top."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        self._env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self._html_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
        self.overrides = {k: v for k, v in (overrides or {}).items() if k in DEFAULTS}

    def _render(self, key: str, fields: Mapping[str, Any], problems: list[str]) -> str:
        source = self.overrides.get(key)
        if source is not None:
            try:
                return self._env.from_string(source).render(fields)[:OUTPUT_LIMIT]
            except TemplateError as error:
                problems.append(f"template {key} failed ({error}); used the built-in one")
        return self._env.from_string(DEFAULTS[key]).render(fields)[:OUTPUT_LIMIT]

    def render(self, event: str, fields: Mapping[str, Any]) -> Rendered:
        """The messages for one notification event (page, acknowledged, update, resolved)."""
        kind = KIND_OF_EVENT.get(event, "update")
        problems: list[str] = []
        subject = self._render(f"{kind}.subject", fields, problems).replace("\n", " ")[:250]
        text = self._render(f"{kind}.text", fields, problems).strip()
        html = self._html_env.from_string(HTML).render(subject=subject, text=text)
        customer_name = self._render("customer.name", fields, problems).replace("\n", " ")[:250]
        customer_text = self._render("customer.text", fields, problems).strip()
        return Rendered(subject, text, html, customer_name, customer_text, tuple(problems))


def severity_of(value: str | None) -> str:
    return str(value) if value in {s.value for s in Severity} else "SEV3"
