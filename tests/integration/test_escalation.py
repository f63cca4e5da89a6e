"""Escalation on the real cluster, paging the local stand-ins: wire formats, timing, crashes, retries.

Incidents are declared as objects (the operator initializes their status, as for any hand-made
incident); what was paged is read back from the stand-ins, which is where a duplicate or a
missing notification would show, and from the Incident's status, conditions and Events.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import pathlib
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s

from localenv.controlplane import KubeCluster, kubectl_binary
from localenv.operator_process import OperatorProcess
from localenv.procs import wait_until
from localenv.standins import SmtpStandIn, StandIns

pytestmark = pytest.mark.integration
GROUP, VERSION = "incidentops.dev", "v1alpha1"
PD_SECRET = "pd-webhook-signing-secret"
CONTACTS = """
users:
  alice: {email: alice@example.com, phone: "+15550001", slack: UALICE}
  bob: {email: bob@example.com, phone: "+15550002", slack: UBOB}
  carol: {phone: "+15550003"}
teams:
  sre: {members: [alice, bob]}
"""


SECRETS = {
    "pagerduty": "R0UTINGKEY0000000000000000000001",
    "slack-bot": "xoxb-test-token",
    "twilio": "AC0123456789abcdef:twilio-token",
    "statuspage": "sp-api-key",
    "signing": "webhook-signing-key",
}


def custom(cluster: KubeCluster) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(cluster.api)


def secret(cluster: KubeCluster, namespace: str, name: str, data: dict[str, str]) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    body = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name), data=encoded)
    k8s.CoreV1Api(cluster.api).create_namespaced_secret(namespace, body)


def setup_secrets(cluster: KubeCluster, namespace: str, standins: StandIns) -> None:
    secret(cluster, namespace, "contacts", {"contacts.yaml": CONTACTS})
    secret(
        cluster,
        namespace,
        "paging",
        {**SECRETS, "slack-webhook": standins.base("slack") + "/services/T000/B000/XXXX"},
    )


def policy(cluster: KubeCluster, namespace: str, name: str, levels: list[dict[str, Any]], **spec: Any) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EscalationPolicy",
        "metadata": {"name": name},
        "spec": {"levels": levels, **spec},
    }
    custom(cluster).create_namespaced_custom_object(GROUP, VERSION, namespace, "escalationpolicies", body)


def ref(key: str) -> dict[str, str]:
    return {"name": "paging", "key": key}


def declare(cluster: KubeCluster, namespace: str, name: str, severity: str = "SEV2", **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {"title": f"{name} is failing", "severity": severity, "service": "checkout", **spec},
    }
    created: dict[str, Any] = custom(cluster).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "incidents", body
    )
    return created


def get(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = custom(cluster).get_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", name)
    return obj


def patch_spec(cluster: KubeCluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    custom(cluster).patch_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", name, {"spec": spec})


def escalation(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    return (get(cluster, namespace, name).get("status") or {}).get("escalation") or {}


def deliveries(cluster: KubeCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return list(escalation(cluster, namespace, name).get("deliveries") or [])


def settled(cluster: KubeCluster, namespace: str, name: str, count: int) -> list[dict[str, Any]]:
    """Wait until `count` deliveries exist and none is Pending."""

    def done() -> list[dict[str, Any]] | None:
        found = deliveries(cluster, namespace, name)
        return found if len(found) >= count and all(d["state"] != "Pending" for d in found) else None

    return wait_until(done, timeout=40, what=f"{count} settled deliveries on {name}")


def header(received: Any, name: str) -> str:
    return {k.lower(): v for k, v in received.headers.items()}[name]


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def events(cluster: KubeCluster, namespace: str, name: str) -> list[k8s.CoreV1Event]:
    items: list[k8s.CoreV1Event] = (
        k8s.CoreV1Api(cluster.api).list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    )
    return items


def env_for(namespace: str, standins: StandIns, smtp: SmtpStandIn | None = None, **extra: str) -> dict[str, str]:
    env = {
        "INCIDENTOPS_WEBHOOK_TOKEN": "t",
        "INCIDENTOPS_CONTACTS_SECRET": f"{namespace}/contacts/contacts.yaml",
        "INCIDENTOPS_NOTIFY_BACKOFF": "200ms",
        "INCIDENTOPS_NOTIFY_BACKOFF_MAX": "1s",
        "INCIDENTOPS_NOTIFY_ATTEMPTS": "4",
        "INCIDENTOPS_NOTIFY_TIMEOUT": "3s",
        "INCIDENTOPS_REMEDIATION_POLL": "1s",
        "INCIDENTOPS_PAGERDUTY_WEBHOOK_SECRET": PD_SECRET,
        "INCIDENTOPS_NOTIFY_ALLOW": standins.allow,
        **extra,
    }
    if smtp is not None:
        env.update({"INCIDENTOPS_SMTP_HOST": "127.0.0.1", "INCIDENTOPS_SMTP_PORT": str(smtp.port)})
    return env


def test_every_channel_speaks_its_wire_format(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    standins: StandIns,
    smtp_standin: SmtpStandIn,
) -> None:
    setup_secrets(kube_cluster, namespace, standins)
    level = {
        "name": "primary",
        "after": "0s",
        "targets": [{"type": "user", "name": "alice"}, {"type": "user", "name": "carol"}],
        "channels": [
            {"type": "pagerduty", "secretRef": ref("pagerduty"), "url": standins.base("pagerduty")},
            {"type": "slack", "secretRef": ref("slack-webhook")},
            {
                "type": "slack",
                "secretRef": ref("slack-bot"),
                "slackChannel": "#inc",
                "url": standins.base("slack") + "/api",
            },
            {"type": "webhook", "url": standins.base("webhook") + "/hook", "signingKeyRef": ref("signing")},
            {"type": "email", "to": ["oncall@example.com"]},
            {"type": "sms", "secretRef": ref("twilio"), "sender": "+15550100", "url": standins.base("twilio")},
            {"type": "phone", "secretRef": ref("twilio"), "sender": "+15550100", "url": standins.base("twilio")},
            {
                "type": "statuspage",
                "secretRef": ref("statuspage"),
                "pageId": "page1",
                "componentIds": ["comp1"],
                "url": standins.base("statuspage"),
            },
        ],
    }
    policy(kube_cluster, namespace, "everything", [level])
    env = env_for(namespace, standins, smtp_standin, INCIDENTOPS_LOG_LEVEL="DEBUG")  # every line a log can hold
    operator = operator_factory([namespace], env=env)
    created = declare(kube_cluster, namespace, "wire", severity="SEV1")
    uid = created["metadata"]["uid"]

    # PagerDuty Events v2: one trigger, dedup_key leading back to the incident, severity mapped
    (trigger,) = standins.wait_for("pagerduty", 1)
    assert trigger.json["event_action"] == "trigger"
    assert trigger.json["routing_key"] == "R0UTINGKEY0000000000000000000001"
    assert trigger.json["dedup_key"] == f"incidentops/{namespace}/wire/{uid}"
    assert trigger.json["payload"]["severity"] == "critical"
    assert "wire is failing" in trigger.json["payload"]["summary"]
    # Slack: the webhook and the bot, mentioning alice by her member ID
    slack = standins.wait_for("slack", 2)
    hook = next(r for r in slack if "/services/" in r.path)
    bot = next(r for r in slack if r.path.endswith("chat.postMessage"))
    assert "<@UALICE>" in hook.json["text"] and "wire is failing" in hook.json["text"]
    assert header(bot, "authorization") == "Bearer xoxb-test-token" and bot.json["channel"] == "#inc"
    # webhook: a JSON document, signed over timestamp.body, with the idempotency key
    (posted,) = standins.wait_for("webhook", 1)
    expected = hmac.new(
        b"webhook-signing-key", header(posted, "x-incidentops-timestamp").encode() + b"." + posted.body, hashlib.sha256
    )
    assert header(posted, "x-incidentops-signature") == "sha256=" + expected.hexdigest()
    assert posted.json["event"] == "page" and posted.json["incident"]["uid"] == uid
    assert header(posted, "idempotency-key") == posted.json["idempotencyKey"]
    # Twilio: an SMS and a call per person with a number (alice and carol), form-encoded, basic auth
    twilio = standins.wait_for("twilio", 4)
    sms = sorted(r.form["To"] for r in twilio if r.path.endswith("Messages.json") and r.form)
    calls = [r for r in twilio if r.path.endswith("Calls.json")]
    assert sms == ["+15550001", "+15550003"] and len(calls) == 2
    assert all(r.form and r.form["From"] == "+15550100" for r in twilio)
    assert calls[0].form and "<Say" in calls[0].form["Twiml"]
    # Statuspage: an incident, investigating, its component in major outage (SEV1)
    (page,) = standins.wait_for("statuspage", 1)
    assert page.json["incident"]["status"] == "investigating"
    assert page.json["incident"]["components"] == {"comp1": "major_outage"}
    # email: alice (carol has no address: a visible failure) and the shared list; text and HTML
    mails = smtp_standin.wait_for(2)
    assert sorted(tuple(m.rcpt_tos) for m in mails) == [("alice@example.com",), ("oncall@example.com",)]
    assert mails[0].get_body(("plain",)) is not None and mails[0].get_body(("html",)) is not None
    found = settled(kube_cluster, namespace, "wire", 11)
    failed = [d for d in found if d["state"] == "Failed"]
    assert [(d["channel"], d["target"]) for d in failed] == [("email", "carol")]
    assert "no address for carol" in failed[0]["message"]
    status = get(kube_cluster, namespace, "wire")["status"]
    notified = next(c for c in status["conditions"] if c["type"] == "Notified")
    assert (notified["status"], notified["reason"]) == ("False", "NotificationFailed")
    assert status["escalation"]["level"] == 1

    # resolution: PagerDuty resolve with the same dedup_key, a reply in the Slack bot's thread,
    # the status page incident PATCHed to resolved with the component operational
    standins.clear()
    patch_spec(
        kube_cluster,
        namespace,
        "wire",
        {"resolution": {"by": "alice", "summary": "rolled back", "rootCause": "bad deploy"}},
    )
    (resolve,) = standins.wait_for("pagerduty", 1)
    assert resolve.json["event_action"] == "resolve" and resolve.json["dedup_key"] == trigger.json["dedup_key"]
    replies = standins.wait_for("slack", 2)
    threaded = next(r for r in replies if r.path.endswith("chat.postMessage"))
    assert threaded.json["thread_ts"] == bot.response_json()["ts"]  # type: ignore[index]
    (update,) = standins.wait_for("statuspage", 1)
    assert update.method == "PATCH" and update.path.endswith(page.response_json()["id"])  # type: ignore[index]
    assert update.json["incident"]["status"] == "resolved"
    assert update.json["incident"]["components"] == {"comp1": "operational"}
    resolution_mails = smtp_standin.wait_for(4)[2:]
    assert any("Root cause: bad deploy" in str(m.get_body(("plain",)).get_content()) for m in resolution_mails)  # type: ignore[union-attr]
    assert operator.process.returncode is None

    # No credential of the run in any log line (at DEBUG), status field or Event: the Slack webhook's
    # path is its credential, so it counts as one too.
    credentials = [*SECRETS.values(), "/services/T000/B000/XXXX", "twilio-token", PD_SECRET]
    written = [operator.logs(), json.dumps(get(kube_cluster, namespace, "wire"))]
    written += [f"{e.reason} {e.message}" for e in events(kube_cluster, namespace, "wire")]
    assert len(operator.logs().splitlines()) > 50
    leaks = [(value, where[:80]) for value in credentials for where in written if value in where]
    assert leaks == []


def two_levels(standins: StandIns, second_after: str = "4s") -> list[dict[str, Any]]:
    return [
        {
            "name": "primary",
            "after": "0s",
            "targets": [{"type": "user", "name": "alice"}],
            "channels": [{"type": "pagerduty", "secretRef": ref("pagerduty"), "url": standins.base("pagerduty")}],
        },
        {
            "name": "secondary",
            "after": second_after,
            "targets": [{"type": "team", "name": "sre"}],
            "channels": [{"type": "webhook", "url": standins.base("webhook") + "/secondary"}],
        },
    ]


def test_second_level_fires_on_time_and_not_after_an_ack(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    standins: StandIns,
) -> None:
    setup_secrets(kube_cluster, namespace, standins)
    policy(kube_cluster, namespace, "oncall", two_levels(standins, "3s"))
    operator = operator_factory([namespace], env=env_for(namespace, standins))
    declare(kube_cluster, namespace, "slow")
    declare(kube_cluster, namespace, "acked")
    standins.wait_for("pagerduty", 2)
    patch_spec(kube_cluster, namespace, "acked", {"acknowledgement": {"by": "alice"}})
    (second,) = standins.wait_for("webhook", 1, timeout=20)
    assert second.json["incident"]["name"] == "slow" and second.json["level"] == 2
    esc = escalation(kube_cluster, namespace, "slow")
    # the last level gets as long to answer as it waited after the first (3s) before nobody acknowledged
    assert esc["level"] == 2 and esc["levelName"] == "secondary" and "stopped" not in esc
    page = next(d for d in esc["deliveries"] if d["level"] == 2)
    detected = datetime.fromisoformat(
        get(kube_cluster, namespace, "slow")["status"]["detectedAt"].replace("Z", "+00:00")
    )
    paged = datetime.fromisoformat(page["createdAt"].replace("Z", "+00:00"))
    assert 3.0 <= (paged - detected).total_seconds() < 6.0  # on time
    exhausts = datetime.fromisoformat(esc["exhaustsAt"].replace("Z", "+00:00"))
    assert (exhausts - detected).total_seconds() == 6.0
    exhausted = wait_until(
        lambda: (e := escalation(kube_cluster, namespace, "slow")).get("stopped") == "Exhausted" and e,
        timeout=20,
        what="the chain exhausted",
    )
    entry = next(
        t for t in get(kube_cluster, namespace, "slow")["status"]["timeline"] if t["type"] == "EscalationExhausted"
    )
    assert datetime.fromisoformat(entry["at"].replace("Z", "+00:00")) >= exhausts and exhausted["summary"] == "2"
    ack = wait_until(
        lambda: [r for r in standins.received("pagerduty") if r.json and r.json["event_action"] == "acknowledge"],
        timeout=20,
        what="PagerDuty acknowledge",
    )
    assert ack[0].json["dedup_key"].split("/")[2] == "acked"
    acked = escalation(kube_cluster, namespace, "acked")
    assert acked["stopped"] == "Acknowledged" and "nextEscalationAt" not in acked
    assert [d["level"] for d in acked["deliveries"]] == [1, 1]  # the page and the acknowledgement
    assert not [r for r in standins.received("webhook") if r.json and r.json["incident"]["name"] == "acked"]
    # `kubectl incident escalate` (a spec intent) pages the next level now, once
    patch_spec(
        kube_cluster, namespace, "acked", {"escalationRequest": {"by": "alice", "at": now(), "reason": "db help"}}
    )
    (manual,) = standins.wait_for("webhook", 1, where=lambda r: bool(r.json) and r.json["incident"]["name"] == "acked")
    assert manual.json["level"] == 2
    assert operator.process.returncode is None


def test_kill_between_levels_continues_on_time_without_duplicates(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    standins: StandIns,
) -> None:
    setup_secrets(kube_cluster, namespace, standins)
    policy(kube_cluster, namespace, "oncall", two_levels(standins, "8s"))
    operator = operator_factory([namespace], env=env_for(namespace, standins))
    declare(kube_cluster, namespace, "crash")
    standins.wait_for("pagerduty", 1)
    settled(kube_cluster, namespace, "crash", 1)
    operator.kill()
    operator_factory([namespace], env=env_for(namespace, standins))
    standins.wait_for("webhook", 1, timeout=30)
    esc = escalation(kube_cluster, namespace, "crash")
    due = datetime.fromisoformat(get(kube_cluster, namespace, "crash")["status"]["detectedAt"].replace("Z", "+00:00"))
    fired = next(d for d in esc["deliveries"] if d["level"] == 2)["createdAt"]
    lateness = (datetime.fromisoformat(fired.replace("Z", "+00:00")) - due).total_seconds() - 8
    assert lateness < 5, f"level 2 fired {lateness:.1f}s late"
    settled(kube_cluster, namespace, "crash", 2)
    assert len(standins.received("pagerduty")) == 1 and len(standins.received("webhook")) == 1


def test_retry_after_is_honoured_and_a_dead_channel_fails_visibly(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    standins: StandIns,
) -> None:
    setup_secrets(kube_cluster, namespace, standins)
    policy(kube_cluster, namespace, "oncall", two_levels(standins, "1h"))
    standins.fault("pagerduty", 429, times=1, retry_after=2)
    operator_factory([namespace], env=env_for(namespace, standins))
    declare(kube_cluster, namespace, "throttled")
    first, retried = standins.wait_for("pagerduty", 2, timeout=20)
    assert first.status == 429 and retried.status == 202
    assert retried.at - first.at >= 1.9  # waited for Retry-After, not just the 200ms backoff
    (delivered,) = settled(kube_cluster, namespace, "throttled", 1)
    assert delivered["state"] == "Delivered" and delivered["attempts"] == 2

    standins.fault("pagerduty", 500, times=-1)
    declare(kube_cluster, namespace, "dead")
    (failed,) = settled(kube_cluster, namespace, "dead", 1)
    assert failed["state"] == "Failed" and failed["attempts"] == 4 and "HTTP 500" in failed["message"]
    assert len([r for r in standins.received("pagerduty") if r.status == 500]) == 4
    status = get(kube_cluster, namespace, "dead")["status"]
    notified = next(c for c in status["conditions"] if c["type"] == "Notified")
    assert (notified["status"], notified["reason"]) == ("False", "NotificationFailed")
    wait_until(
        lambda: [
            e
            for e in events(kube_cluster, namespace, "dead")
            if e.reason == "NotificationFailed" and e.type == "Warning"
        ],
        timeout=20,
        what="a NotificationFailed Event",
    )


def test_two_operators_send_each_notification_once(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    standins: StandIns,
) -> None:
    setup_secrets(kube_cluster, namespace, standins)
    policy(kube_cluster, namespace, "oncall", two_levels(standins, "3s"))
    env = env_for(namespace, standins)
    operator_factory([namespace], env=env)
    operator_factory([namespace], env=env)
    names = [f"twin-{i}" for i in range(6)]
    for name in names:
        declare(kube_cluster, namespace, name)
    standins.wait_for("webhook", len(names), timeout=40)
    for name in names:
        settled(kube_cluster, namespace, name, 2)
    triggers = [r.json["dedup_key"] for r in standins.received("pagerduty") if r.json]
    pages = [r.json["incident"]["name"] for r in standins.received("webhook") if r.json]
    assert sorted(k.split("/")[2] for k in triggers) == sorted(names)
    assert sorted(pages) == sorted(names)


def test_no_policy_says_so_and_a_new_policy_pages(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    standins: StandIns,
) -> None:
    setup_secrets(kube_cluster, namespace, standins)
    operator_factory([namespace], env=env_for(namespace, standins))
    declare(kube_cluster, namespace, "orphan")

    def no_policy() -> dict[str, Any] | None:
        conditions = (get(kube_cluster, namespace, "orphan").get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Notified" and c["reason"] == "NoPolicy"), None)

    condition = wait_until(no_policy, timeout=20, what="Notified=False NoPolicy")
    assert "no EscalationPolicy" in condition["message"]
    wait_until(
        lambda: [e for e in events(kube_cluster, namespace, "orphan") if e.reason == "NoEscalationPolicy"],
        timeout=20,
        what="a NoEscalationPolicy Event",
    )
    policy(kube_cluster, namespace, "late", two_levels(standins, "1h"))
    (trigger,) = standins.wait_for("pagerduty", 1, timeout=20)
    assert trigger.json["dedup_key"].split("/")[2] == "orphan"


def test_pagerduty_webhook_acknowledges_and_resolves(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    standins: StandIns,
) -> None:
    setup_secrets(kube_cluster, namespace, standins)
    policy(kube_cluster, namespace, "oncall", two_levels(standins, "1h"))
    operator = operator_factory([namespace], env=env_for(namespace, standins))
    created = declare(kube_cluster, namespace, "phone")
    (trigger,) = standins.wait_for("pagerduty", 1)

    def webhook(event_type: str, key: str, secret: str = PD_SECRET) -> httpx.Response:
        body = json.dumps(
            {
                "event": {
                    "id": "01ABC",
                    "event_type": event_type,
                    "resource_type": "incident",
                    "occurred_at": now(),
                    "agent": {"id": "PXPGF42", "summary": "Alice Example", "type": "user_reference"},
                    "data": {"id": "PT4KHLK", "type": "incident", "incident_key": key, "status": "acknowledged"},
                }
            }
        ).encode()
        sig = "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return httpx.post(
            f"{operator.url}/api/v1/pagerduty",
            content=body,
            headers={"Content-Type": "application/json", "X-PagerDuty-Signature": f"v1=deadbeef, {sig}"},
            timeout=10,
        )

    key = trigger.json["dedup_key"]
    assert webhook("incident.acknowledged", key, secret="wrong").status_code == 401
    assert webhook("incident.acknowledged", f"incidentops/{namespace}/phone/not-the-uid").status_code == 404
    assert webhook("incident.priority_updated", key).status_code == 202
    assert webhook("incident.acknowledged", key).status_code == 200
    spec = get(kube_cluster, namespace, "phone")["spec"]
    assert spec["acknowledgement"]["by"] == "Alice Example (PagerDuty)"
    wait_until(
        lambda: get(kube_cluster, namespace, "phone").get("status", {}).get("acknowledgedBy"),
        timeout=20,
        what="the acknowledgement recorded",
    )
    assert webhook("incident.resolved", key).status_code == 200
    wait_until(
        lambda: get(kube_cluster, namespace, "phone")["status"]["state"] == "Resolved",
        timeout=20,
        what="Resolved",
    )
    assert created["metadata"]["uid"] in key

    # An acknowledgement from a phone after a human resolved it changes nothing, and says so.
    late = declare(kube_cluster, namespace, "late-ack")
    patch_spec(kube_cluster, namespace, "late-ack", {"resolution": {"by": "bob", "summary": "fixed"}})
    wait_until(
        lambda: get(kube_cluster, namespace, "late-ack").get("status", {}).get("state") == "Resolved",
        timeout=20,
        what="late-ack Resolved",
    )
    answer = webhook("incident.acknowledged", f"incidentops/{namespace}/late-ack/{late['metadata']['uid']}")
    assert answer.status_code == 200 and answer.json() == {
        "ignored": "already resolved",
        "incident": f"{namespace}/late-ack",
    }
    assert "acknowledgement" not in get(kube_cluster, namespace, "late-ack")["spec"]
    assert webhook("incident.acknowledged", key, secret="wrong").json()["error"] == "bad_signature"


def test_the_sample_policies_are_accepted_by_the_apiserver(
    kube_cluster: KubeCluster, crds: list[str], namespace: str
) -> None:

    names = []
    for path in sorted((pathlib.Path(__file__).resolve().parents[2] / "escalation-policies").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc["kind"] == "EscalationPolicy":
            custom(kube_cluster).create_namespaced_custom_object(GROUP, VERSION, namespace, "escalationpolicies", doc)
            names.append(doc["metadata"]["name"])
    assert len(names) == 4


def unpageable(target: dict[str, str]) -> dict[str, Any]:
    """A level whose only channel names a Secret that does not exist: its policy is Ready=False SecretNotFound."""
    channel = {"type": "slack", "secretRef": {"name": "no-such-secret", "key": "url"}}
    return {"name": "team", "after": "0s", "targets": [target], "channels": [channel]}


def test_a_broken_policy_is_passed_over_and_notified_means_delivered(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    standins: StandIns,
) -> None:
    """The trial's sev4-team-channel: Ready=False SecretNotFound, yet chosen, and the timeline said it paged."""
    setup_secrets(kube_cluster, namespace, standins)
    team = unpageable({"type": "team", "name": "sre"})
    policy(kube_cluster, namespace, "sev4-team-channel", [team], match={"severities": ["SEV4", "SEV5"]})
    fallback = {**two_levels(standins, "1h")[1], "after": "0s", "name": "fallback"}
    policy(kube_cluster, namespace, "fallback", [fallback])
    env = env_for(namespace, standins, INCIDENTOPS_DEFAULT_ESCALATION_POLICY="fallback")
    operator = operator_factory([namespace], env=env)
    declare(kube_cluster, namespace, "quiet", severity="SEV4")
    (page,) = standins.wait_for("webhook", 1, timeout=30)
    assert page.json["incident"]["name"] == "quiet"
    settled(kube_cluster, namespace, "quiet", 1)
    status = get(kube_cluster, namespace, "quiet")["status"]
    assert status["escalation"]["policy"] == "fallback" and status["escalation"]["summary"] == "1"
    chosen = next(t for t in status["timeline"] if t["type"] == "EscalationPolicyChosen")
    assert "sev4-team-channel is not Ready (SecretNotFound" in chosen["message"]
    types = [t["type"] for t in status["timeline"]]
    # paging comes first, and "Notified" only once the webhook answered 2xx
    assert types.index("Escalated") < types.index("Notified")
    notified = next(t for t in status["timeline"] if t["type"] == "Notified")
    assert "level 1 notified" in notified["message"] and "(delivered)" in notified["message"]
    assert not any("notified" in t["message"] for t in status["timeline"] if t["type"] == "Escalated")
    wait_until(
        lambda: [e for e in events(kube_cluster, namespace, "quiet") if e.reason == "EscalationPolicyNotReady"],
        timeout=20,
        what="a warning Event naming the broken policy",
    )
    assert operator.process.returncode is None


