"""Samples validate against the models and the generated schemas; invalid variants fail in both."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from incidentops.api.v1alpha1.common import CEL_DURATION_PATTERN
from incidentops.api.v1alpha1.crdgen import crd, file_name, openapi_schema, render
from incidentops.api.v1alpha1.resources import KIND_BY_NAME, KINDS

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "manifests" / "samples").glob("*.yaml")) + sorted((ROOT / "runbooks").glob("*.yaml"))


def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in SAMPLES:
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] in KIND_BY_NAME)
    return docs


def _schema_errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(openapi_schema(KIND_BY_NAME[doc["kind"]]))
    return [".".join(str(p) for p in e.absolute_path) for e in validator.iter_errors(doc)]


def _model_errors(doc: dict[str, Any]) -> list[str]:
    try:
        KIND_BY_NAME[doc["kind"]].spec_model.model_validate(doc["spec"])
    except ValidationError as error:
        return ["spec." + ".".join(str(p) for p in e["loc"]) for e in error.errors()]
    return []


def test_every_kind_has_a_sample() -> None:
    assert {d["kind"] for d in _documents()} == {k.kind for k in KINDS}


@pytest.mark.parametrize("doc", _documents(), ids=lambda d: d["kind"])
def test_samples_validate_against_model_and_schema(doc: dict[str, Any]) -> None:
    assert _model_errors(doc) == []
    assert _schema_errors(doc) == []


def _sample(kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(d for d in _documents() if d["kind"] == kind))


def _set(doc: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


INVALID = [
    ("Incident", ["spec", "severity"], "SEV9", "spec.severity"),
    ("Incident", ["spec", "title"], "", "spec.title"),
    ("Incident", ["spec", "category"], "weather", "spec.category"),
    ("DetectionRule", ["spec", "for"], "5 minutes", "spec.for"),
    ("DetectionRule", ["spec", "groupBy"], ["not-a-label"], "spec.groupBy.0"),
    ("Runbook", ["spec", "steps", 0, "action"], "reboot-the-world", "spec.steps.0.action"),
    ("Runbook", ["spec", "minConfidence"], 1.5, "spec.minConfidence"),
    ("Runbook", ["spec", "steps", 0, "name"], "Not_DNS", "spec.steps.0.name"),
    ("EscalationPolicy", ["spec", "levels", 0, "after"], "soon", "spec.levels.0.after"),
    ("EscalationPolicy", ["spec", "repeat", "times"], 99, "spec.repeat.times"),
    ("EscalationPolicy", ["spec", "levels", 0, "targets", 0, "type"], "robot", "spec.levels.0.targets.0.type"),
]


@pytest.mark.parametrize(("kind", "path", "value", "field"), INVALID, ids=[i[3] + "=" + str(i[2]) for i in INVALID])
def test_invalid_variants_fail_in_both_naming_the_field(kind: str, path: list[Any], value: Any, field: str) -> None:
    doc = _set(_sample(kind), path, value)
    assert any(e.startswith(field) for e in _model_errors(doc)), _model_errors(doc)
    assert field in _schema_errors(doc) or any(e.startswith(field) for e in _schema_errors(doc)), _schema_errors(doc)


VALID_WITH_PROMETHEUS_UNITS = [
    ("DetectionRule", ["spec", "for"], "1d"),
    ("DetectionRule", ["spec", "resolveAfter"], "1w"),
    ("Runbook", ["spec", "safety", "cooldown"], "1d12h"),
    ("Runbook", ["spec", "verify", "timeout"], "1.5d"),
    ("EscalationPolicy", ["spec", "levels", 1, "after"], "1d"),
    ("EscalationPolicy", ["spec", "schedules", 0, "rotation"], "1w"),
    ("EscalationPolicy", ["spec", "repeat", "interval"], "1y"),
]


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    VALID_WITH_PROMETHEUS_UNITS,
    ids=[".".join(map(str, i[1])) + "=" + i[2] for i in VALID_WITH_PROMETHEUS_UNITS],
)
def test_durations_take_days_weeks_and_years_in_both(kind: str, path: list[Any], value: str) -> None:
    doc = _set(_sample(kind), path, value)
    assert _model_errors(doc) == []
    assert _schema_errors(doc) == []


def test_delays_cel_cannot_compare_are_left_to_readiness() -> None:
    """CEL's duration() has no d/w/y: the rule compares only delays without them, and so does the model."""
    doc = _set(_sample("EscalationPolicy"), ["spec", "levels", 0, "after"], "1d")
    assert _model_errors(doc) == []
    levels = openapi_schema(KIND_BY_NAME["EscalationPolicy"])["properties"]["spec"]["properties"]["levels"]
    (rule,) = levels["x-kubernetes-validations"]
    guard, _, comparison = rule["rule"].partition(" || ")
    assert guard == f"self.exists(l, !l.after.matches('{CEL_DURATION_PATTERN}'))"
    assert "duration(l.after)" in comparison


