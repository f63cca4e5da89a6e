"""The channel registry: one sender per channel type, each speaking its service's documented format."""

from __future__ import annotations

from incidentops.escalation.channels import email, pagerduty, slack, statuspage, twilio, webhook
from incidentops.escalation.channels.base import Sender

REGISTRY: dict[str, Sender] = {
    "pagerduty": pagerduty.SENDER,
    "slack": slack.SENDER,
    "webhook": webhook.SENDER,
    "email": email.SENDER,
    "sms": twilio.SMS,
    "phone": twilio.PHONE,
    "statuspage": statuspage.SENDER,
}
# Client-side pace per destination (messages per second, burst): Slack allows about one message a
# second per channel, PagerDuty about 120 events a minute per routing key, Twilio one SMS a second
# per sender number, Statuspage one request a second.
RATES: dict[str, tuple[float, int]] = {
    "slack": (1.0, 3),
    "pagerduty": (2.0, 10),
    "sms": (1.0, 5),
    "phone": (1.0, 5),
    "statuspage": (1.0, 2),
    "webhook": (50.0, 100),
    "email": (10.0, 20),
}