def test_nobody_paged_for_a_typo_is_loud(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    standins: StandIns,
) -> None:
    """An event for namespace no-such-namespace opened an incident elsewhere that nobody heard of."""
    setup_secrets(kube_cluster, namespace, standins)
    policy(kube_cluster, namespace, "only-one", [unpageable({"type": "user", "name": "alice"})])
    operator = operator_factory([namespace], env=env_for(namespace, standins))
    event = {
        "type": "alert.fired",
        "source": "ci",
        "alert_id": "typo-1",
        "alert_name": "DeployFailed",
        "service": "ghost",
        "namespace": "no-such-namespace",
    }
    answer = httpx.post(f"{operator.url}/api/v1/events", json=event, headers={"Authorization": "Bearer t"}, timeout=10)
    assert answer.status_code == 200, answer.text
    [ref] = answer.json()["incidents"]
    assert ref["namespace"] == namespace

    def unpaged() -> dict[str, Any] | None:
        found = get(kube_cluster, namespace, ref["name"])
        return found if (found.get("status") or {}).get("escalation", {}).get("summary") == "none" else None

    incident = wait_until(unpaged, timeout=20, what="LEVEL none")
    status = incident["status"]
    notified = next(c for c in status["conditions"] if c["type"] == "Notified")
    assert (notified["status"], notified["reason"]) == ("False", "NoPolicy")
    assert "only-one is not Ready (SecretNotFound" in notified["message"]
    routed = next(t for t in status["timeline"] if t["type"] == "NamespaceNotFound")
    assert "'no-such-namespace'" in routed["message"]
    wait_until(
        lambda: [
            e
            for e in events(kube_cluster, namespace, ref["name"])
            if e.reason == "NoEscalationPolicy" and e.type == "Warning"
        ],
        timeout=20,
        what="a warning Event",
    )
    assert any("WARNING" in line and "nobody is paged" in line for line in operator.logs().splitlines())
    metrics = httpx.get(f"{operator.url}/metrics", timeout=10).text
    assert "incidentops_incidents_unpaged_total 1.0" in metrics
    listed = subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(kube_cluster.kubeconfig), "get", "inc", "-n", namespace],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert "none" in next(line for line in listed.splitlines() if line.startswith(ref["name"])).split()


