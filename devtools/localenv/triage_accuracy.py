"""How well the rules triage labelled alerts: the fixture table's reader and scorer (a unit test and a bench).

A fixture is scored the way a real alert is handled: normalized from an Alertmanager payload,
folded into a new incident's status, triaged by the rules; the incident's severity after triage
and triage's category are compared with the labels an SRE gave it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from incidentops.api.v1alpha1.common import Severity
from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentStatus
from incidentops.config import Config
from incidentops.ingest.alerts import from_alertmanager
from incidentops.ingest.merge import apply_alerts
from incidentops.ingest.payloads import AlertmanagerWebhook
from incidentops.triage.assess import rules_triage

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Fixture:
    alert: str
    severity: str
    expected_severity: str
    expected_category: str | None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    fixture: Fixture
    severity: str
    category: str | None

    @property
    def right(self) -> bool:
        return (self.severity, self.category) == (self.fixture.expected_severity, self.fixture.expected_category)


@dataclass(frozen=True)
class Score:
    outcomes: list[Outcome]

    @property
    def severity_accuracy(self) -> float:
        return sum(o.severity == o.fixture.expected_severity for o in self.outcomes) / max(1, len(self.outcomes))

    @property
    def category_accuracy(self) -> float:
        return sum(o.category == o.fixture.expected_category for o in self.outcomes) / max(1, len(self.outcomes))

    @property
    def misses(self) -> list[str]:
        return [
            f"{o.fixture.alert}: got {o.severity}/{o.category}, labelled "
            f"{o.fixture.expected_severity}/{o.fixture.expected_category}"
            for o in self.outcomes
            if not o.right
        ]


def load(path: Path) -> list[Fixture]:
    items: list[dict[str, Any]] = yaml.safe_load(path.read_text())
    return [
        Fixture(
            alert=str(i["alert"]),
            severity=str(i["severity"]),
            expected_severity=str(i["expect"][0]),
            expected_category=i["expect"][1],
            labels={str(k): str(v) for k, v in (i.get("labels") or {}).items()},
            annotations={str(k): str(v) for k, v in (i.get("annotations") or {}).items()},
        )
        for i in items
    ]


def triage(fixture: Fixture, config: Config | None = None) -> Outcome:
    config = config or Config(webhook_auth="none")
    labels = {
        "alertname": fixture.alert,
        "service": "svc",
        "namespace": "shop",
        "severity": fixture.severity,
        **fixture.labels,
    }
    payload = AlertmanagerWebhook.model_validate(
        {
            "version": "4",
            "status": "firing",
            "receiver": "r",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": fixture.annotations,
                    "startsAt": "2026-12-01T11:59:00Z",
                }
            ],
        }
    )
    [alert] = from_alertmanager(payload, payload.alerts, config, NOW)
    spec = IncidentSpec(title=fixture.alert, severity=alert.severity, service="svc", category=labels.get("category"))
    opened = IncidentStatus(severity=alert.severity, spec_severity=alert.severity, severity_source="alerts")
    status, _ = apply_alerts(opened, [alert], now=NOW, auto_resolve=True, recent_limit=5, common_labels=labels)
    assessed = rules_triage(spec, status, [])
    final = min(Severity(status.severity or alert.severity), Severity(assessed.rules.severity or "SEV5"))
    return Outcome(fixture, str(final), str(assessed.rules.category) if assessed.rules.category else None)


def score(fixtures: Sequence[Fixture]) -> Score:
    return Score([triage(f) for f in fixtures])
