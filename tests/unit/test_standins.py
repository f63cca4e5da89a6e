"""The local stand-ins answer like the real services, so tests and the demo can rely on them.

These bind loopback ports (one server per module) but start no cluster.
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage

import httpx
import pytest

from localenv.standins import SERVICES, Received, SmtpStandIn, StandIns, describe, describe_email

ROUTING_KEY = "R0123456789abcdef0123456789abcd"
ACCOUNT = "AC" + "0" * 32
BOT = {"Authorization": "Bearer xoxb-1-2-abc"}
OAUTH = {"Authorization": "OAuth key-123"}


@pytest.fixture(scope="module")
def standins() -> Iterator[StandIns]:
    with StandIns() as servers:
        yield servers


@pytest.fixture
def stand(standins: StandIns) -> Iterator[StandIns]:
    standins.clear()
    yield standins
    standins.clear()


@pytest.fixture
def client(stand: StandIns) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stand.url, timeout=5.0) as http:
        yield http


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpStandIn]:
    with SmtpStandIn() as server:
        yield server


def trigger_event(**changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "inc-checkout-1",
        "payload": {"summary": "SEV2 checkout latency", "source": "checkout", "severity": "critical"},
        "links": [{"href": "https://example.test/inc", "text": "incident"}],
    }
    event.update(changes)
    return event


def test_base_urls(stand: StandIns) -> None:
    assert stand.url == f"http://127.0.0.1:{stand.port}"
    assert stand.port != 0
    assert {service: stand.base(service) for service in SERVICES}["pagerduty"] == stand.url + "/pagerduty"
    with pytest.raises(ValueError, match="unknown service"):
        stand.base("opsgenie")


def test_pagerduty_trigger_acknowledge_resolve(stand: StandIns, client: httpx.Client) -> None:
    answer = client.post("/pagerduty/v2/enqueue", json=trigger_event())
    assert answer.status_code == 202
    assert answer.json() == {"status": "success", "message": "Event processed", "dedup_key": "inc-checkout-1"}

    without_key = trigger_event()
    del without_key["dedup_key"]
    generated = client.post("/pagerduty/v2/enqueue", json=without_key).json()["dedup_key"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)

    for action in ("acknowledge", "resolve"):
        event = {"routing_key": ROUTING_KEY, "event_action": action, "dedup_key": "inc-checkout-1"}
        assert client.post("/pagerduty/v2/enqueue", json=event).status_code == 202

    received = stand.wait_for("pagerduty", 4)
    assert [(r.json or {}).get("event_action") for r in received] == ["trigger", "trigger", "acknowledge", "resolve"]
    assert received[0].status == 202
    assert received[0].headers["content-type"] == "application/json"
    assert received[1].response_json() == {"status": "success", "message": "Event processed", "dedup_key": generated}
    assert (
        describe(received[0]) == '[pagerduty] trigger CRITICAL dedup_key=inc-checkout-1 summary="SEV2 checkout latency"'
    )


def test_pagerduty_invalid_event(stand: StandIns, client: httpx.Client) -> None:
    event = trigger_event(payload={"summary": "x" * 1025, "severity": "fatal"})
    answer = client.post("/pagerduty/v2/enqueue", json=event)
    assert answer.status_code == 400
    body = answer.json()
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    assert any("summary" in e for e in body["errors"])
    assert any("source" in e for e in body["errors"])
    assert any("severity" in e for e in body["errors"])

    resolve_without_key = {"routing_key": ROUTING_KEY, "event_action": "resolve"}
    assert client.post("/pagerduty/v2/enqueue", json=resolve_without_key).json()["errors"] == [
        "'dedup_key' is missing or blank"
    ]
    assert client.post("/pagerduty/v2/enqueue", content=b"{not json").status_code == 400
    assert [r.status for r in stand.received("pagerduty")] == [400, 400, 400]


def test_slack_webhook(stand: StandIns, client: httpx.Client) -> None:
    answer = client.post("/slack/services/T000/B000/XXXX", json={"text": "checkout is down", "blocks": []})
    assert (answer.status_code, answer.text) == (200, "ok")
    refused = client.post("/slack/services/T000/B000/XXXX", json={"username": "incidentops"})
    assert (refused.status_code, refused.text) == (400, "no_text")

    first, second = stand.wait_for("slack", 2)
    assert first.json == {"text": "checkout is down", "blocks": []}
    assert first.path == "/slack/services/T000/B000/XXXX"
    assert second.status == 400


def test_slack_post_message(stand: StandIns, client: httpx.Client) -> None:
    def post(body: dict[str, object], headers: dict[str, str] = BOT) -> dict[str, object]:
        answer = client.post("/slack/api/chat.postMessage", json=body, headers=headers)
        assert answer.status_code == 200
        result: dict[str, object] = answer.json()
        return result

    first = post({"channel": "#inc-checkout", "text": "SEV2: checkout latency"})
    assert first["ok"] is True
    assert first["channel"] == "#inc-checkout"
    assert re.fullmatch(r"\d+\.\d{6}", str(first["ts"]))
    assert first["message"] == {
        "type": "message",
        "user": "U0STANDIN",
        "bot_id": "B0STANDIN",
        "text": "SEV2: checkout latency",
        "ts": first["ts"],
    }
    reply = post({"channel": "#inc-checkout", "text": "mitigated", "thread_ts": first["ts"]})
    third = post({"channel": "#inc-checkout", "text": "resolved", "thread_ts": first["ts"]})
    timestamps = [first["ts"], reply["ts"], third["ts"]]
    assert [float(str(ts)) for ts in timestamps] == sorted({float(str(ts)) for ts in timestamps})

    assert post({"text": "nowhere"}) == {"ok": False, "error": "channel_not_found"}
    wrong_token = {"Authorization": "Bearer not-a-token"}
    assert post({"channel": "#x", "text": "hi"}, headers=wrong_token) == {"ok": False, "error": "invalid_auth"}
    assert post({"channel": "#x", "text": "hi"}, headers={}) == {"ok": False, "error": "not_authed"}

    received = stand.wait_for("slack", 2, where=lambda r: (r.json or {}).get("thread_ts") == first["ts"])
    assert [(r.json or {}).get("text") for r in received] == ["mitigated", "resolved"]
    assert received[0].headers["authorization"] == "Bearer xoxb-1-2-abc"
    assert describe(received[0]) == f"[slack] #inc-checkout: mitigated (in thread {first['ts']})"
    assert describe(stand.received("slack")[-1]).endswith("-> rejected: not_authed")


def test_twilio_sms_and_call(stand: StandIns, client: httpx.Client) -> None:
    base = f"/twilio/2010-04-01/Accounts/{ACCOUNT}"
    sms = client.post(
        f"{base}/Messages.json",
        data={"To": "+15550001111", "From": "+15559990000", "Body": "SEV1 checkout down"},
        auth=(ACCOUNT, "token"),
    )
    assert sms.status_code == 201
    message = sms.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"])
    assert (message["status"], message["to"], message["from"], message["body"]) == (
        "queued",
        "+15550001111",
        "+15559990000",
        "SEV1 checkout down",
    )

    call = client.post(
        f"{base}/Calls.json",
        data={"To": "+15550001111", "From": "+15559990000", "Twiml": "<Response><Say>SEV1</Say></Response>"},
        auth=(ACCOUNT, "token"),
    )
    assert call.status_code == 201
    assert re.fullmatch(r"CA[0-9a-f]{32}", call.json()["sid"])
    assert call.json()["status"] == "queued"

    missing_to = client.post(f"{base}/Messages.json", data={"From": "+1555", "Body": "x"}, auth=(ACCOUNT, "t"))
    assert missing_to.status_code == 400
    assert missing_to.json() | {"more_info": None} == {
        "code": 21604,
        "message": "A 'To' phone number is required.",
        "status": 400,
        "more_info": None,
    }

    sms_received, call_received, _ = stand.wait_for("twilio", 3)
    assert sms_received.form == {"To": "+15550001111", "From": "+15559990000", "Body": "SEV1 checkout down"}
    assert describe(sms_received) == "[twilio] SMS to +15550001111: SEV1 checkout down"
    assert describe(call_received) == "[twilio] call to +15550001111"


def test_twilio_refuses_other_accounts(stand: StandIns, client: httpx.Client) -> None:
    path = f"/twilio/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    data = {"To": "+15550001111", "From": "+15559990000", "Body": "x"}
    other_account = client.post(path, data=data, auth=("AC" + "1" * 32, "token"))
    anonymous = client.post(path, data=data)
    for answer in (other_account, anonymous):
        assert answer.status_code == 401
        assert answer.json() | {"more_info": None} == {
            "code": 20003,
            "message": "Authenticate",
            "status": 401,
            "more_info": None,
        }
    assert [r.status for r in stand.received("twilio")] == [401, 401]


def test_statuspage_create_then_patch(stand: StandIns, client: httpx.Client) -> None:
    base = "/statuspage/v1/pages/page123/incidents"
    created = client.post(
        base,
        headers=OAUTH,
        json={
            "incident": {
                "name": "Checkout latency",
                "status": "investigating",
                "body": "We are looking into it.",
                "component_ids": ["cmp1"],
                "components": {"cmp1": "degraded_performance"},
            }
        },
    )
    assert created.status_code == 201
    incident = created.json()
    assert (incident["name"], incident["status"], incident["page_id"]) == (
        "Checkout latency",
        "investigating",
        "page123",
    )
    assert len(incident["incident_updates"]) == 1
    assert incident["components"][0]["status"] == "degraded_performance"

    patched = client.patch(
        f"{base}/{incident['id']}",
        headers=OAUTH,
        json={"incident": {"status": "resolved", "body": "Fixed.", "components": {"cmp1": "operational"}}},
    )
    assert patched.status_code == 200
    updated = patched.json()
    assert (updated["id"], updated["name"], updated["status"]) == (incident["id"], "Checkout latency", "resolved")
    assert [u["status"] for u in updated["incident_updates"]] == ["resolved", "investigating"]
    assert updated["incident_updates"][0]["affected_components"][0]["old_status"] == "degraded_performance"
    assert updated["resolved_at"] is not None

    assert client.patch(f"{base}/nosuch", headers=OAUTH, json={"incident": {"status": "resolved"}}).status_code == 404
    assert client.post(base, json={"incident": {"name": "x"}}).status_code == 401
    assert client.post(base, headers=OAUTH, json={"incident": {"name": "x", "status": "panicking"}}).status_code == 422

    first, second, *_ = stand.wait_for("statuspage", 5)
    assert describe(first) == "[statuspage] investigating: Checkout latency"
    assert describe(second) == "[statuspage] resolved: Checkout latency"


def test_generic_webhook(stand: StandIns, client: httpx.Client) -> None:
    answer = client.post("/webhook/hooks/incidents", json={"event": "incident.opened", "id": 1})
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    assert client.post("/webhook/x", content=b"\xff not json").status_code == 200

    hook, raw = stand.wait_for("webhook", 2)
    assert hook.path == "/webhook/hooks/incidents"
    assert describe(hook) == "[webhook] POST /webhook/hooks/incidents event=incident.opened"
    assert (raw.json, raw.body) == (None, b"\xff not json")


def test_rate_limit_fault_then_recovery(stand: StandIns, client: httpx.Client) -> None:
    stand.fault("slack", 429, times=2, retry_after=1)
    answers = [client.post("/slack/services/T/B/X", json={"text": "hi"}) for _ in range(3)]
    assert [(a.status_code, a.text, a.headers.get("Retry-After")) for a in answers] == [
        (429, "rate_limited", "1"),
        (429, "rate_limited", "1"),
        (200, "ok", None),
    ]
    assert [r.faulted for r in stand.received("slack")] == [True, True, False]
    delivered = stand.wait_for("slack", 1, where=lambda r: not r.faulted)
    assert delivered[0].status == 200

    stand.fault("pagerduty", 429)
    throttled = client.post("/pagerduty/v2/enqueue", json=trigger_event())
    assert throttled.status_code == 429
    assert throttled.json()["status"] == "throttle event"
    assert "Retry-After" not in throttled.headers


def test_forever_fault_until_cleared(stand: StandIns, client: httpx.Client) -> None:
    stand.fault("webhook", 503, times=-1)
    answers = [client.post("/webhook/a", json={}) for _ in range(4)]
    assert {(a.status_code, a.text) for a in answers} == {(503, "503 Service Unavailable")}
    stand.clear()
    assert client.post("/webhook/a", json={}).status_code == 200
    assert [r.status for r in stand.received()] == [200]


def test_control_api(stand: StandIns, client: httpx.Client) -> None:
    assert client.post("/_standins/faults", json={"service": "twilio", "status": 500, "times": 1}).status_code == 200
    assert client.post("/_standins/faults", json={"service": "nope", "status": 500}).status_code == 400
    path = f"/twilio/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
    assert client.post(path, data={"To": "+1", "From": "+2", "Url": "http://x"}).status_code == 500
    client.post("/webhook/x", json={"event": "e"})

    listed = client.get("/_standins/requests", params={"service": "twilio"}).json()
    assert len(listed) == 1
    assert listed[0]["form"] == {"To": "+1", "From": "+2", "Url": "http://x"}
    assert listed[0]["body"] == "To=%2B1&From=%2B2&Url=http%3A%2F%2Fx"
    assert (listed[0]["status"], listed[0]["faulted"]) == (500, True)
    assert len(client.get("/_standins/requests").json()) == 2

    assert client.post("/_standins/faults", json={"service": "webhook", "status": 502, "times": -1}).status_code == 200
    assert client.post("/webhook/x", json={}).status_code == 502
    assert client.delete("/_standins/faults").status_code == 200
    assert client.post("/webhook/x", json={}).status_code == 200
    assert client.delete("/_standins/requests").status_code == 200
    assert client.get("/_standins/requests").json() == []
    assert stand.received() == []


def test_wait_for_times_out_with_what_arrived(stand: StandIns, client: httpx.Client) -> None:
    client.post("/webhook/elsewhere", json={"event": "x"})
    with pytest.raises(AssertionError) as failure:
        stand.wait_for("pagerduty", 1, timeout=0.05)
    message = str(failure.value)
    assert "expected 1 pagerduty request(s) within 0.05s, got 0" in message
    assert "webhook: POST /webhook/elsewhere -> 200" in message


def test_received_is_a_snapshot(stand: StandIns, client: httpx.Client) -> None:
    snapshot = stand.received()
    client.post("/webhook/x", json={})
    assert snapshot == []
    assert isinstance(stand.received("webhook")[0], Received)


def test_smtp_round_trip(smtp: SmtpStandIn) -> None:
    smtp.clear()
    message = EmailMessage()
    message["Subject"] = "[SEV2] checkout latency"
    message["From"] = "incidentops@example.test"
    message["To"] = "oncall@example.test"
    message.set_content("Checkout p99 latency is 2.3s.")
    message.add_alternative("<p>Checkout p99 latency is <b>2.3s</b>.</p>", subtype="html")
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=5) as client:
        client.login("incidentops", "secret")
        client.send_message(message, to_addrs=["oncall@example.test", "boss@example.test"])

    (received,) = smtp.wait_for(1)
    assert received["Subject"] == "[SEV2] checkout latency"
    assert received.rcpt_tos == ["oncall@example.test", "boss@example.test"]
    assert received.mail_from == "incidentops@example.test"
    assert received.auth_login == "incidentops"
    text = received.get_body(("plain",))
    html = received.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().strip() == "Checkout p99 latency is 2.3s."
    assert "<b>2.3s</b>" in html.get_content()
    assert describe_email(received) == "[email] to oncall@example.test, boss@example.test: [SEV2] checkout latency"
    assert smtp.messages() == [received]


def test_smtp_wait_for_times_out(smtp: SmtpStandIn) -> None:
    smtp.clear()
    with pytest.raises(AssertionError, match=r"expected 1 email\(s\) within 0.05s, got 0"):
        smtp.wait_for(1, timeout=0.05)
