"""What every handler needs, built once at start and passed in (no globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from incidentops.config import Config
from incidentops.detection.service import Evaluator
from incidentops.escalation.service import Escalator
from incidentops.ingest.service import Ingestor
from incidentops.kube import AsyncKube
from incidentops.remediation.service import Responder


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    config: Config
    kube: AsyncKube
    ingestor: Ingestor
    clock: Callable[[], datetime] = utc_now
    responder: Responder | None = None
    evaluator: Evaluator | None = None
    escalator: Escalator | None = None