def test_escalate_on_an_incident_that_is_over_refuses_and_says_what_it_does_otherwise(
    kube_cluster: KubeCluster,
    crds: list[str],
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    standins: StandIns,
) -> None:
    setup_secrets(kube_cluster, namespace, standins)
    single = two_levels(standins, "1h")[:1]
    policy(kube_cluster, namespace, "single", single)
    operator_factory([namespace], env=env_for(namespace, standins))
    declare(kube_cluster, namespace, "one")
    standins.wait_for("pagerduty", 1)
    settled(kube_cluster, namespace, "one", 1)
    said = plugin(kube_cluster, "escalate", "one", "-n", namespace, "--by", "bob")
    assert "level 1 is the last level of policy single, so it is paged again" in said.stdout
    standins.wait_for("pagerduty", 2)
    patch_spec(kube_cluster, namespace, "one", {"resolution": {"by": "bob", "summary": "fixed"}})
    wait_until(
        lambda: get(kube_cluster, namespace, "one")["status"]["state"] == "Resolved", timeout=20, what="Resolved"
    )
    refused = plugin(kube_cluster, "escalate", "one", "-n", namespace, code=1)
    assert "is Resolved: nobody is paged for it any more" in refused.stderr
    assert "escalationRequest" in get(kube_cluster, namespace, "one")["spec"]  # the first one only
    assert get(kube_cluster, namespace, "one")["spec"]["escalationRequest"]["by"] == "bob"


def plugin(cluster: KubeCluster, *args: str, code: int = 0) -> Any:
    from click.testing import CliRunner  # noqa: PLC0415

    from incidentops.cli.main import cli  # noqa: PLC0415

    result = CliRunner().invoke(cli, [*args, "--kubeconfig", str(cluster.kubeconfig)])
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result
