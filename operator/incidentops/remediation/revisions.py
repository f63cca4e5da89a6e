"""Where a rollback goes: the revision live before the change that preceded the alert.

A Deployment's revisions are numbered in rollout order. Each ReplicaSet carries its current
number (`deployment.kubernetes.io/revision`) and, when a rollback reused it, the numbers it had
before (`deployment.kubernetes.io/revision-history`). A number first given to a ReplicaSet is as
old as the ReplicaSet; a number given on reuse has no time of its own, so it is taken to be no
earlier than the revision before it (a lower bound: Kubernetes does not record it).

The suspect change is the newest revision live before the alert began; later revisions (a
hurried fix that did not help) are skipped too. The target is the revision before the suspect.
Nothing changed within the lookback window before the alert: a rollback is not the fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from incidentops.api.v1alpha1.common import parse_time

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
TEMPLATE_HASH = "pod-template-hash"
DEFAULT_LOOKBACK = timedelta(hours=24)


@dataclass(frozen=True)
class ReplicaSetRevision:
    """What the choice reads of one ReplicaSet of the Deployment."""

    name: str
    created: datetime
    revision: int
    history: tuple[int, ...] = ()
    template_hash: str = ""

    @classmethod
    def of(cls, obj: dict[str, object]) -> ReplicaSetRevision | None:
        """From a ReplicaSet as the API returns it (dict form); None when it carries no revision."""
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            return None
        annotations = meta.get("annotations") or {}
        labels = meta.get("labels") or {}
        try:
            revision = int(annotations.get(REVISION, ""))
            history = tuple(int(p) for p in str(annotations.get(REVISION_HISTORY, "")).split(",") if p.strip())
            created = parse_time(str(meta.get("creationTimestamp")))
        except ValueError:
            return None
        return cls(str(meta.get("name")), created, revision, history, str(labels.get(TEMPLATE_HASH, "")))


@dataclass(frozen=True)
class Revision:
    """One rollout: its number, the ReplicaSet it made live, and (at least) when."""

    number: int
    replica_set: ReplicaSetRevision
    at: datetime


@dataclass(frozen=True)
class RollbackTarget:
    """Roll from `current` back to `target`, or do nothing, or refuse with a reason."""

    current: Revision | None
    suspect: Revision | None
    target: Revision | None
    refusal: str | None = None
    reason: str = ""

    @property
    def nothing_to_do(self) -> bool:
        return (
            self.refusal is None
            and self.target is not None
            and self.current is not None
            and (self.target.replica_set.template_hash == self.current.replica_set.template_hash)
        )


def revisions(replica_sets: Iterable[ReplicaSetRevision]) -> list[Revision]:
    """Every rollout in order, reuses included, each with the earliest time it can have happened."""
    numbered = sorted(((n, rs) for rs in replica_sets for n in (*rs.history, rs.revision)), key=lambda item: item[0])
    result: list[Revision] = []
    for number, rs in numbered:
        first_use = number == min((*rs.history, rs.revision))
        at = rs.created if first_use or not result else result[-1].at  # a reuse: no earlier than the one before
        if result and at < result[-1].at:
            at = result[-1].at  # revision numbers only grow, and so does time
        result.append(Revision(number, rs, at))
    return result


def choose_target(
    replica_sets: Iterable[ReplicaSetRevision], alert_began: datetime, lookback: timedelta = DEFAULT_LOOKBACK
) -> RollbackTarget:
    """The revision to roll back to, for an incident whose first alert began at `alert_began`."""
    history = revisions(replica_sets)
    if not history:
        return RollbackTarget(None, None, None, "NoRevisions", "the Deployment has no ReplicaSet with a revision")
    current = history[-1]
    before = [r for r in history if r.at <= alert_began]
    if not before:
        return RollbackTarget(current, None, None, "NoRecentChange", "every revision is newer than the alert")
    suspect = before[-1]
    if alert_began - suspect.at > lookback:
        return RollbackTarget(
            current,
            suspect,
            None,
            "NoRecentChange",
            f"nothing changed in the {lookback} before the alert (last change: revision {suspect.number})",
        )
    earlier = [r for r in history if r.number < suspect.number]
    if not earlier:
        return RollbackTarget(current, suspect, None, "NoPreviousRevision", f"revision {suspect.number} is the first")
    target = earlier[-1]
    skipped = current.number - suspect.number
    reason = f"revision {suspect.number} went live before the alert; back to revision {target.number}"
    if skipped:
        reason += f" ({skipped} later revision{'s' if skipped != 1 else ''} after the alert skipped)"
    return RollbackTarget(current, suspect, target, None, reason)
