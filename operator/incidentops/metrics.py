"""Prometheus metrics the operator exports on /metrics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import get_args

from prometheus_client import Counter, Histogram, generate_latest
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

from incidentops.api.v1alpha1.common import Severity
from incidentops.api.v1alpha1.escalationpolicy import ChannelType
from incidentops.api.v1alpha1.incident import OPEN_STATES
from incidentops.api.v1alpha1.runbook import Action

_DURATION_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)

ALERTS_RECEIVED = Counter(
    "incidentops_alerts_received_total", "Alert notifications received, duplicates included.", ["source"]
)
ALERTS_DEDUPLICATED = Counter(
    "incidentops_alerts_deduplicated_total", "Alert notifications that matched an alert already firing."
)
ALERTS_UNKNOWN_SEVERITY = Counter(
    "incidentops_alerts_unknown_severity_total",
    "Alerts whose severity label the severity map does not know (treated as the default severity).",
)
ALERTS_REJECTED = Counter("incidentops_alerts_rejected_total", "Webhook deliveries refused, by reason.", ["reason"])
INCIDENTS_CREATED = Counter("incidentops_incidents_created_total", "Incidents opened.", ["severity"])
WEBHOOK_SECONDS = Histogram(
    "incidentops_webhook_duration_seconds",
    "Time from a webhook's arrival to its answer (after persistence).",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_DROPPED = Counter(
    "incidentops_events_dropped_total",
    "Kubernetes Events not posted because too many were already waiting (a storm of new incidents).",
)
KUBE_REQUEST_SECONDS = Histogram(
    "incidentops_kube_request_seconds",
    "Kubernetes API calls made by the operator, by verb, resource and result.",
    ["verb", "resource", "result"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
STATUS_WRITES = Counter(
    "incidentops_status_writes_total",
    "Incident status writes by concern: ok, unchanged (nothing to write), conflict (lost a race: read and "
    "decided again) or gave_up (kept losing; looked at again later).",
    ["concern", "result"],
)
TIME_TO_ACKNOWLEDGE = Histogram(
    "incidentops_time_to_acknowledge_seconds",
    "Detection to acknowledgement.",
    ["severity"],
    buckets=_DURATION_BUCKETS,
)
TIME_TO_RESOLVE = Histogram(
    "incidentops_time_to_resolve_seconds", "Detection to resolution.", ["severity"], buckets=_DURATION_BUCKETS
)


NOTIFICATIONS = Counter(
    "incidentops_notifications_total",
    "Notification attempts by channel and result: delivered, retry or failed (given up).",
    ["channel", "result"],
)
ESCALATION_LEVELS = Counter(
    "incidentops_escalation_levels_total", "Escalation levels notified, by level (1 = first).", ["level"]
)
ESCALATION_LATENESS = Histogram(
    "incidentops_escalation_lateness_seconds",
    "How long after its deadline a level was notified (the time it was fired minus the deadline).",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120),
)
UNPAGED = Counter(
    "incidentops_incidents_unpaged_total",
    "Incidents nobody will be paged for: no usable EscalationPolicy matches and no default can page.",
)
ACKNOWLEDGEMENTS = Counter(
    "incidentops_acknowledgements_total",
    "Incidents acknowledged, by the escalation level reached when they were (0: before any page).",
    ["level"],
)


class OpenIncidents(Collector):
    """Open incidents by severity, from what the operator's watch last saw of each incident."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], tuple[str, str]] = {}

    def observe(self, namespace: str, name: str, severity: str, state: str) -> None:
        self._seen[(namespace, name)] = (severity, state)

    def forget(self, namespace: str, name: str) -> None:
        self._seen.pop((namespace, name), None)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "incidentops_incidents_open", "Incidents not yet resolved, by severity.", labels=["severity"]
        )
        counts = dict.fromkeys((s.value for s in Severity), 0)
        for severity, state in self._seen.values():
            if state in OPEN_STATES and severity in counts:
                counts[severity] += 1
        for severity, count in counts.items():
            family.add_metric([severity], count)
        yield family


