"""The operator as a real subprocess (`python -m incidentops`), the way it runs in production.

Tests talk to it over HTTP and through the cluster only; killing it with SIGKILL is how they
check that state lives in object status.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from localenv.procs import ManagedProcess, WaitTimeout, free_port, wait_until


class OperatorStartError(RuntimeError):
    """The operator exited or did not report ready in time; the message has its output."""


class OperatorProcess:
    """One operator process watching `namespaces`, with its HTTP server on a free loopback port."""

    def __init__(
        self,
        *,
        kubeconfig: Path,
        namespaces: Sequence[str],
        log_path: Path,
        extra_env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.namespaces = list(namespaces)
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "INCIDENTOPS_HTTP_PORT": str(self.port),
            "INCIDENTOPS_NAMESPACES": ",".join(self.namespaces),
            "INCIDENTOPS_LOG_FORMAT": "text",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.process = ManagedProcess([sys.executable, "-m", "incidentops"], log_path=log_path, env=env)

    @property
    def url(self) -> str:
        """Base URL of the operator's HTTP server (webhook, /metrics, /healthz, /readyz)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 60.0) -> OperatorProcess:
        """Start it and wait for GET /readyz == 200; on failure raise with its output."""
        self.process.start()
        try:
            wait_until(self._ready, timeout=ready_timeout, interval=0.2, what=f"operator {self.url}/readyz")
        except (WaitTimeout, OperatorStartError) as exc:
            self.process.stop()
            raise OperatorStartError(f"{exc}\n--- operator output ---\n{self.process.tail(200)}") from None
        return self

    def _ready(self) -> bool:
        if self.process.returncode is not None:
            raise OperatorStartError(f"operator exited with code {self.process.returncode} before ready")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def logs(self) -> str:
        """Everything the operator printed so far (stdout and stderr)."""
        return self.process.output()

    def kill(self) -> int | None:
        """SIGKILL: a crash with no chance to clean up."""
        return self.process.kill()

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait for a graceful exit (SIGKILL after `timeout`)."""
        return self.process.stop(timeout=timeout)
