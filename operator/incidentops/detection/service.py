"""The DetectionRule evaluator: every enabled rule, every `interval`, on Prometheus; series become alerts.

Each rule has its own phase in the interval (from its uid), so a thousand rules at 30 s are spread
over the 30 s instead of fired at once. A turn reads the rule, asks Prometheus, moves the series'
states (pure, `series.evaluate`), hands what fired or resolved to the ingester (idempotent: the
same alert twice is one alert), and only then records the new states in status. A crash between
the two repeats the hand-over, never loses it. When Prometheus does not answer, nothing moves: no
incident resolves because the data went away.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Hashable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from incidentops.api.v1alpha1.common import parse_duration
from incidentops.api.v1alpha1.conditions import Condition, ConditionStatus, find_condition, set_condition
from incidentops.api.v1alpha1.detectionrule import DetectionRuleSpec, DetectionRuleStatus, SeriesState
from incidentops.api.v1alpha1.incident import IncidentStatus
from incidentops.api.v1alpha1.resources import DETECTION_RULE, INCIDENT
from incidentops.config import Config
from incidentops.deadlines import DeadlineQueue
from incidentops.detection.alerts import alert_for
from incidentops.detection.compile import expression
from incidentops.detection.series import Sample, evaluate, rule_state
from incidentops.ingest.service import Ingestor
from incidentops.kube import AsyncKube, Conflict, KubeError, NotFound, Obj, Unavailable
from incidentops.lifecycle.machine import append_timeline
from incidentops.metrics import RULE_EVALUATION_LAG, RULE_EVALUATIONS
from incidentops.prometheus import Prometheus, PrometheusError

log = logging.getLogger(__name__)
# Ready reasons the evaluator owns; the static checks (readiness) own the others.
EVALUATION_REASONS = frozenset({"Evaluated", "PrometheusUnreachable", "QueryRejected", "NoPrometheus"})
Key = tuple[str, str]


def phase_of(uid: str, interval: timedelta) -> timedelta:
    """Where in its interval a rule is evaluated: spread by uid, stable across restarts."""
    digest = int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16)
    return timedelta(seconds=(digest % 10_000) / 10_000 * interval.total_seconds())


def next_due(uid: str, interval: timedelta, now: datetime) -> datetime:
    """The next moment on the rule's own grid (phase + k intervals) after now."""
    epoch = datetime(2000, 1, 1, tzinfo=now.tzinfo) + phase_of(uid, interval)
    periods = int((now - epoch) / interval) + 1
    return epoch + periods * interval


