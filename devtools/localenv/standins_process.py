"""The stand-ins as a process of their own (`python -m localenv.standins`), driven over their control API.

`make demo KEEP=1` leaves them running with the rest, so a second bad release pages as the first
did; `make cluster-down` stops them (localenv.leftovers).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from localenv.procs import ManagedProcess, free_port, wait_until
from localenv.standins import Received


class StandInsProcess:
    """Start, ask and stop the stand-ins running in another process."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process = ManagedProcess(
            [sys.executable, "-m", "localenv.standins", "--port", str(self.port), "--smtp-port", "0"],
            log_path=log_path,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def allow(self) -> str:
        """The egress allow-list entry for the operator (INCIDENTOPS_NOTIFY_ALLOW)."""
        return f"127.0.0.1:{self.port}"

    def base(self, service: str) -> str:
        return f"{self.url}/{service}"

    def start(self) -> StandInsProcess:
        self.process.start()

        def answering() -> bool:
            if not self.process.running:
                raise RuntimeError(f"the stand-ins exited:\n{self.process.tail(20)}")
            try:
                return httpx.get(f"{self.url}/_standins/requests", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answering, timeout=15, interval=0.1, what=f"stand-ins on {self.url}")
        return self

    def received(self, service: str | None = None) -> list[Received]:
        params = {"service": service} if service else None
        answer = httpx.get(f"{self.url}/_standins/requests", params=params, timeout=5.0)
        answer.raise_for_status()
        return [Received.from_dict(item) for item in answer.json()]

    def wait_for(
        self, service: str, count: int, timeout: float = 10.0, seen: Callable[[list[Received]], None] | None = None
    ) -> list[Received]:
        """Poll until `count` requests to `service` arrived; `seen` hears every poll's list (to print new ones)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.received(service)
            if seen is not None:
                seen(self.received())
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} request(s) to {service} within {timeout:g}s, got {len(found)}")
            time.sleep(0.2)

    def anthropic_script(self, steps: list[dict[str, Any]]) -> None:
        """Queue Anthropic answers (see `StandIns.anthropic_script`)."""
        self._control("POST", "/_standins/anthropic/script", steps)

    def anthropic_auto(self, answers: dict[str, dict[str, Any]] | None = None, latency: float = 0.0) -> None:
        """Configure the auto model (see `StandIns.anthropic_auto`)."""
        self._control("POST", "/_standins/anthropic/auto", {"answers": answers, "latency": latency})

    def anthropic_mode(self, mode: str) -> None:
        """Either "auto" or "obey" (see `StandIns.anthropic_mode`)."""
        self._control("POST", "/_standins/anthropic/mode", {"mode": mode})

    def anthropic_reset(self) -> None:
        """Drop the script: auto mode, no answers, no latency."""
        self._control("DELETE", "/_standins/anthropic")

    def _control(self, method: str, path: str, body: Any = None) -> None:
        """Call the control API; a refusal raises ValueError, as the Python API does."""
        answer = httpx.request(method, self.url + path, json=body, timeout=5.0)
        if answer.status_code == 400:
            raise ValueError(answer.json().get("error"))
        answer.raise_for_status()

    def stop(self) -> None:
        self.process.stop()
