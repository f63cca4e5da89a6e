"""Text that leaves the operator (status, Events, log lines) with credentials taken out.

Two layers: the values the caller knows are secret (a Slack webhook URL, a bearer token) are
replaced wherever they appear, and shapes that are credentials whoever wrote them (a URL's
userinfo, path and query; Authorization headers; `password: ...`; Slack and GitHub tokens) are
replaced too, because a remote service's answer may echo what it was sent or what it keeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[redacted]"
# Shorter values are not searched for: "a" or "1" would shred the text without hiding anything.
MIN_SECRET = 6

_PATTERNS = (
    # scheme://user:password@host -> scheme://[redacted]@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), rf"\1{REDACTED}@"),
    (re.compile(r"(?i)\b(authorization|proxy-authorization)(\s*[:=]\s*)(bearer |basic |token )?[^\s,;\"']+"),
     rf"\1\2\3{REDACTED}"),
    (re.compile(r"(?i)\b(bearer)\s+[a-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    (re.compile(
        r"(?i)([\"']?\b[a-z0-9_.-]*(?:password|passwd|secret|token|api[_-]?key|apikey|credentials?|private[_-]?key|"
        r"auth[_-]?key|routing[_-]?key|integration[_-]?key)[a-z0-9_.-]*[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;}&]+)"
    ), rf"\1{REDACTED}"),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{6,}"), REDACTED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), REDACTED),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"(?i)(hooks\.slack\.com/services/)[^\s\"']+"), rf"\1{REDACTED}"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S), REDACTED),
)  # fmt: skip


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """The text without the given secret values and without anything shaped like a credential."""
    for value in sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def excerpt(text: str, limit: int = 200, secrets: Iterable[str | None] = ()) -> str:
    """A short, redacted, single-line excerpt of a remote answer (redacted before it is cut)."""
    flat = " ".join(redact(text, secrets).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def safe_url(url: str) -> str:
    """A URL as it may be shown: scheme, host and port, the path only when the caller wrote it openly.

    Userinfo and the query are always dropped; the path is kept (a runbook's own URL), but passed
    through the credential patterns.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port else "")
    query = REDACTED if parts.query else ""
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, "")))


def origin(url: str) -> str:
    """Only the scheme, host and port of a URL: what a log line may say of a credential-bearing address."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return REDACTED
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")
