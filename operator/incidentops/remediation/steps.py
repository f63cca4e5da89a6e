"""What a step acts on and with what, for the reading and the acting halves of remediation alike."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.common import parse_duration
from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentStatus
from incidentops.api.v1alpha1.runbook import RunbookStep
from incidentops.egress import EgressPolicy
from incidentops.kube import Obj
from incidentops.prometheus import Prometheus
from incidentops.remediation.actions.base import Context
from incidentops.remediation.targets import Target, resolve
from incidentops.triage.selection import IncidentFacts

NUMBERS = frozenset({"replicas", "set", "revision", "toRevision", "generation"})
FLAGS = frozenset({"unschedulable"})


def parsed(before: Mapping[str, str]) -> dict[str, Any]:
    """What a step replaced, back from status strings to values (only the fields known to be numbers or flags)."""
    values: dict[str, Any] = {}
    for key, value in before.items():
        if key in NUMBERS and value.lstrip("-").isdigit():
            values[key] = int(value)
        elif key in FLAGS:
            values[key] = value == "True"
        else:
            values[key] = value
    return values


@dataclass(frozen=True)
class StepSetting:
    """The operator's settings a step runs with: Prometheus, the egress policy, the rollback lookback."""

    prometheus: Prometheus | None
    egress: EgressPolicy | None
    lookback: timedelta

    def context(self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, at: datetime) -> Context:
        meta = obj["metadata"]
        facts = {
            "namespace": meta["namespace"],
            "service": spec.service or "",
            "severity": str(status.severity or spec.severity),
        }
        return Context(
            incident=f"{meta['namespace']}/{meta['name']}",
            alert_began=status.started_at or status.detected_at,
            now=at,
            prometheus=self.prometheus,
            facts=facts,
            lookback=self.lookback,
            egress=self.egress,
        )

    def target(self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, step: RunbookStep) -> Target:
        facts = IncidentFacts.of(spec, status)
        return resolve(step, obj["metadata"]["namespace"], spec, facts.label_sets)

    def params(self, step: RunbookStep) -> dict[str, Any]:
        return {**step.params.wire(), "timeout": parse_duration(step.timeout).total_seconds()}
