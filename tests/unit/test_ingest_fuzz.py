"""Property-based: whatever a sender posts, ingestion never crashes nor builds an Incident the apiserver refuses.

Bodies mix what real senders produce (Alertmanager v4 alerts, generic events) with what they
get wrong: missing, extra and mistyped fields, nulls, huge values, odd, naive and future
timestamps, endsAt before startsAt, unicode, hundreds of labels, entries that are not alerts.
Each body is read, normalized, grouped, turned into the Incident it would open and folded into
its status; the result must validate against the CRD schema the apiserver enforces.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidentops.api.v1alpha1.crdgen import openapi_schema
from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentStatus
from incidentops.api.v1alpha1.resources import INCIDENT
from incidentops.config import load
from incidentops.ingest.alerts import MAX_LABEL_VALUE, MAX_LABELS, Alert, from_alertmanager, from_event
from incidentops.ingest.concern import opening_status
from incidentops.ingest.correlation import GroupKey, correlation_key
from incidentops.ingest.merge import apply_alerts
from incidentops.ingest.payloads import Reading, Unreadable, read_alertmanager, read_events, sanitized
from incidentops.ingest.writer import new_incident

CONFIG = load({"INCIDENTOPS_WEBHOOK_AUTH": "none"})
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
VALIDATOR = jsonschema.Draft7Validator(openapi_schema(INCIDENT))
FUZZ = settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# Any code point, lone UTF-16 surrogates included ("\ud800" is valid JSON and json.loads returns it as is).
any_text = st.text(st.characters(blacklist_categories=()), max_size=30) | st.sampled_from(["\ud800", "a\udfffb"])
json_leaf = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text() | any_text
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
timestamps = st.one_of(
    moments.map(lambda d: d.isoformat()),  # naive: UTC by the README's rule
    moments.map(lambda d: d.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")),
    moments.map(lambda d: d.isoformat() + "+05:30"),
    moments.map(lambda d: d.isoformat() + "-02:00"),
    st.sampled_from(["9999-12-31T23:00:00-02:00", "0001-01-01T00:30:00+01:00"]),
    st.sampled_from(["0001-01-01T00:00:00Z", "", "yesterday", "2026-13-45T99:99:99Z", "2026-11-23"]),
    st.integers(min_value=-(2**40), max_value=2**40),
    json_value,
)
label_names = st.sampled_from(
    ["alertname", "severity", "priority", "service", "app", "namespace", "pod", "deployment", "summary", "description"]
)
label_values = st.one_of(
    st.text(max_size=30),
    st.text(min_size=4097, max_size=6000),  # past every bound the CRD sets on text
    st.sampled_from(["critical", "warning", "info", "P0", "urgent", "SEV2", "checkout", "shop", "Not A Name"]),
    json_value,
)
labels = st.one_of(
    st.dictionaries(label_names | st.text(max_size=20), label_values, max_size=8),
    st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=5), min_size=100, max_size=300),
    json_value,
)
am_alert = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["firing", "resolved", "FIRING", "burning"]) | json_value,
        "labels": labels,
        "annotations": st.dictionaries(st.sampled_from(["summary", "description", "message", "runbook"]), label_values)
        | labels,
        "startsAt": timestamps,
        "endsAt": timestamps,
        "generatorURL": st.text(max_size=3000) | any_text | json_value,
        "fingerprint": st.text(max_size=3000) | json_value,
        "extra": json_value,
    },
)
am_body = st.one_of(
    st.fixed_dictionaries(
        {"alerts": st.lists(am_alert | json_value, max_size=6)},
        optional={
            "status": st.sampled_from(["firing", "resolved"]) | json_value,
            "commonLabels": labels,
            "commonAnnotations": labels,
            "groupLabels": labels,
            "truncatedAlerts": st.integers() | json_value,
            "version": json_value,
        },
    ),
    json_value,
)
event = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["alert.fired", "alert.resolved", "fired", "RESOLVED", "exploded"]) | json_value,
        "source": st.text(max_size=200) | st.integers(),
        "alert_id": st.text(max_size=400) | st.integers() | json_value,
        "alert_name": st.text(max_size=400) | json_value,
        "service": label_values,
        "namespace": label_values,
        "severity": label_values,
        "message": st.text(max_size=9000) | json_value,
        "labels": labels,
        "timestamp": timestamps,
        "url": st.text(max_size=3000) | json_value,
    },
)
event_body = st.one_of(event, st.fixed_dictionaries({"events": st.lists(event | json_value, max_size=5)}), json_value)


def _schema_errors(obj: dict[str, Any]) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in VALIDATOR.iter_errors(obj)]


def _persistable(alerts: list[Alert]) -> None:
    """Every group that would open an Incident builds one the CRD schema accepts, before and after folding."""
    groups: dict[GroupKey, list[Alert]] = defaultdict(list)
    for alert in alerts:
        assert len(alert.labels) <= MAX_LABELS and all(len(v) <= MAX_LABEL_VALUE for v in alert.labels.values())
        groups[GroupKey("fuzz", correlation_key(alert, CONFIG))].append(alert)
    for key, group in groups.items():
        if not any(a.firing for a in group):
            continue
        body = new_incident(key, group, 1, None)
        spec = IncidentSpec.model_validate(body["spec"])
        status, _ = apply_alerts(opening_status(spec, NOW), group, now=NOW, auto_resolve=True, recent_limit=5)
        obj = {**body, "status": status.wire()}
        assert _schema_errors(obj) == []
        json.dumps(obj, ensure_ascii=False).encode()  # what the apiserver is sent: UTF-8, whatever came in
        assert IncidentStatus.model_validate(obj["status"]).alerts.count >= 1
        later = apply_alerts(status, group, now=NOW + timedelta(minutes=2), auto_resolve=True, recent_limit=5)[0]
        assert _schema_errors({**body, "status": later.wire()}) == []


@FUZZ
@given(am_body)
def test_any_alertmanager_body_is_read_or_refused_by_name(body: Any) -> None:
    reading = Reading()
    body = sanitized(body, reading)  # as the webhook does, first
    try:
        envelope, alerts = read_alertmanager(body, reading)
    except Unreadable as error:
        assert not isinstance(body, dict) or not isinstance(body.get("alerts"), list)
        assert str(error).split(":")[0] in ("body", "alerts")
        return
    assert len(alerts) + len(reading.rejected) == len(body["alerts"])  # every entry is kept or reported
    assert len(reading.rejected) == sum(1 for a in body["alerts"] if not isinstance(a, dict))
    _persistable(from_alertmanager(envelope, alerts, CONFIG, NOW))


@FUZZ
@given(event_body)
def test_any_event_body_is_read_or_refused_by_name(body: Any) -> None:
    reading = Reading()
    body = sanitized(body, reading)
    try:
        events = read_events(body, reading)
    except Unreadable as error:
        assert str(error)  # names what is missing or wrong
        return
    if isinstance(body, dict) and "events" in body:
        assert len(events) + len(reading.rejected) == len(body["events"])
    _persistable([from_event(e, CONFIG) for e in events])
