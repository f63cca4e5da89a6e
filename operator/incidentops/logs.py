"""Logging: one JSON object per line in containers, readable lines on a terminal."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Structured lines for log pipelines; extras (Kopf's object reference, for one) are kept."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class RetriesAreNotErrors(logging.Filter):
    """Kopf logs each retried apiserver call at ERROR; a retry is routine, so it becomes a warning.

    A freshly started apiserver answers 429 'storage is (re)initializing' for a few seconds: that
    is the apiserver starting, not a fault, and is logged at INFO. Only a call that gives up
    (Kopf says 'escalating') stays an error.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and "will retry" in record.getMessage():
            starting = "TooManyRequests" in record.getMessage() or "initializing" in record.getMessage()
            record.levelno = logging.INFO if starting else logging.WARNING
            record.levelname = logging.getLevelName(record.levelno)
        return True


def waiting_level(error: BaseException) -> int:
    """INFO while the apiserver says it is starting (429, storage (re)initializing), else WARNING."""
    text = str(error)
    return logging.INFO if "429" in text or "initializing" in text or "TooManyRequests" in text else logging.WARNING


def setup(fmt: Literal["json", "text"], level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RetriesAreNotErrors())  # on the handler: Kopf logs retries through many loggers
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiohttp.access", "urllib3", "kubernetes.client.rest"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # httpx and httpcore log every request with its full URL (at INFO and DEBUG): for a Slack incoming
    # webhook the path is the credential. The operator logs its own line per call (channel, target,
    # result) instead; these stay silent at every level, DEBUG included.
    for leaky in ("httpx", "httpcore", "httpx2", "httpcore2", "anthropic", "hpack"):
        logging.getLogger(leaky).setLevel(logging.WARNING)
    # Kopf logs a line per handled watch event: thousands a minute in an alert storm. What a human
    # needs to know is posted as Kubernetes Events; the per-event lines are for debugging.
    if level != "DEBUG":
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


class Throttle:
    """Log lines that a storm could repeat thousands of times: a few per period, then a count.

    Each key (a rejection reason, say) logs at most `burst` lines per `period`; the first line
    after a quiet spell says how many were left out meanwhile.
    """

    def __init__(self, burst: int = 5, period: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._burst = burst
        self._period = period
        self._clock = clock
        self._windows: dict[str, tuple[float, int, int]] = {}

    def log(self, logger: logging.Logger, level: int, key: str, message: str, *args: object) -> bool:
        """Log unless the key is over its budget; returns whether the line was written."""
        now = self._clock()
        started, written, dropped = self._windows.get(key, (now, 0, 0))
        if now - started >= self._period:
            started, written = now, 0
        if written >= self._burst:
            self._windows[key] = (started, written, dropped + 1)
            return False
        if dropped:
            message += " (%d similar lines left out)"
            args = (*args, dropped)
        logger.log(level, message, *args)
        self._windows[key] = (started, written + 1, 0)
        return True
