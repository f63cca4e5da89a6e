"""Slack: an incoming-webhook URL, or a bot token with chat.postMessage.

With a bot token the first message's ts is kept (the delivery's ref) and later updates of the
same incident reply in its thread. People are mentioned by the Slack member IDs of the contact
directory.
"""

from __future__ import annotations

import httpx

from incidentops.escalation.channels.base import Envelope, missing, outcome_of, post
from incidentops.escalation.outbox import Outcome

DEFAULT_BASE = "https://slack.com/api"
RETRYABLE = frozenset({"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable"})


def text_of(envelope: Envelope) -> str:
    mentions = " ".join(f"<@{a}>" if not a.startswith(("#", "<")) else a for a in envelope.addresses)
    head = f"*{envelope.rendered.subject}*"
    body = f"{head}\n{envelope.rendered.text}"
    if mentions and envelope.delivery.event == "page":
        body += f"\n{mentions}"
    return body[:3900]


class Slack:
    async def send(self, envelope: Envelope, http: httpx.AsyncClient) -> Outcome:
        credential = envelope.credential
        if not credential:
            return missing("slack: the Secret holds no webhook URL or token")
        if credential.startswith(("xoxb-", "xoxp-")):
            return await self._bot(envelope, http, credential)
        if not credential.startswith(("http://", "https://")):
            return missing("slack: the Secret's value is neither a webhook URL nor a bot token (xoxb-...)")
        payload: dict[str, str] = {"text": text_of(envelope)}
        if envelope.channel.slack_channel:
            payload["channel"] = envelope.channel.slack_channel
        answer = await post(envelope, http, "slack webhook", "POST", credential, json=payload)
        return answer if isinstance(answer, Outcome) else outcome_of(answer, "slack webhook")

    async def _bot(self, envelope: Envelope, http: httpx.AsyncClient, token: str) -> Outcome:
        if not envelope.channel.slack_channel:
            return missing("slack: a bot token needs slackChannel in the policy")
        base = (envelope.channel.url or DEFAULT_BASE).rstrip("/")
        payload: dict[str, str] = {"channel": envelope.channel.slack_channel, "text": text_of(envelope)}
        if envelope.thread:
            payload["thread_ts"] = envelope.thread
        answer = await post(
            envelope,
            http,
            "slack chat.postMessage",
            "POST",
            f"{base}/chat.postMessage",
            json=payload,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json; charset=utf-8"},
        )
        if isinstance(answer, Outcome):
            return answer
        if not answer.is_success:
            return outcome_of(answer, "slack chat.postMessage")
        try:
            data = answer.json()
        except ValueError:
            return Outcome("retry", f"slack chat.postMessage: not JSON: {answer.text[:200]}")
        if not data.get("ok"):
            error = str(data.get("error", "unknown"))
            if error in RETRYABLE:
                return Outcome("retry", f"slack chat.postMessage: {error}")
            return Outcome("failed", f"slack chat.postMessage: {error}")
        thread = envelope.thread or str(data.get("ts") or "") or None
        return Outcome("delivered", f"slack chat.postMessage: ok ts={data.get('ts')}", thread)


SENDER = Slack()
