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
import re
from collections.abc import Callable, Hashable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from incidentops.api.v1alpha1.common import located, parse_duration
from incidentops.api.v1alpha1.conditions import find_condition, set_condition
from incidentops.api.v1alpha1.detectionrule import DetectionRuleSpec, DetectionRuleStatus, SeriesState
from incidentops.api.v1alpha1.resources import DETECTION_RULE
from incidentops.config import Config
from incidentops.deadlines import Deadlines
from incidentops.detection.alerts import alert_for
from incidentops.detection.changes import worth_writing
from incidentops.detection.compile import expects_absence, expression, metric_names
from incidentops.detection.health import NO_DATA_AFTER, RECHECK, Health, RuleHealth, no_data_message
from incidentops.detection.series import Sample, evaluate, rule_state
from incidentops.incidents.note import Note
from incidentops.incidents.turn import Turns
from incidentops.ingest.service import Ingestor
from incidentops.kube import AsyncKube, Conflict, KubeError, NotFound, Obj, Unavailable
from incidentops.logs import waiting_level
from incidentops.metrics import RULE_EVALUATION_LAG, RULE_EVALUATIONS, RULE_STATUS_WRITES
from incidentops.prometheus import Prometheus, PrometheusError
from incidentops.readiness.lookup import ClusterLookup

