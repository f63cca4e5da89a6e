"""Local stand-ins for the notification services the operator pages through.

Slack, PagerDuty, Twilio, Statuspage and the receivers of generic webhooks are unreachable from CI
and from the demo machine, so tests and `make demo` point the operator at these small servers
instead. `StandIns` is one aiohttp application that speaks each service's documented wire format
under its own path prefix (closely enough that a client written against the real API works
unchanged), records every request, and can be told to answer with faults (429, 5xx) so retries
and back-off are exercised for real. `SmtpStandIn` is a real SMTP server (aiosmtpd) that keeps
the mail it accepts.

Both run their own event loop in a daemon thread, so synchronous pytest fixtures can use them.
`python -m localenv.standins --port 8125 --smtp-port 8126` runs both in the foreground and
prints one line per request, which is what the demo shows a newcomer.

Control API (not recorded), for processes that cannot use the Python API:

- `GET /_standins/requests?service=NAME`: the recorded requests as JSON.
- `DELETE /_standins/requests`: forget them.
- `POST /_standins/faults` with `{"service": "slack", "status": 429, "times": 2, "retry_after": 1}`:
  the next `times` requests to that service (`-1`: all of them) answer `status`.
- `DELETE /_standins/faults`: answer normally again.
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