def test_unknown_field_is_refused_by_the_model() -> None:
    doc = _set(_sample("Runbook"), ["spec", "stepz"], [])
    assert "spec.stepz" in _model_errors(doc)


@pytest.mark.parametrize(
    ("kind", "mutate", "model_message", "cel_message"),
    [
        (
            "Runbook",
            lambda d: d["spec"]["steps"].append(dict(d["spec"]["steps"][0])),
            "step names must be unique",
            "step names must be unique",
        ),
        (
            "EscalationPolicy",
            lambda d: _set(d, ["spec", "levels", 1, "after"], "0m"),
            "strictly increasing 'after' delays",
            "escalation levels must have strictly increasing 'after' delays",
        ),
        (
            "DetectionRule",
            lambda d: d["spec"].pop("expr"),
            "exactly one of expr or conditions",
            "exactly one of expr or conditions must be set",
        ),
        (
            "EscalationPolicy",
            lambda d: d["spec"]["levels"][0]["channels"].__setitem__(0, {"type": "slack", "slackChannel": "#inc"}),
            "slack channel needs secretRef",
            "slack, pagerduty, sms, phone and statuspage channels need secretRef",
        ),
    ],
)
def test_cross_field_rules_in_model_and_cel(kind: str, mutate: Any, model_message: str, cel_message: str) -> None:
    """The model enforces what CEL enforces in the apiserver; the CRD carries the CEL rule and message."""
    doc = _sample(kind)
    mutate(doc)
    with pytest.raises(ValidationError, match=model_message):
        KIND_BY_NAME[kind].spec_model.model_validate(doc["spec"])
    assert f"message: {cel_message}" in render(KIND_BY_NAME[kind]).replace("'", "").replace('"', "") or (
        cel_message in render(KIND_BY_NAME[kind])
    )


def test_committed_crds_match_the_models() -> None:
    for kind in KINDS:
        path = ROOT / "crds" / file_name(kind)
        assert path.exists(), f"{path} missing: run make crds"
        assert path.read_text() == render(kind), f"{path} drifted from the models: run make crds"


def test_crds_have_status_subresource_printer_columns_and_short_names() -> None:
    for kind in KINDS:
        manifest = crd(kind)
        version = manifest["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert version["additionalPrinterColumns"]
        assert manifest["spec"]["names"]["shortNames"]
        assert manifest["spec"]["names"]["categories"] == ["incidentops"]
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        assert "observedGeneration" in status and "conditions" in status
    columns = {c["name"] for c in crd(KIND_BY_NAME["Incident"])["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert {"Severity", "State", "Service", "Alerts", "Level", "Age"} <= columns


def test_status_fields_no_model_knows_survive_a_round_trip_and_the_crd_keeps_them() -> None:
    """A newer operator's fields (here retrospective, triage.model) come back as they went: nothing erased."""
    from incidentops.api.v1alpha1.incident import IncidentStatus  # noqa: PLC0415

    written = {
        "state": "Detected",
        "retrospective": {"name": "pm-1", "state": "Draft"},
        "triage": {"source": "llm", "model": "claude-x", "toolCalls": [{"name": "recent_changes"}]},
        "remediation": {"phase": "Running", "futureKnob": 3},
    }
    back = IncidentStatus.model_validate(written).wire()
    assert back["retrospective"] == written["retrospective"]
    assert back["triage"]["model"] == "claude-x" and back["triage"]["toolCalls"] == [{"name": "recent_changes"}]
    assert back["remediation"]["futureKnob"] == 3
    status = openapi_schema(KIND_BY_NAME["Incident"])["properties"]["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True
    assert status["properties"]["remediation"]["x-kubernetes-preserve-unknown-fields"] is True
