"""Local stand-ins for the notification services the operator pages through, and for the model it asks.

Slack, PagerDuty, Twilio, Statuspage, the receivers of generic webhooks and the Anthropic Messages
API are unreachable from CI and from the demo machine, so tests and `make demo` point the operator
at these small servers instead. `StandIns` is one aiohttp application that speaks each service's
documented wire format under its own path prefix (closely enough that a client written against the
real API works unchanged), records every request, and can be told to answer with faults (429, 5xx)
so retries and back-off are exercised for real. The Anthropic stand-in answers as a script says,
else as a diligent model ("auto") or as a model hijacked by prompt injection ("obey"); see
`localenv.standins.anthropic`. `SmtpStandIn` is a real SMTP server (aiosmtpd) that keeps the mail
it accepts.

Both run their own event loop in a daemon thread, so synchronous pytest fixtures can use them.
`python -m localenv.standins --port 8125 --smtp-port 8126` runs both in the foreground and
prints one line per request, which is what the demo shows a newcomer.

Control API (not recorded), for processes that cannot use the Python API:

- `GET /_standins/requests?service=NAME`: the recorded requests as JSON.
- `DELETE /_standins/requests`: forget them.
- `POST /_standins/faults` with `{"service": "slack", "status": 429, "times": 2, "retry_after": 1}`:
  the next `times` requests to that service (`-1`: all of them) answer `status`.
- `DELETE /_standins/faults`: answer normally again.
- `POST /_standins/anthropic/script` with a JSON list of steps: queue them (`StandIns.anthropic_script`).
- `POST /_standins/anthropic/auto` with `{"answers": {"submit_triage": {...}}, "latency": 1}`: configure auto.
- `POST /_standins/anthropic/mode` with `{"mode": "obey"}` (or `"auto"`).
- `DELETE /_standins/anthropic`: drop the script, back to auto without answers or latency.
"""

from localenv.standins.cli import describe, describe_email, main
from localenv.standins.core import DEFAULT_PORT, SERVICES, Received
from localenv.standins.pagerduty import pagerduty_errors
from localenv.standins.server import StandIns
from localenv.standins.smtp import ReceivedEmail, SmtpStandIn

__all__ = [
    "DEFAULT_PORT",
    "SERVICES",
    "Received",
    "ReceivedEmail",
    "SmtpStandIn",
    "StandIns",
    "describe",
    "describe_email",
    "main",
    "pagerduty_errors",
]
