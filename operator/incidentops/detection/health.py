"""A DetectionRule's Ready condition, from one writer: what its spec says, then how its evaluation goes.

The evaluator alone writes it (a second writer without the rule's resourceVersion could put a
stale verdict back): first the static checks (the spec validates, the runbook and policy it names
exist), looked at again when the spec changes and every RECHECK; then the evaluation's own word
(Evaluated, PrometheusUnreachable, QueryRejected, NoPrometheus), and NoData when the query has
returned nothing for NO_DATA_AFTER evaluations in a row and a metric it selects has no series at
all in Prometheus: a misspelt metric would otherwise read Ready=True, Inactive, forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from incidentops.api.v1alpha1.detectionrule import DetectionRuleSpec
from incidentops.readiness.checks import Lookup, check_detection_rule

RECHECK = 30.0
NO_DATA_AFTER = 3


@dataclass(frozen=True)
class Health:
    ready: bool
    reason: str
    message: str


class RuleHealth:
    """Per rule: the static verdict (cached by generation, for RECHECK seconds) and the run of empty answers."""

    def __init__(self, lookup: Lookup, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._lookup = lookup
        self._monotonic = monotonic
        self._static: dict[Hashable, tuple[int, float, Health | None]] = {}
        self._empty: dict[Hashable, int] = {}

    async def static(self, key: Hashable, generation: int, spec: DetectionRuleSpec, namespace: str) -> Health | None:
        """Why the rule cannot be evaluated as written (RunbookNotFound...), or None when it can."""
        cached = self._static.get(key)
        if cached is not None and cached[0] == generation and self._monotonic() - cached[1] < RECHECK:
            return cached[2]
        verdict = await check_detection_rule(spec, namespace, self._lookup)
        found = None if verdict.ready else Health(False, verdict.reason, verdict.message)
        self._static[key] = (generation, self._monotonic(), found)
        return found

    def empty_in_a_row(self, key: Hashable, returned: int | None) -> int:
        """Count evaluations that answered and returned no series; a failed one (None) changes nothing."""
        if returned is None:
            return self._empty.get(key, 0)
        count = self._empty.get(key, 0) + 1 if returned == 0 else 0
        self._empty[key] = count
        return count

    def forget(self, key: Hashable) -> None:
        self._static.pop(key, None)
        self._empty.pop(key, None)


def no_data_message(missing: list[str], evaluations: int) -> str:
    names = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return (
        f"Prometheus has no series of {names} (the query returned nothing {evaluations} times in a row): "
        "is the metric name right, and is its target scraped?"
    )
