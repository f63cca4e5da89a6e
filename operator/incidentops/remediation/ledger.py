"""Who acted on what, when: the history the guards read (cooldown, hourly limit, storm budget).

Rebuilt from the Incidents' own status (a LIST at start, then the watch), so it survives
restarts and is the same in every replica; a run the operator starts itself is recorded at once,
before the watch brings it back, so two incidents deciding one after the other see each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.common import parse_time
from incidentops.api.v1alpha1.runbook import Action
from incidentops.remediation.guards import PastRun
from incidentops.remediation.targets import CHANGES_NOTHING


def runs_in(status: Mapping[str, Any], uid: str = "", drill: bool = False) -> list[PastRun]:
    """The changing steps an incident's status says were started, with who decided (automatic or not)."""
    remediation = status.get("remediation") or {}
    runbook = str(remediation.get("runbook") or "")
    runs = []
    for step in remediation.get("steps") or []:
        started = step.get("startedAt")
        try:
            action = Action(step.get("action"))
        except ValueError:
            continue
        if not started or action in CHANGES_NOTHING or not step.get("target"):
            continue
        at = started if isinstance(started, datetime) else parse_time(str(started))
        runs.append(PastRun(runbook, str(step["target"]), at, bool(step.get("automatic")), uid, drill))
    return runs


KEPT = timedelta(days=1)  # longer than any cooldown, hour or storm window worth honouring


class Ledger:
    """PastRuns per incident uid."""

    def __init__(self) -> None:
        self._runs: dict[str, list[PastRun]] = {}

    def observe(self, uid: str, status: Mapping[str, Any], drill: bool = False) -> None:
        runs = runs_in(status, uid, drill)
        if runs or uid in self._runs:
            # A union: what this process recorded may not be back from the watch yet, and a run
            # replaced in status by a later runbook's still happened.
            self._runs[uid] = sorted(set(runs) | set(self._runs.get(uid, [])), key=lambda r: r.at)

    def record(self, uid: str, run: PastRun) -> None:
        # Status keeps milliseconds: the same run, back from the watch, must compare equal.
        run = replace(run, at=run.at.replace(microsecond=run.at.microsecond // 1000 * 1000))
        self._runs.setdefault(uid, [])
        if run not in self._runs[uid]:
            self._runs[uid].append(run)

    def forget(self, uid: str) -> None:
        """A deleted Incident's runs still happened: they stay until they age out (deleting must not reset a guard)."""

    def history(self, excluding: str, now: datetime | None = None, *, drills: bool = False) -> list[PastRun]:
        """Every recorded run but the incident's own (its later steps are not held back by its first).

        A live drill's runs are left out unless `drills`: a drill never holds a real incident back,
        while a drill is held back by real runs (and other drills) like any incident.
        """
        if now is not None:
            self._prune(now - KEPT)
        return [run for uid, runs in self._runs.items() if uid != excluding for run in runs if drills or not run.drill]

    def _prune(self, before: datetime) -> None:
        for uid in list(self._runs):
            kept = [r for r in self._runs[uid] if r.at >= before]
            if kept:
                self._runs[uid] = kept
            else:
                del self._runs[uid]
