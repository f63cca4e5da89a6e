"""Client-side rate limits: a token bucket per destination (a Slack channel, a PagerDuty routing key).

`reserve` never sleeps: it says when the next message to a destination may go, and takes the
token only when that is now, so a busy destination delays its own notifications and no others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass
class _Bucket:
    tokens: float
    at: datetime


class Pace:
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def reserve(self, key: str, rate: float, burst: int) -> datetime | None:
        """None when a message may go now (the token is taken); otherwise when to try again."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(burst), now)
        elapsed = max(0.0, (now - bucket.at).total_seconds())
        bucket.tokens = min(float(burst), bucket.tokens + elapsed * rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return now + timedelta(seconds=(1.0 - bucket.tokens) / rate)