log = logging.getLogger(__name__)
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
        deadlines: Deadlines,
        turns: Turns,
    ) -> None:
        self.kube = kube
        self.ingestor = ingestor
        self.config = config
        self.clock = clock
        self.prometheus = prometheus
        self.turns = turns
        self.queue = deadlines.lane("detection rule", self._turn)
        self.health = RuleHealth(ClusterLookup(kube))
        self._generations: dict[Key, int] = {}
        self._due: dict[Key, datetime] = {}
        self._background: set[asyncio.Task[Any]] = set()

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
        self.health.forget(key)
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
        try:
            await self.turns.run((namespace, name), [Note("DetectionRuleGone", f"{why}: its alerts are resolved")])
        except KubeError as error:
            log.warning("could not note on incident %s/%s that %s: %s", namespace, name, why, error)

    async def _turn(self, key: Hashable) -> datetime | None:
        namespace, name = str(key[0]), str(key[1])  # type: ignore[index]
        try:
            obj = await self.kube.get(DETECTION_RULE, namespace, name)
        except NotFound:
            return None
        except Unavailable as away:
            log.log(waiting_level(away), "rule %s/%s waits for the apiserver: %s", namespace, name, away)
            return self.clock() + timedelta(seconds=5)
        status = DetectionRuleStatus.model_validate(obj.get("status") or {})
        try:
            spec = DetectionRuleSpec.model_validate(obj.get("spec") or {})
        except ValidationError as invalid:
            await self._write(obj, status, Health(False, "InvalidSpec", located(invalid)))
            return None  # a new spec wakes it
        now = self.clock()
        interval = parse_duration(spec.interval)
        planned = self._due.get((namespace, name), now)
        RULE_EVALUATION_LAG.observe(max(0.0, (now - planned).total_seconds()))
        # Evaluated as of the latest point of its own grid, as Prometheus evaluates a group at its
        # aligned timestamps: `for` then counts whole intervals, whatever the lag of this turn or of
        # the one that first saw the series (a new rule's first turn, at once, too).
        uid = str(obj["metadata"].get("uid", ""))
        at = next_due(uid, interval, now) - interval
        if not spec.enabled:
            await self._disable(obj, spec, status)
            return None
        generation = int(obj["metadata"].get("generation") or 0)
        problem = await self.health.static((namespace, name), generation, spec, namespace)
        if problem is not None:
            await self._write(obj, status, problem)
            return now + timedelta(seconds=RECHECK)  # a Runbook or policy may appear meanwhile
        query = expression(spec)
        samples, problem_text, reason = await self._query(query, at)
        RULE_EVALUATIONS.labels("ok" if problem_text is None else reason).inc()
        result = evaluate(spec, status.series, samples, at)
        alerts = [
            alert_for(namespace, name, spec, s, firing=True, now=at, config=self.config) for s in result.fired
        ] + [alert_for(namespace, name, spec, s, firing=False, now=at, config=self.config) for s in result.resolved]
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
        health = await self._health((namespace, name), spec, query, samples, problem_text, reason)
        await self._record(obj, spec, status, result.series, query, problem_text, health, at)
        due = next_due(uid, interval, now)
        self._due[(namespace, name)] = due
        return due

    async def _health(
        self,
        key: Key,
        spec: DetectionRuleSpec,
        query: str,
        samples: list[Sample] | None,
        error: str | None,
        reason: str,
    ) -> Health:
        """Ready after an evaluation: its failure, NoData for a metric Prometheus does not have, or Evaluated."""
        if error is not None:
            return Health(False, reason, f"{error} (firing series stay firing until Prometheus answers)")
        empty = self.health.empty_in_a_row(key, len(samples or []))
        if empty >= NO_DATA_AFTER and not expects_absence(spec):
            missing = await self._missing(metric_names(query))
            if missing:
                return Health(False, "NoData", no_data_message(missing, empty))
        return Health(True, "Evaluated", f"evaluated every {spec.interval}")

    async def _missing(self, names: list[str]) -> list[str]:
        """The metric names Prometheus has no series of now (an outage answers "none missing": no guess)."""
        if not names or self.prometheus is None:
            return []
        pattern = "|".join(re.escape(n) for n in names[:20])
        try:
            found = await asyncio.to_thread(self.prometheus.query, f'group by (__name__) ({{__name__=~"{pattern}"}})')
        except PrometheusError:
            return []
        present = {s.labels.get("__name__") for s in found}
        return [n for n in names[:20] if n not in present]

    async def _query(self, query: str, at: datetime) -> tuple[list[Sample] | None, str | None, str]:
        """The samples at `at`, or the error and its reason (PrometheusUnreachable, QueryRejected, NoPrometheus)."""
        if self.prometheus is None:
            return None, "no Prometheus is configured (INCIDENTOPS_PROMETHEUS_URL)", "NoPrometheus"
        try:
            found = await asyncio.to_thread(self.prometheus.query, query, at)
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
        health: Health,
        now: datetime,
    ) -> None:
        firing = sum(1 for s in series if s.state == "firing")
        pending = sum(1 for s in series if s.state == "pending")
        if health.ready:
            health = Health(True, health.reason, f"{health.message}: {firing} series firing, {pending} pending")
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
        await self._write(obj, status.model_copy(update=update), health)

    async def _disable(self, obj: Obj, spec: DetectionRuleSpec, status: DetectionRuleStatus) -> None:
        if status.state == "Disabled":
            return
        await self._resolve_all(obj, f"DetectionRule {obj['metadata']['name']} was disabled")
        disabled = status.model_copy(update={"series": [], "state": "Disabled", "firing": 0})
        await self._write(obj, disabled, Health(True, "Disabled", "disabled (spec.enabled is false): not evaluated"))

    async def _write(self, obj: Obj, status: DetectionRuleStatus, health: Health) -> None:
        """Status with the rule's own resourceVersion: the evaluator is Ready's only writer.

        An Event goes out when Ready changes (per outage, not per evaluation): a Warning with the
        reason when it turns False, a Normal one when it turns True.
        """
        meta = obj["metadata"]
        for _ in range(5):
            current = DetectionRuleStatus.model_validate(obj.get("status") or {})
            before = find_condition(current.conditions, "Ready")
            conditions = set_condition(
                current.conditions,
                "Ready",
                "True" if health.ready else "False",
                health.reason,
                health.message[:1024],
                now=self.clock(),
                generation=meta.get("generation"),
            )
            body = status.model_copy(update={"conditions": conditions}).wire()
            body["observedGeneration"] = meta.get("generation")
            if not worth_writing(obj.get("status") or {}, body, self.clock()):
                RULE_STATUS_WRITES.labels("unchanged").inc()
                return  # nothing new: the evaluation time is written at most once a minute
            try:
                await self.kube.run(
                    self.kube.client.patch_status,
                    DETECTION_RULE,
                    meta["namespace"],
                    meta["name"],
                    {"status": body},
                    meta.get("resourceVersion"),
                )
            except NotFound:
                return  # deleted meanwhile: nothing to record, and nothing went wrong
            except Conflict:
                try:
                    obj = await self.kube.get(DETECTION_RULE, meta["namespace"], meta["name"])
                except NotFound:
                    return
                meta = obj["metadata"]
                continue
            RULE_STATUS_WRITES.labels("written").inc()
            after = find_condition(conditions, "Ready")
            if after is not None and (before is None or (before.status, before.reason) != (after.status, after.reason)):
                failing = after.status == "False"
                if failing or before is not None:
                    reason = after.reason if failing else ("Ready" if before is None else "EvaluationRecovered")
                    self.kube.post_event_soon(obj, reason, after.message, type_="Warning" if failing else "Normal")
            return
        log.warning(
            "rule %s/%s kept changing; its status is written at the next evaluation", meta["namespace"], meta["name"]
        )