OPEN_INCIDENTS = OpenIncidents()
REGISTRY.register(OPEN_INCIDENTS)


def exposition() -> bytes:
    """The text exposition of every registered metric."""
    return generate_latest(REGISTRY)


REMEDIATIONS = Counter(
    "incidentops_remediations_total",
    "Runbook runs that ended, by runbook and result (Verified, Done, Failed, Stopped, NoRunbook).",
    ["runbook", "result"],
)
ACTIONS = Counter(
    "incidentops_remediation_actions_total",
    "Remediation actions applied, by action and result (ok, failed, refused, skipped).",
    ["action", "result"],
)
GUARD_BLOCKS = Counter(
    "incidentops_remediation_guard_blocks_total",
    "Steps a guard held for approval or refused, by reason (Cooldown, StormBudgetSpent, ...).",
    ["reason"],
)
TIME_TO_FIRST_ACTION = Histogram(
    "incidentops_remediation_time_to_first_action_seconds",
    "From the Incident's detection to its first remediation action.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
VERIFICATION_SECONDS = Histogram(
    "incidentops_remediation_verification_seconds",
    "From the start of verification to its result, by result.",
    ["result"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 900, 1800),
)

RULE_EVALUATIONS = Counter(
    "incidentops_rule_evaluations_total",
    "DetectionRule evaluations, by result (ok, PrometheusUnreachable, QueryRejected, NoPrometheus).",
    ["result"],
)
RULE_EVALUATION_LAG = Histogram(
    "incidentops_rule_evaluation_lag_seconds",
    "How late a DetectionRule evaluation started against its schedule.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TRIAGES = Counter(
    "incidentops_triage_total",
    "Triage results by source (rules, llm) and result (rules: assessed; llm: answered, fell_back, skipped).",
    ["source", "result"],
)
LLM_SECONDS = Histogram(
    "incidentops_llm_triage_seconds",
    "Time one investigation by the model took, from its start to its answer or fallback.",
    buckets=(0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60),
)
LLM_TOKENS = Counter(
    "incidentops_llm_tokens_total", "Tokens the model reported, by direction (in, out).", ["direction"]
)
LLM_FALLBACKS = Counter(
    "incidentops_llm_fallbacks_total", "Investigations whose answer was not used, by reason.", ["reason"]
)
LLM_BUDGET_REFUSALS = Counter(
    "incidentops_llm_budget_refusals_total", "Model calls not made because the hourly call budget was spent."
)
POSTMORTEMS = Counter(
    "incidentops_postmortems_total", "Postmortems written, by how (template, drafted) or failed.", ["result"]
)
RULE_STATUS_WRITES = Counter(
    "incidentops_rule_status_writes_total",
    "DetectionRule status writes after an evaluation: written (something changed, or a minute passed) or unchanged.",
    ["result"],
)


def _known_series() -> None:
    """Closed label sets start at zero, so that rate(), increase() and the ratios on the dashboard and in
    the PrometheusRule have a series to work on before the first failure, not "no data"."""
    for source in ("alertmanager", "events"):
        ALERTS_RECEIVED.labels(source)
    for reason in ("unauthorized", "too_large", "invalid_json", "unreadable", "unreadable_entry"):
        ALERTS_REJECTED.labels(reason)
    for severity in Severity:
        TIME_TO_ACKNOWLEDGE.labels(severity.value)
        TIME_TO_RESOLVE.labels(severity.value)
        INCIDENTS_CREATED.labels(severity.value)
    for channel in get_args(ChannelType):
        for result in ("delivered", "retry", "failed"):
            NOTIFICATIONS.labels(channel, result)
    for action in Action:
        for result in ("ok", "failed", "refused", "skipped"):
            ACTIONS.labels(action.value, result)


_known_series()