class Evaluator:
    """Evaluates every DetectionRule this process watches."""

    def __init__(
        self,
        kube: AsyncKube,
        ingestor: Ingestor,
        config: Config,
        clock: Callable[[], datetime],
        prometheus: Prometheus | None,
    ) -> None:
        self.kube = kube
        self.ingestor = ingestor
        self.config = config
        self.clock = clock
        self.prometheus = prometheus
        self.queue = DeadlineQueue(self._turn, clock, concurrency=8)
        self._generations: dict[Key, int] = {}
        self._due: dict[Key, datetime] = {}
        self._background: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()

    def observe(self, body: Mapping[str, Any]) -> None:
        """A rule as the watch saw it: new rules join their grid; a changed spec is evaluated at once."""
        meta = body.get("metadata") or {}
        key: Key = (str(meta.get("namespace")), str(meta.get("name")))
        generation = int(meta.get("generation") or 0)
        known = self._generations.get(key)
        self._generations[key] = generation
        if known == generation:
            return
        if known is None and (body.get("status") or {}).get("lastEvaluation"):
            try:
                interval = parse_duration(str((body.get("spec") or {}).get("interval", "30s")))
            except ValueError:
                interval = timedelta(seconds=30)
            due = next_due(str(meta.get("uid", "")), interval, self.clock())  # resume on its grid
        else:
            due = self.clock()  # new or changed: evaluate now (a broken query shows at once)
        self._due[key] = due
        self.queue.schedule(key, due)

    def forget(self, body: Mapping[str, Any]) -> None:
        """A deleted rule: what it opened is resolved, with the reason in the alert."""
        meta = body.get("metadata") or {}
        key: Key = (str(meta.get("namespace")), str(meta.get("name")))
        self._generations.pop(key, None)
        self._due.pop(key, None)
        self.queue.forget(key)
        task = asyncio.create_task(self._resolve_all(body, f"DetectionRule {key[1]} was deleted"))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _resolve_all(self, body: Mapping[str, Any], why: str) -> None:
        try:
            spec = DetectionRuleSpec.model_validate(body.get("spec") or {})
            status = DetectionRuleStatus.model_validate(body.get("status") or {})
        except ValidationError:
            return
        meta = body["metadata"]
        firing = [s for s in status.series if s.state == "firing"]
        if not firing:
            return
        now = self.clock()
        alerts = [
            alert_for(meta["namespace"], meta["name"], spec, s, firing=False, now=now, config=self.config, why=why)
            for s in firing
        ]
        try:
            persisted = await self.ingestor.ingest(alerts)
            log.info("%s: resolved the %d series it had firing", why, len(firing))
        except KubeError as error:
            log.warning("%s, but its %d firing series could not be resolved: %s", why, len(firing), error)
            return
        for where in persisted:
            if where.incident is not None:
                await self._note(where.namespace, where.incident, why)

    async def _note(self, namespace: str, name: str, why: str) -> None:
        """Say in the incident's own timeline why its rule's alerts resolved (a deleted or disabled rule)."""
        for _ in range(5):
            try:
                obj = await self.kube.get(INCIDENT, namespace, name)
                status = IncidentStatus.model_validate(obj.get("status") or {})
                noted = append_timeline(status, self.clock(), "DetectionRuleGone", f"{why}: its alerts are resolved")
                await self.kube.replace_status(INCIDENT, {**obj, "status": noted.wire()})
                return
            except Conflict:
                continue
            except KubeError as error:
                log.warning("could not note on incident %s/%s that %s: %s", namespace, name, why, error)
                return

    async def _turn(self, key: Hashable) -> datetime | None:
        namespace, name = str(key[0]), str(key[1])  # type: ignore[index]
        try:
            obj = await self.kube.get(DETECTION_RULE, namespace, name)
        except NotFound:
            return None
        except Unavailable as error:
            log.warning("rule %s/%s waits for the apiserver: %s", namespace, name, error)
            return self.clock() + timedelta(seconds=5)
        try:
            spec = DetectionRuleSpec.model_validate(obj.get("spec") or {})
        except ValidationError:
            return None  # its Ready condition says why; a new spec wakes it
        status = DetectionRuleStatus.model_validate(obj.get("status") or {})
        now = self.clock()
        interval = parse_duration(spec.interval)
        planned = self._due.get((namespace, name), now)
        RULE_EVALUATION_LAG.observe(max(0.0, (now - planned).total_seconds()))
        if not spec.enabled:
            await self._disable(obj, spec, status, now)
            return None
        query = expression(spec)
        samples, problem, reason = await self._query(query)
        RULE_EVALUATIONS.labels("ok" if problem is None else reason).inc()
        result = evaluate(spec, status.series, samples, now)
        alerts = [
            alert_for(namespace, name, spec, s, firing=True, now=now, config=self.config) for s in result.fired
        ] + [alert_for(namespace, name, spec, s, firing=False, now=now, config=self.config) for s in result.resolved]
        if alerts:
            try:
                await self.ingestor.ingest(alerts)  # first hand over, then record: a crash repeats, never loses
            except KubeError as failure:
                log.warning(
                    "rule %s/%s: could not open or resolve incidents (%s); trying again", namespace, name, failure
                )
                return now + min(interval, timedelta(seconds=10))
            for s in result.fired:
                log.info("rule %s/%s fires for %s (value %s)", namespace, name, dict(s.labels), s.value)
            for s in result.resolved:
                log.info("rule %s/%s resolved for %s", namespace, name, dict(s.labels))
        await self._record(obj, spec, status, result.series, query, problem, reason, now)
        due = next_due(str(obj["metadata"].get("uid", "")), interval, now)
        self._due[(namespace, name)] = due
        return due

    async def _query(self, query: str) -> tuple[list[Sample] | None, str | None, str]:
        """The samples, or the error and its reason (PrometheusUnreachable, QueryRejected, NoPrometheus)."""
        if self.prometheus is None:
            return None, "no Prometheus is configured (INCIDENTOPS_PROMETHEUS_URL)", "NoPrometheus"
        try:
            found = await asyncio.to_thread(self.prometheus.query, query)
        except PrometheusError as error:
            return None, str(error), "PrometheusUnreachable" if error.unreachable else "QueryRejected"
        return [Sample(s.labels, s.value) for s in found], None, "Evaluated"

    async def _record(
        self,
        obj: Obj,
        spec: DetectionRuleSpec,
        status: DetectionRuleStatus,
        series: list[SeriesState],
        query: str,
        error: str | None,
        reason: str,
        now: datetime,
    ) -> None:
        firing = sum(1 for s in series if s.state == "firing")
        pending = sum(1 for s in series if s.state == "pending")
        if error is None:
            message = f"evaluated every {spec.interval}: {firing} series firing, {pending} pending"
        else:
            message = f"{error} (firing series stay firing until Prometheus answers)"
        update: dict[str, Any] = {
            "series": series,
            "state": rule_state(series, spec.enabled),
            "last_evaluation": now,
            "last_value": series[0].value if series else None,
            "query": query,
            "firing": firing,
        }
        if error is not None:
            update.update(evaluation_errors=status.evaluation_errors + 1, last_error=error[:4096])
        await self._write(obj, status.model_copy(update=update), "False" if error else "True", reason, message)

    async def _disable(self, obj: Obj, spec: DetectionRuleSpec, status: DetectionRuleStatus, now: datetime) -> None:
        if status.state == "Disabled":
            return
        await self._resolve_all(obj, f"DetectionRule {obj['metadata']['name']} was disabled")
        disabled = status.model_copy(update={"series": [], "state": "Disabled", "firing": 0})
        await self._write(obj, disabled, "True", "Evaluated", "disabled (spec.enabled is false): not evaluated")

    async def _write(
        self, obj: Obj, status: DetectionRuleStatus, ready: ConditionStatus, reason: str, message: str
    ) -> None:
        """Status with the rule's own resourceVersion; Ready only when the static checks have nothing to say."""
        meta = obj["metadata"]
        for _ in range(5):
            current = DetectionRuleStatus.model_validate(obj.get("status") or {})
            conditions: list[Condition] = current.conditions
            before = find_condition(conditions, "Ready")
            if before is None or before.status == "True" or before.reason in EVALUATION_REASONS:
                conditions = set_condition(
                    conditions,
                    "Ready",
                    ready,
                    reason,
                    message[:1024],
                    now=self.clock(),
                    generation=meta.get("generation"),
                )
            body = status.model_copy(update={"conditions": conditions}).wire()
            body["observedGeneration"] = current.observed_generation
            try:
                await self.kube.run(
                    self.kube.client.patch_status,
                    DETECTION_RULE,
                    meta["namespace"],
                    meta["name"],
                    {"status": body},
                    meta.get("resourceVersion"),
                )
            except Conflict:
                obj = await self.kube.get(DETECTION_RULE, meta["namespace"], meta["name"])
                meta = obj["metadata"]
                continue
            after = find_condition(conditions, "Ready")
            if (
                after is not None
                and before is not None
                and (before.status, before.reason) != (after.status, after.reason)
            ):
                # One Event per change of Ready: per outage, not per evaluation.
                failing = after.status == "False"
                self.kube.post_event_soon(
                    obj,
                    after.reason if failing else "EvaluationRecovered",
                    after.message,
                    type_="Warning" if failing else "Normal",
                )
            return
        log.warning(
            "rule %s/%s kept changing; its status is written at the next evaluation", meta["namespace"], meta["name"]
        )
