"""Severity from impact signals, as the severity table says. Pure.

- a security signal with any user impact: SEV1 (without a known impact: SEV2, humans look first);
- errors or users affected >= 95%: SEV1;
- >= 50% (>= 25% when core functionality is affected): SEV2;
- >= 10%, or latency >= 5x normal: SEV3;
- >= 1%, or latency >= 2x normal: SEV4;
- a signal below all of these: SEV5.
No signal at all: no assessment (the alerts' own severity stands).
"""

from __future__ import annotations

from dataclasses import dataclass

from incidentops.api.v1alpha1.common import Category, Severity
from incidentops.api.v1alpha1.incident import AlertSignals


@dataclass(frozen=True)
class Assessed:
    severity: Severity | None
    reasoning: str


def _share(value: float) -> str:
    return f"{value * 100:.3g}%"


def assess(signals: AlertSignals | None, category: str | None = None) -> Assessed:
    """The severity the signals call for, and why in words; severity None when nothing was signalled."""
    signals = signals or AlertSignals()
    security = bool(signals.security) or category == Category.SECURITY
    error, users = signals.error_ratio, signals.users_affected
    impact_values = [v for v in (error, users) if v is not None]
    impact = max(impact_values) if impact_values else None
    what = []
    if error is not None:
        what.append(f"errors {_share(error)}")
    if users is not None:
        what.append(f"users affected {_share(users)}")
    latency = signals.latency_multiple
    if latency is not None:
        what.append(f"latency {latency:g}x normal")
    seen = ", ".join(what)
    if security:
        if impact is not None and impact > 0:
            return Assessed(Severity.SEV1, f"a security signal with user impact ({seen}): SEV1")
        return Assessed(Severity.SEV2, "a security signal, user impact not known: SEV2 until humans look")
    if impact is None and latency is None:
        return Assessed(None, "the alerts carry no impact signal (error ratio, users affected, latency)")
    impact = impact or 0.0
    latency = latency or 0.0
    core = bool(signals.core)
    if impact >= 0.95:
        level, why = Severity.SEV1, "at least 95% affected"
    elif impact >= 0.5:
        level, why = Severity.SEV2, "at least 50% affected"
    elif core and impact >= 0.25:
        level, why = Severity.SEV2, "at least 25% affected on core functionality"
    elif impact >= 0.10 or latency >= 5:
        level, why = Severity.SEV3, "at least 10% affected" if impact >= 0.10 else "latency at least 5x normal"
    elif impact >= 0.01 or latency >= 2:
        level, why = Severity.SEV4, "at least 1% affected" if impact >= 0.01 else "latency at least 2x normal"
    else:
        level, why = Severity.SEV5, "below every threshold"
    return Assessed(level, f"{seen}: {why}, {level}")
