"""Postmortems as a concern of the Incident turn: written once at resolution, then mirrored, never rewritten.

It owns status.postmortem. When an incident whose severity needs a review (SEV1 and SEV2 by
default) is resolved, a turn claims the writing (state Writing, claimedUntil) with the
resourceVersion it read, so of two replicas only one writes. The document is then built in the
background (Prometheus peaks, a model's draft when configured) and created under the incident's
name: if it exists already (a retry, a restart, a second resolution) it is left exactly as the
team has it. The next turn records the name. Afterwards a change of the Postmortem (its state)
wakes this concern, which mirrors the state so the lifecycle can let the incident close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from incidentops.api.v1alpha1.common import API_VERSION, MANAGED_BY, MANAGED_BY_LABEL, parse_time
from incidentops.api.v1alpha1.incident import (
    ENDED_STATES,
    IncidentSpec,
    IncidentStatus,
    PostmortemLink,
)
from incidentops.api.v1alpha1.resources import POSTMORTEM
from incidentops.concern import Background, Decision, Notice, Ownership, WatchedConcern, append_timeline
from incidentops.config import Config
from incidentops.kube import AsyncKube, Conflict, KubeError, NotFound, Obj
from incidentops.llm import Llm
from incidentops.metrics import POSTMORTEMS
from incidentops.postmortem.document import build
from incidentops.postmortem.drafting import draft
from incidentops.postmortem.peaks import peaks, sources
from incidentops.prometheus import Prometheus

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
INCIDENT_UID = "incidentops.dev/incident-uid"  # which incident a postmortem reviews, when names are reused
WRITE_TIMEOUT = timedelta(seconds=60)
SETTLING = frozenset({"Running", "Verifying", "Undoing"})  # remediation still finding out whether it worked
SETTLE_AT_MOST = timedelta(minutes=10)
Key = tuple[str, str]


@dataclass(frozen=True)
class Written:
    """What the background writing came to."""

    name: str | None
    created: bool  # False: it existed already (left as it was)
    drafted: bool
    error: str | None = None


@dataclass(frozen=True)
class Write:
    """The effect: write the postmortem of this incident."""


@dataclass(frozen=True)
class Mirror:
    state: str


class Postmortems(WatchedConcern):
    name = "postmortem"
    owns = Ownership(frozenset({"postmortem"}))

    def __init__(
        self,
        kube: AsyncKube,
        config: Config,
        clock: Callable[[], datetime],
        prometheus: Prometheus | None,
        llm: Llm | None,
    ) -> None:
        self.kube = kube
        self.clock = clock
        self.prometheus = prometheus
        self.llm = llm
        self.severities = frozenset(str(s) for s in config.postmortem_severities)
        self.llm_timeout = config.seconds("llm_timeout")
        self.background = Background(self.name)

    def bind(self, wake: Callable[[Key, str], None], deliver: Callable[[Key, str, Any], None]) -> None:
        self.background.bind(deliver)

    async def close(self) -> None:
        await self.background.close()

    def wake(self, body: Mapping[str, Any], now: datetime) -> datetime | None:
        status = body.get("status") or {}
        if not status.get("detectedAt") or status.get("state") not in ENDED_STATES:
            return None
        link = status.get("postmortem")
        if link is None:
            return self._settled(status, now) if self._required(body) else None
        if link.get("state") == "Writing" and link.get("claimedUntil"):
            return max(now, parse_time(str(link["claimedUntil"])))
        return None

    async def observe(self, obj: Obj, status: IncidentStatus, now: datetime, carried: Any) -> Any:
        if isinstance(carried, Written):
            return carried
        link = status.postmortem
        if link is None or not link.name or link.state in (None, "Writing", "Deleted"):
            return None
        try:
            found = await self.kube.get(POSTMORTEM, obj["metadata"]["namespace"], link.name)
        except NotFound:
            return Mirror("Deleted")
        return Mirror(str((found.get("spec") or {}).get("state") or "Draft"))

    def decide(
        self, obj: Obj, spec: IncidentSpec, status: IncidentStatus, observed: Any, now: datetime
    ) -> Decision | None:
        link = status.postmortem
        if isinstance(observed, Written):
            return self._record(obj, status, observed, now)
        if isinstance(observed, Mirror):
            if link is None or link.state == observed.state:
                return None
            mirrored = link.model_copy(update={"state": observed.state})
            return Decision(status.model_copy(update={"postmortem": mirrored}))
        if status.state not in ENDED_STATES or status.detected_at is None:
            return None
        if link is None:
            waiting = self._settled(status.wire(), now)
            if waiting is not None and waiting > now:
                return Decision(status, next_at=waiting)  # the document says whether the fix was verified
            if not self._required({**obj, "status": status.wire()}):
                return None  # nothing to write: an incident that needs none costs no write
            return self._claim(obj, status, PostmortemLink(required=True), now)
        if link.state == "Writing" and link.claimed_until is not None and link.claimed_until <= now:
            if link.attempts >= MAX_ATTEMPTS:
                failed = link.model_copy(update={"state": None, "claimed_until": None})
                text = f"the postmortem could not be written after {link.attempts} attempts: {link.message or ''}"
                updated = append_timeline(status.model_copy(update={"postmortem": failed}), now, "PostmortemFailed",
                                          text[:2048])  # fmt: skip
                return Decision(updated, [Notice("PostmortemFailed", text[:1024], warning=True)])
            return self._claim(obj, status, link, now)
        return None

    def _required(self, body: Mapping[str, Any]) -> bool:
        """Whether the incident needs a postmortem: its severity, and never for a simulation."""
        spec, status = body.get("spec") or {}, body.get("status") or {}
        severity = status.get("severity") or spec.get("severity")
        return not spec.get("simulation") and str(severity) in self.severities

    @staticmethod
    def _settled(status: Mapping[str, Any], now: datetime) -> datetime | None:
        """When the postmortem may be written: now, unless remediation is still verifying (then when it must be
        settled at the latest; its own write wakes this concern sooner)."""
        phase = (status.get("remediation") or {}).get("phase")
        resolved = status.get("resolvedAt")
        if phase in SETTLING and resolved:
            latest = parse_time(str(resolved)) + SETTLE_AT_MOST
            if latest > now:
                return latest
        return now

    def _claim(self, obj: Obj, status: IncidentStatus, link: PostmortemLink, now: datetime) -> Decision:
        claim = link.model_copy(
            update={
                "name": obj["metadata"]["name"],
                "state": "Writing",
                "claimed_until": now + WRITE_TIMEOUT,
                "attempts": link.attempts + 1,
            }
        )
        return Decision(status.model_copy(update={"postmortem": claim}), effects=[Write()])

    def _record(self, obj: Obj, status: IncidentStatus, written: Written, now: datetime) -> Decision | None:
        link = status.postmortem
        if link is None or link.state != "Writing":
            return None
        if written.error is not None or written.name is None:
            retry = now + timedelta(seconds=5 * link.attempts)  # the next attempt, once this claim lapses
            kept = link.model_copy(update={"message": (written.error or "")[:1024], "claimed_until": retry})
            return Decision(status.model_copy(update={"postmortem": kept}), next_at=retry)
        done = link.model_copy(
            update={"state": "Draft", "claimed_until": None, "written_at": now, "message": None, "name": written.name}
        )
        how = "drafted by a model, to review" if written.drafted else "from the template"
        text = (
            f"postmortem {written.name} written ({how}): kubectl incident postmortem {obj['metadata']['name']}"
            if written.created
            else f"postmortem {written.name} exists already; it is left as it is"
        )
        updated = append_timeline(status.model_copy(update={"postmortem": done}), now, "PostmortemWritten", text)
        return Decision(updated, [Notice("PostmortemWritten", text)])

    async def act(self, written: Obj, decision: Decision) -> Any:
        if any(isinstance(e, Write) for e in decision.effects):
            self.background.start(written, lambda: self.write(written))
        return None

    async def write(self, obj: Obj) -> Written:
        """Build and create the document; an existing one is never touched."""
        meta = obj["metadata"]
        namespace, incident, uid = str(meta["namespace"]), str(meta["name"]), str(meta.get("uid", ""))
        name = incident
        try:
            for candidate in (incident, f"{incident}-{uid[:8]}"):
                name = candidate
                try:
                    existing = await self.kube.get(POSTMORTEM, namespace, candidate)
                except NotFound:
                    break
                owner = ((existing.get("metadata") or {}).get("annotations") or {}).get(INCIDENT_UID)
                if owner in (None, uid):
                    return Written(candidate, created=False, drafted=False)  # ours: the team's now, left as it is
                # another incident of the same name (deleted since) wrote this one: ours gets its own name
            else:
                return Written(name, created=False, drafted=False)
            spec = IncidentSpec.model_validate(obj.get("spec") or {})
            status = IncidentStatus.model_validate(obj.get("status") or {})
            now = self.clock()
            start = status.started_at or status.detected_at or now
            end = status.resolved_at or now
            found = await sources(self.kube, namespace, status, dict(spec.labels or {}))
            measured = await peaks(self.prometheus, found, start - timedelta(minutes=1), end)
            document = build(namespace, incident, spec, status, measured, now)
            drafted = False
            if self.llm is not None and not spec.drill:
                narrative, why = await draft(self.llm, document, self.llm_timeout)
                if narrative is not None:
                    document = build(namespace, incident, spec, status, measured, now, narrative, self.llm.model)
                    drafted = True
                elif why:
                    log.warning("postmortem %s/%s: the model's draft was not used (%s)", namespace, incident, why)
            body = {
                "apiVersion": API_VERSION,
                "kind": POSTMORTEM.kind,
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {MANAGED_BY_LABEL: MANAGED_BY},
                    "annotations": {INCIDENT_UID: uid},
                },
                "spec": document.wire(),
            }
            try:
                await self.kube.create(POSTMORTEM, namespace, body)
            except Conflict:
                return Written(name, created=False, drafted=False)
        except KubeError as error:
            POSTMORTEMS.labels("failed").inc()
            return Written(None, created=False, drafted=False, error=str(error)[:512])
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug must cost this postmortem, never the operator
            log.exception("postmortem %s/%s could not be written", namespace, name)
            POSTMORTEMS.labels("failed").inc()
            return Written(None, created=False, drafted=False, error=type(error).__name__)
        POSTMORTEMS.labels("drafted" if drafted else "template").inc()
        return Written(name, created=True, drafted=drafted)
