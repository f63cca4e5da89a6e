"""`python -m localenv.standins`: both stand-ins in the foreground, one line per request."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from localenv.standins.anthropic import describe_messages
from localenv.standins.core import DEFAULT_PORT, SERVICES, Received, _obj, _one_line
from localenv.standins.server import StandIns
from localenv.standins.smtp import ReceivedEmail, SmtpStandIn


def describe(received: Received) -> str:
    """One readable line for a received request, as `make demo` prints it."""
    line = f"[{received.service}] {_describe_request(received)}"
    answer = _obj(received.response_json())
    if received.faulted:
        return f"{line} -> answered {received.status} (injected fault)"
    if received.status >= 400:
        detail = answer.get("errors") or answer.get("message") or answer.get("error") or received.response.decode()
        if isinstance(detail, dict):  # Anthropic: {"type": "error", "error": {"type": ..., "message": ...}}
            detail = f"{detail.get('type')}: {detail.get('message')}"
        return f"{line} -> rejected {received.status}: {_one_line(str(detail))}"
    if answer.get("ok") is False:  # the Slack Web API fails with 200 and ok=false
        return f"{line} -> rejected: {answer.get('error')}"
    return line


def _describe_request(received: Received) -> str:
    data = _obj(received.json)
    form = received.form or {}
    answer = _obj(received.response_json())
    if received.service == "pagerduty":
        action = data.get("event_action", "?")
        dedup_key = data.get("dedup_key") or answer.get("dedup_key")
        key = f" dedup_key={dedup_key}" if dedup_key else ""
        if action == "trigger":
            payload = _obj(data.get("payload"))
            severity = str(payload.get("severity", "?")).upper()
            summary = _one_line(str(payload.get("summary", "")))
            return f'trigger {severity}{key} summary="{summary}"'
        return f"{action}{key}"
    if received.service == "slack":
        params = data or form
        channel = params.get("channel") or "(webhook's channel)"
        text = str(params.get("text") or "")
        if not text and params.get("blocks"):
            text = f"({len(params['blocks'])} blocks)"
        thread = f" (in thread {params['thread_ts']})" if params.get("thread_ts") else ""
        return f"{channel}: {_one_line(text)}{thread}"
    if received.service == "twilio":
        if received.path.endswith("/Calls.json"):
            return f"call to {form.get('To', '?')}"
        return f"SMS to {form.get('To', '?')}: {_one_line(form.get('Body', ''))}"
    if received.service == "statuspage":
        incident = _obj(data.get("incident"))
        status = incident.get("status") or answer.get("status") or "update"
        name = incident.get("name") or answer.get("name") or received.path.rsplit("/", 1)[-1]
        return f"{status}: {_one_line(str(name))}"
    if received.service == "anthropic" and received.path.endswith("/v1/messages"):
        return describe_messages(data, answer)
    event = f" event={data['event']}" if "event" in data else ""
    return f"{received.method} {received.path}{event}"


def describe_email(message: ReceivedEmail) -> str:
    """One readable line for a received email, as `make demo` prints it."""
    return f"[email] to {', '.join(message.rcpt_tos)}: {_one_line(str(message['Subject'] or '(no subject)'))}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the HTTP and SMTP stand-ins in the foreground, printing a line per request, until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m localenv.standins",
        description="Local stand-ins for Slack, PagerDuty, Twilio, Statuspage, webhooks, Anthropic and SMTP.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port (default: %(default)s)")
    parser.add_argument("--smtp-port", type=int, default=None, help="SMTP port (default: the HTTP port + 1)")
    args = parser.parse_args(argv)
    smtp_port = args.smtp_port if args.smtp_port is not None else (args.port + 1 if args.port else 0)

    print_lock = threading.Lock()

    def say(line: str) -> None:
        with print_lock:
            print(line, flush=True)

    http_standins = StandIns(args.host, args.port, on_receive=lambda r: say(describe(r)))
    smtp = SmtpStandIn(args.host, smtp_port, on_receive=lambda m: say(describe_email(m)))
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            http_standins.start()
            smtp.start()
        except OSError as error:
            print(f"standins: cannot listen: {error}", file=sys.stderr, flush=True)
            return 1
        say(f"stand-ins listening on {http_standins.url} (SMTP on {args.host}:{smtp.port}, no STARTTLS)")
        for service in SERVICES:
            say(f"  {service:<10} {http_standins.base(service)}")
        stopping.wait()
        return 0
    finally:
        smtp.stop()
        http_standins.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
