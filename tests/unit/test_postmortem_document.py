"""The postmortem a template writes from a recorded incident, a model's draft over it, and the Open column."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentStatus
from incidentops.api.v1alpha1.postmortem import Peak, PostmortemSpec
from incidentops.postmortem.document import Narrative, build
from incidentops.postmortem.peaks import generator_expr
from incidentops.postmortem.status import changed, status_of

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def recorded() -> tuple[IncidentSpec, IncidentStatus]:
    spec = IncidentSpec.model_validate(
        {
            "title": "Checkout error ratio above 20%",
            "severity": "SEV2",
            "service": "checkout",
            "assignee": "alice",
            "resolution": {
                "by": "bob",
                "at": "2026-12-01T03:20:00Z",
                "summary": "rolled back",
                "rootCause": "bad release",
            },
        }
    )
    status = IncidentStatus.model_validate(
        {
            "state": "Resolved",
            "severity": "SEV2",
            "startedAt": "2026-12-01T02:59:30Z",
            "detectedAt": "2026-12-01T03:00:00Z",
            "acknowledgedAt": "2026-12-01T03:04:00Z",
            "acknowledgedBy": "alice",
            "resolvedAt": "2026-12-01T03:20:00Z",
            "resolvedBy": "bob",
            "alerts": {"count": 2, "names": ["CheckoutErrors"], "signals": {"errorRatio": 0.62}},
            "metrics": {
                "timeToDetectSeconds": 30,
                "timeToAcknowledgeSeconds": 240,
                "timeToMitigateSeconds": 600,
                "timeToResolveSeconds": 1200,
            },
            "triage": {
                "source": "llm",
                "category": "availability",
                "reasoning": "errors after the release",
                "llm": {"state": "Answered", "model": "claude-x", "answer": {"suspectedCause": "release v2"}},
            },
            "remediation": {
                "runbook": "rollback-bad-release",
                "phase": "Verified",
                "verified": True,
                "reason": "clear for 3m",
                "steps": [
                    {
                        "name": "rollback",
                        "action": "rollback",
                        "state": "Succeeded",
                        "automatic": False,
                        "target": "shop/Deployment/checkout",
                        "dryRunDiff": 'spec.template.spec.containers[0].image: "checkout:v2" -> "checkout:v1"',
                    }
                ],
            },
            "escalation": {
                "policy": "oncall",
                "deliveries": [
                    {
                        "idempotencyKey": "k",
                        "event": "page",
                        "level": 1,
                        "round": 0,
                        "channel": "slack",
                        "state": "Failed",
                        "message": "invalid_token",
                    }
                ],
            },
            "timeline": [
                {"at": "2026-12-01T03:00:00Z", "type": "Detected", "message": "opened"},
                {"at": "2026-12-01T03:04:00Z", "type": "Acknowledged", "message": "by alice", "actor": "alice"},
            ],
        }
    )
    return spec, status


def test_the_template_fills_every_section_from_the_record() -> None:
    spec, status = recorded()
    peaks = [Peak(query="sum(errors)/sum(all)", source="alert CheckoutErrors", peak=0.62)]
    doc = build("shop", "checkout-1", spec, status, peaks, T0 + timedelta(hours=1))
    assert doc.incident_ref.name == "checkout-1" and doc.severity == "SEV2" and doc.state == "Draft"
    assert "SEV2 incident on checkout" in doc.summary and "alert CheckoutErrors peaked at 0.62" in doc.summary
    assert doc.impact.duration_seconds == 1230 and doc.impact.alert_count == 2
    assert doc.impact.users == "up to 62% of requests failing"
    assert doc.root_cause == "bad release"  # the responder's word first
    assert any("checkout:v2" in f for f in doc.contributing_factors)  # the release the rollback undid
    assert len(doc.five_whys) == 5 and doc.five_whys[1].endswith("(to answer in the review)")
    action = doc.remediation.actions[0]
    assert (doc.remediation.verified, action.action, action.state) == (True, "rollback", "Succeeded")
    assert 'image: "checkout:v2" -> "checkout:v1"' in (action.message or "")
    assert any("within the SEV2 target" in w for w in doc.what_went_well)
    assert any("notification(s) failed" in w for w in doc.what_could_improve)
    assert all(i.owner == "alice" and i.priority == "P2" and i.due == "2026-12-15" for i in doc.action_items)
    assert [e.type for e in doc.timeline] == ["Detected", "Acknowledged"]
    assert doc.metrics.time_to_resolve_seconds == 1200 and doc.drafted == []
    PostmortemSpec.model_validate(doc.wire())  # what the apiserver would store validates


def test_a_draft_replaces_the_narrative_only_and_says_so() -> None:
    spec, status = recorded()
    draft = Narrative(summary="A release broke checkout.", five_whys=["Why? The release."], action_items=["Canary"])
    doc = build("shop", "checkout-1", spec, status, [], T0, draft, "claude-x")
    assert doc.summary == "A release broke checkout." and doc.five_whys == ["Why? The release."]
    assert doc.root_cause == "bad release" and doc.timeline  # facts and empty draft fields stay the template's
    assert doc.drafted == ["summary", "fiveWhys", "actionItems"] and doc.drafted_by == "claude-x"
    assert doc.action_items[-1].title == "Canary" and len(doc.action_items) > 1


def test_the_peak_queries_come_from_a_graph_link_and_the_open_column_counts() -> None:
    assert generator_expr("http://prom:9090/graph?g0.expr=sum%28rate%28x%5B5m%5D%29%29&g0.tab=1") == "sum(rate(x[5m]))"
    assert generator_expr("http://prom/graph?g0.expr=" + "x" * 2000) is None and generator_expr(None) is None
    body = {
        "metadata": {"generation": 3},
        "spec": {
            "state": "Published",
            "actionItems": [{"title": "a", "status": "Open"}, {"title": "b", "status": "Done"}, {"title": "c"}],
        },
    }
    wanted = status_of(body, T0)
    assert wanted == {
        "observedGeneration": 3,
        "openActionItems": 2,
        "actionItems": 3,
        "publishedAt": "2026-12-01T03:00:00.000Z",
    }
    assert changed(body, wanted) and not changed({**body, "status": wanted}, wanted)
    again = status_of({**body, "status": wanted}, T0 + timedelta(days=1))
    assert again["publishedAt"] == "2026-12-01T03:00:00.000Z"  # first seen Published, not re-stamped
