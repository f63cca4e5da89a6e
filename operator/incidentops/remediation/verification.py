"""Did the fix work? The verify query must return nothing for a whole window, within a timeout.

Pure: the shell evaluates the query and passes what it got; the progress (since when the query
has been clear, when verification began) lives in status, so a restarted operator continues the
same window instead of starting over. An unanswered query is not a clear one: Prometheus being
down never proves a recovery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from incidentops.api.v1alpha1.common import parse_duration
from incidentops.api.v1alpha1.incident import VerificationProgress
from incidentops.api.v1alpha1.runbook import Verification


@dataclass(frozen=True)
class QueryResult:
    """What one evaluation of the verify query returned: the series still firing, or an error."""

    firing: tuple[str, ...] = ()
    error: str | None = None

    @property
    def clear(self) -> bool:
        return self.error is None and not self.firing

    def describe(self) -> str:
        if self.error is not None:
            return f"query failed: {self.error}"
        if not self.firing:
            return "no series: clear"
        shown = ", ".join(self.firing[:3]) + (f" and {len(self.firing) - 3} more" if len(self.firing) > 3 else "")
        return f"{len(self.firing)} series still firing: {shown}"


@dataclass(frozen=True)
class Turn:
    """The progress after one evaluation, and the outcome once there is one."""

    progress: VerificationProgress
    outcome: Literal["verified", "failed", "unavailable"] | None
    message: str


def begin(now: datetime) -> VerificationProgress:
    return VerificationProgress(started_at=now)


def turn(spec: Verification, progress: VerificationProgress, result: QueryResult, now: datetime) -> Turn:
    """One evaluation: extend or break the clear streak; verified after `window`, failed after `timeout`."""
    window, timeout = parse_duration(spec.window), parse_duration(spec.timeout)
    clear_since = (progress.clear_since or now) if result.clear else None
    progress = progress.model_copy(
        update={"clear_since": clear_since, "checked_at": now, "last_result": result.describe()[:1024]}
    )
    if clear_since is not None and now - clear_since >= window:
        done = progress.model_copy(update={"finished_at": now})
        return Turn(done, "verified", f"the verify query returned no series for {spec.window}")
    if now - progress.started_at >= timeout:
        done = progress.model_copy(update={"finished_at": now})
        if result.error is not None:
            # Unproven: never a success. The shell treats it as a failure; the message says Prometheus was away.
            return Turn(done, "unavailable", f"could not verify within {spec.timeout}: {result.describe()}")
        return Turn(done, "failed", f"not clear for {spec.window} within {spec.timeout}: {result.describe()}")
    return Turn(progress, None, result.describe())


def next_check(spec: Verification, progress: VerificationProgress, poll: float) -> datetime:
    """When to evaluate again: after the poll interval, but never past the moment a window or timeout ends."""
    checked = progress.checked_at or progress.started_at
    candidates = [checked + timedelta(seconds=poll), progress.started_at + parse_duration(spec.timeout)]
    if progress.clear_since is not None:
        candidates.append(progress.clear_since + parse_duration(spec.window))
    return min(candidates)
