"""What every handler needs, built once at start and passed in (no globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from incidentops.config import Config
from incidentops.deadlines import Deadlines
from incidentops.detection.service import Evaluator
from incidentops.incidents.scheduler import IncidentScheduler
from incidentops.ingest.service import Ingestor
from incidentops.kube import AsyncKube


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    config: Config
    kube: AsyncKube
    ingestor: Ingestor
    deadlines: Deadlines
    scheduler: IncidentScheduler
    clock: Callable[[], datetime] = utc_now
    evaluator: Evaluator | None = None
