"""Impact signals an alert carries: error ratio, users affected, latency multiple, security, core functionality.

Alerts say how bad things are in labels or annotations (a DetectionRule passes its value through an
annotation template such as `errorRatio: "{{ $value }}"`). Names are matched loosely (case, `_`,
`-` and `.` ignored) and values read the way people write them: "0.62", "62%", "62" (a number above
1 for a ratio is a percentage), "5x". Anything unreadable is ignored: alert text is untrusted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from incidentops.api.v1alpha1.incident import AlertSignals

ERROR_RATIO = frozenset(
    {"errorratio", "errorrate", "errorpercent", "errorpercentage", "failureratio", "failurerate", "errorshare"}
)
USERS_AFFECTED = frozenset(
    {"usersaffected", "affectedusers", "usersaffectedratio", "userimpact", "usersimpacted", "affectedusersratio"}
)
LATENCY_MULTIPLE = frozenset({"latencymultiple", "latencyratio", "latencyfactor", "latencyincrease", "slowdown"})
SECURITY = frozenset({"security", "securityincident", "securitysignal", "securityevent"})
CORE = frozenset({"core", "corefunctionality", "criticalpath", "corefeature"})
_TRUE = frozenset({"true", "yes", "1", "y", "on"})
_NUMBER = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*(%|x|\u00d7)?\s*$", re.IGNORECASE)
MAX_VALUE_LENGTH = 32


def _key(name: str) -> str:
    return re.sub(r"[-_.\s]", "", name).lower()


def _number(text: str) -> tuple[float, str] | None:
    if len(text) > MAX_VALUE_LENGTH:
        return None
    match = _NUMBER.match(text)
    if match is None:
        return None
    value = float(match.group(1))
    return (value, (match.group(2) or "").lower()) if math.isfinite(value) else None


def ratio(text: str) -> float | None:
    """A share, 0 to 1, from "0.62", "62%" or "62"; None when it is not one."""
    parsed = _number(text)
    if parsed is None:
        return None
    value, unit = parsed
    if unit == "%" or value > 1:
        value /= 100
    return value if 0 <= value <= 1 else None


def multiple(text: str) -> float | None:
    """A multiple of normal from "5", "5x" or "5.5x"; None when it is not one."""
    parsed = _number(text)
    if parsed is None or parsed[1] == "%":
        return None
    return parsed[0] if parsed[0] <= 1e6 else None


def _worst(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def read(fields: Iterable[Mapping[str, str]]) -> AlertSignals | None:
    """The signals in one alert's labels and annotations (later mappings add to earlier ones)."""
    error = users = latency = None
    security = core = None
    for mapping in fields:
        for name, raw in mapping.items():
            key, text = _key(name), str(raw).strip()
            if key in ERROR_RATIO:
                error = _worst(error, ratio(text))
            elif key in USERS_AFFECTED:
                users = _worst(users, ratio(text))
            elif key in LATENCY_MULTIPLE:
                latency = _worst(latency, multiple(text))
            elif key in SECURITY and text.lower() in _TRUE:
                security = True
            elif key in CORE and text.lower() in _TRUE:
                core = True
            elif key == "category" and text.lower() == "security":
                security = True
    found = AlertSignals(
        error_ratio=error, users_affected=users, latency_multiple=latency, security=security, core=core
    )
    return found if found != AlertSignals() else None


def combine(current: AlertSignals | None, new: AlertSignals | None) -> AlertSignals | None:
    """The worst of each signal (an incident keeps the worst its alerts reported)."""
    if new is None:
        return current
    if current is None:
        return new
    return AlertSignals(
        error_ratio=_worst(current.error_ratio, new.error_ratio),
        users_affected=_worst(current.users_affected, new.users_affected),
        latency_multiple=_worst(current.latency_multiple, new.latency_multiple),
        security=current.security or new.security,
        core=current.core or new.core,
    )
