"""The outbox's moves: claim what is due, then record each attempt's outcome. Pure.

A claim (attempts + 1, claimedUntil) is written with the Incident's resourceVersion before the
notification is sent, so of two replicas only one sends it; a claim that expires without a
result (the sender died mid-call) makes the delivery due again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from incidentops.api.v1alpha1.incident import EscalationStatus, NotificationDelivery


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: delivered, worth retrying (after `retry_after`, if the channel said), or failed."""

    result: Literal["delivered", "retry", "failed"]
    message: str
    ref: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class Retries:
    attempts: int
    backoff: timedelta
    backoff_max: timedelta

    def delay(self, attempts: int) -> timedelta:
        grown: timedelta = self.backoff * (2 ** max(0, attempts - 1))
        return min(self.backoff_max, grown)


def claimable(delivery: NotificationDelivery, now: datetime) -> bool:
    if delivery.state != "Pending":
        return False
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
        return False
    return delivery.claimed_until is None or delivery.claimed_until <= now


def claim(
    esc: EscalationStatus, keys: Sequence[str], now: datetime, lease: timedelta
) -> tuple[EscalationStatus, list[NotificationDelivery]]:
    """Mark the deliveries with these keys as being tried now; returns them as claimed."""
    wanted = set(keys)
    claimed: list[NotificationDelivery] = []
    updated: list[NotificationDelivery] = []
    for delivery in esc.deliveries:
        if delivery.idempotency_key in wanted and claimable(delivery, now):
            taken = delivery.model_copy(
                update={"attempts": delivery.attempts + 1, "at": now, "claimed_until": now + lease}
            )
            claimed.append(taken)
            updated.append(taken)
        else:
            updated.append(delivery)
    return esc.model_copy(update={"deliveries": updated}), claimed


def record(
    esc: EscalationStatus, key: str, attempt: int, outcome: Outcome, now: datetime, retries: Retries
) -> tuple[EscalationStatus, NotificationDelivery | None]:
    """The outbox with one attempt's outcome; the delivery as recorded, or None when the attempt is stale."""
    updated: list[NotificationDelivery] = []
    recorded: NotificationDelivery | None = None
    for delivery in esc.deliveries:
        if delivery.idempotency_key == key and delivery.attempts == attempt and delivery.state == "Pending":
            recorded = settle(delivery, outcome, now, retries)
            updated.append(recorded)
        else:
            updated.append(delivery)
    return esc.model_copy(update={"deliveries": updated}), recorded


def settle(delivery: NotificationDelivery, outcome: Outcome, now: datetime, retries: Retries) -> NotificationDelivery:
    message = outcome.message[:1024]
    if outcome.result == "delivered":
        return delivery.model_copy(
            update={
                "state": "Delivered",
                "at": now,
                "message": message,
                "ref": outcome.ref,
                "claimed_until": None,
                "next_attempt_at": None,
            }
        )
    if outcome.result == "failed" or delivery.attempts >= retries.attempts:
        why = message if outcome.result == "failed" else f"gave up after {delivery.attempts} attempts: {message}"
        return delivery.model_copy(
            update={"state": "Failed", "message": why[:1024], "claimed_until": None, "next_attempt_at": None}
        )
    wait = retries.delay(delivery.attempts)
    if outcome.retry_after is not None:
        wait = max(wait, timedelta(seconds=outcome.retry_after))
    return delivery.model_copy(
        update={
            "message": f"attempt {delivery.attempts}: {message}"[:1024],
            "claimed_until": None,
            "next_attempt_at": now + wait,
        }
    )


def next_due(esc: EscalationStatus) -> datetime | None:
    """When the outbox next needs a look: a retry falling due, or a claim expiring."""
    times = [
        d.claimed_until if d.claimed_until is not None else d.next_attempt_at
        for d in esc.deliveries
        if d.state == "Pending"
    ]
    known = [t for t in times if t is not None]
    return min(known) if known else None
