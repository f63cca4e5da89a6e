"""Whether a DetectionRule's new status is worth a write: a state, a value's bucket or a condition changed.

A thousand rules evaluated every 30 s would otherwise write 33 statuses a second that say nothing
new: the evaluation time and the exact float of every series move on each look. Those are written
at most once a minute (so `kubectl get dr` still shows a recent LAST EVALUATION, and a restarted
operator resumes on the rule's grid); a value is news when it moves to another bucket (two
significant digits). Everything else (series appearing or going, their states and times, the
rule's state, errors, the query, the conditions) is written as soon as it changes. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.common import parse_time

QUIET = timedelta(minutes=1)  # the longest lastEvaluation goes unwritten while nothing else changes


def bucket(value: Any) -> Any:
    """A value as it is compared: two significant digits (0.2347 and 0.2351 are the same news)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value == 0:
        return value
    return float(f"{value:.2g}")


def _steady(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status without what moves on every evaluation (times), values in their buckets."""
    out = {k: v for k, v in status.items() if k not in ("lastEvaluation", "lastValue")}
    out["lastValue"] = bucket(status.get("lastValue"))
    out["series"] = [
        {**{k: v for k, v in s.items() if k not in ("lastEvaluation", "value")}, "value": bucket(s.get("value"))}
        for s in status.get("series") or []
        if isinstance(s, Mapping)
    ]
    return out


def worth_writing(before: Mapping[str, Any], after: Mapping[str, Any], now: datetime) -> bool:
    """Whether `after` says something `before` (the status as stored) does not, or it is time to say it again."""
    if _steady(before) != _steady(after):
        return True
    last = before.get("lastEvaluation")
    try:
        return last is None or now - parse_time(str(last)) >= QUIET
    except ValueError:
        return True
