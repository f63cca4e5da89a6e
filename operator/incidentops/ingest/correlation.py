"""Which Incident an alert belongs to: correlation keys, deterministic names, and the episode rule.

Reopen rule: an Incident accepts alerts while it is open and either still has firing alerts or
saw its last alert within the correlation window. Otherwise (it was resolved or closed, or it went
quiet for longer than the window) the next firing alert for the same correlation key opens the
next episode: a new Incident named `<slug>-<hash>-<episode+1>`, whose spec.previousIncident names
the old one, and whose creation is recorded in the old one's timeline (status.recurredAs).
Names derive only from the correlation key and the episode number, so any number of operator
processes handling the same alerts converge on the same object: a 409 on create means "join it".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from incidentops.api.v1alpha1.incident import OPEN_STATES, IncidentStatus
from incidentops.config import Config
from incidentops.ingest.alerts import Alert

CORRELATION_LABEL = "incidentops.dev/correlation"
CORRELATION_KEY_ANNOTATION = "incidentops.dev/correlation-key"
EPISODE_LABEL = "incidentops.dev/episode"
SERVICE_LABEL = "incidentops.dev/service"


@dataclass(frozen=True)
class GroupKey:
    """Where an alert's incident lives and which correlation key it has there."""

    namespace: str
    correlation: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"{self.namespace}\x1f{self.correlation}".encode()).hexdigest()[:10]


def correlation_key(alert: Alert, config: Config) -> str:
    """Service + namespace by default, else the configured label set (or what the alert's source says)."""
    if alert.correlation:
        return alert.correlation
    if config.correlation_labels:
        parts = [f"{name}={alert.labels.get(name, '')}" for name in config.correlation_labels]
    else:
        service = alert.service or alert.name
        parts = [f"namespace={alert.namespace or ''}", f"service={service}"]
    return ",".join(parts)


def slug(text: str, limit: int = 40) -> str:
    """A DNS-label-safe prefix for the incident name."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return (cleaned[:limit].rstrip("-")) or "incident"


def incident_name(key: GroupKey, base: str, episode: int) -> str:
    return f"{slug(base)}-{key.digest}-{episode}"


def episode_of(obj: dict[str, object]) -> int:
    meta = obj.get("metadata")
    labels = meta.get("labels", {}) if isinstance(meta, dict) else {}
    try:
        return int(labels.get(EPISODE_LABEL, "0"))
    except (TypeError, ValueError):
        return 0


def accepts_alerts(status: IncidentStatus, now: datetime, window: timedelta) -> bool:
    """Whether an existing episode takes new firing alerts (the reopen rule above)."""
    if status.state not in OPEN_STATES:
        return False
    if status.alerts.active or status.alerts.untracked:
        return True
    last = status.alerts.last_seen
    return last is None or now - last <= window
