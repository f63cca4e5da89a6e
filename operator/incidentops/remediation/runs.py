"""A run's bookkeeping once its decision is written: metrics, and the Runbook's own count of runs.

The Runbook's status (executions, successes, failures, the last run) is a summary, written with
the Runbook's resourceVersion and retried a few times; losing a count to a busy Runbook is told
in the log, not worth holding an incident's turn for.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from incidentops.api.v1alpha1.common import format_time
from incidentops.api.v1alpha1.incident import RemediationStatus, StepState
from incidentops.api.v1alpha1.resources import RUNBOOK
from incidentops.kube import AsyncKube, Conflict, KubeError
from incidentops.metrics import REMEDIATIONS

log = logging.getLogger(__name__)
ATTEMPTS = 5


class Runs:
    def __init__(self, kube: AsyncKube) -> None:
        self.kube = kube

    async def ended(
        self,
        namespace: str,
        incident: str,
        before: RemediationStatus | None,
        after: RemediationStatus,
        now: datetime,
        drill: bool,
    ) -> None:
        """Count a run that just ended, in metrics and in its Runbook's status (never a simulation's)."""
        if drill or (before is not None and before.phase == after.phase):
            return
        if after.phase not in ("Verified", "Done", "Failed"):
            return
        REMEDIATIONS.labels(after.runbook or "", str(after.phase)).inc()
        if not any(s.started_at for s in after.steps):
            return  # nothing ran (refused at the first step): not an execution
        rolled_back = any(s.state == StepState.ROLLED_BACK for s in after.steps)
        result = "Succeeded" if after.phase in ("Verified", "Done") else ("RolledBack" if rolled_back else "Failed")
        await self.record(namespace, after.runbook, incident, now, result)

    async def record(self, namespace: str, runbook: str | None, incident: str, at: datetime, result: str) -> None:
        """The Runbook's executions, last result and success rate."""
        if runbook is None:
            return
        for _ in range(ATTEMPTS):
            try:
                obj = await self.kube.get(RUNBOOK, namespace, runbook)
            except KubeError:
                return
            current = obj.get("status") or {}
            patch: dict[str, Any] = {}
            if result == "Running":
                patch["executions"] = int(current.get("executions", 0)) + 1
                patch["lastExecution"] = {"incident": incident, "at": format_time(at), "result": result}
            else:
                good = int(current.get("succeeded", 0)) + (result == "Succeeded")
                bad = int(current.get("failed", 0)) + (result != "Succeeded")
                last = current.get("lastExecution") or {"incident": incident, "at": format_time(at)}
                patch.update(succeeded=good, failed=bad, successRate=f"{round(100 * good / (good + bad))}%")
                patch["lastExecution"] = {**last, "incident": incident, "result": result}
            try:
                await self.kube.run(
                    self.kube.client.patch_status,
                    RUNBOOK,
                    namespace,
                    runbook,
                    {"status": patch},
                    obj["metadata"]["resourceVersion"],
                )
                return
            except Conflict:
                continue
            except KubeError as error:
                log.warning("could not record the run of runbook %s/%s: %s", namespace, runbook, error)
                return
        log.warning("runbook %s/%s kept changing: this run of it is not counted in its status", namespace, runbook)
