"""Real Prometheus and Alertmanager servers (the Debian binaries) for tests and local runs.

Each instance gets a generated config in its own work directory and a free loopback port, so
tests run in parallel and nothing touches /etc or a system service. Intervals are 1 s so an
alert goes from a metric change to a webhook within seconds.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import yaml

from localenv.procs import ManagedProcess, WaitTimeout, free_port, wait_until

_START_ATTEMPTS = 3


class ServerStartError(RuntimeError):
    """A server exited or did not become ready; the message carries its log tail."""


def find_binary(env_var: str, *candidates: str) -> str:
    """Locate a server binary: `env_var` if set, else the first candidate on PATH."""
    override = os.environ.get(env_var)
    if override:
        return override
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError(f"none of {', '.join(candidates)} is on PATH (install the Debian package or set {env_var})")


class _LoopbackServer:
    """Start/stop/readiness shared by Prometheus and Alertmanager."""

    kind = "server"

    def __init__(self, work_dir: Path, binary: str, ready_timeout: float) -> None:
        self.work_dir = work_dir
        self.binary = binary
        self.ready_timeout = ready_timeout
        self.port = 0
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:41234."""
        if not self.port:
            raise RuntimeError(f"{self.kind} is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def process(self) -> ManagedProcess:
        """The running server process."""
        if self._process is None:
            raise RuntimeError(f"{self.kind} is not started")
        return self._process

    def _write_config(self) -> None:
        raise NotImplementedError

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def start(self, port: int | None = None) -> Self:
        """Write the config, start the server and wait for /-/ready (retrying a port clash).

        `port` asks for that port (a restart where clients already point); otherwise a free one.
        """
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.port = port or free_port()
            process = ManagedProcess(self._argv(), log_path=self.work_dir / f"{self.kind}.log")
            process.start()
            self._process = process
            try:
                wait_until(
                    functools.partial(self._ready_or_exited, process),
                    timeout=self.ready_timeout,
                    interval=0.1,
                    what=f"{self.kind} /-/ready on {self.url}",
                )
            except WaitTimeout as exc:
                process.stop()
                raise ServerStartError(f"{exc}\n--- {self.kind} log ---\n{process.tail()}") from None
            if process.returncode is None:
                return self
            log = process.tail()
            if "address already in use" in log and attempt < _START_ATTEMPTS and port is None:
                continue
            raise ServerStartError(f"{self.kind} exited with code {process.returncode}\n--- {self.kind} log ---\n{log}")
        raise AssertionError("unreachable")

    def _ready_or_exited(self, process: ManagedProcess) -> bool:
        return process.returncode is not None or self._ready()

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and forget its port."""
        if self._process is not None:
            self._process.stop()
            self._process = None
        self.port = 0

    def restart(self) -> Self:
        """Stop and start again on the same port (and data directory): as if it came back from an outage."""
        port = self.port
        self.stop()
        return self.start(port=port)

    def logs(self) -> str:
        """The server's output so far."""
        return self._process.output() if self._process is not None else ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class PrometheusQueryError(RuntimeError):
    """The Prometheus HTTP API answered with an error."""


class Prometheus(_LoopbackServer):
    """A Prometheus server scraping `scrape_targets` every second and evaluating `rules` every second."""

    kind = "prometheus"

    def __init__(
        self,
        work_dir: Path,
        *,
        scrape_targets: Sequence[str] = (),
        rules: str = "",
        alertmanager_url: str | None = None,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        alert_resend_delay: str = "1s",
        binary: str | None = None,
        ready_timeout: float = 30.0,
        job_name: str = "localenv",
    ) -> None:
        super().__init__(work_dir, binary or find_binary("INCIDENTOPS_PROMETHEUS_BIN", "prometheus"), ready_timeout)
        self.scrape_targets = list(scrape_targets)
        self.job_name = job_name
        self.rules = rules
        self.alertmanager_url = alertmanager_url
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.alert_resend_delay = alert_resend_delay

    @property
    def config_path(self) -> Path:
        """Where the generated prometheus.yml lives."""
        return self.work_dir / "prometheus.yml"

    def config(self) -> dict[str, Any]:
        """The prometheus.yml content as a dict."""
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "scrape_configs": [{"job_name": self.job_name, "static_configs": [{"targets": self.scrape_targets}]}],
        }
        if self.rules.strip():
            config["rule_files"] = [str(self.work_dir / "rules.yml")]
        if self.alertmanager_url:
            parts = urlsplit(self.alertmanager_url)
            config["alerting"] = {
                "alertmanagers": [
                    {
                        "scheme": parts.scheme or "http",
                        "path_prefix": parts.path or "/",
                        "static_configs": [{"targets": [parts.netloc]}],
                    }
                ]
            }
        return config

    def _write_config(self) -> None:
        if self.rules.strip():
            yaml.safe_load(self.rules)  # fail here, with a YAML error, rather than in a server log
            (self.work_dir / "rules.yml").write_text(self.rules)
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))

    def _argv(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.work_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--rules.alert.resend-delay={self.alert_resend_delay}",
            "--log.level=info",
        ]

    def _api(self, path: str, params: dict[str, str] | None = None) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10.0)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusQueryError(f"{path}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; returns the `result` list (each item has `metric` and `value`)."""
        data = self._api("query", {"query": expr})
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_value(self, expr: str) -> float | None:
        """The value of a single-series instant query, or None when it returns nothing."""
        result = self.query(expr)
        if not result:
            return None
        return float(result[0]["value"][1])

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Prometheus currently holds (pending or firing)."""
        alerts: list[dict[str, Any]] = self._api("alerts")["alerts"]
        return alerts

    def wait_for_alert(self, name: str, state: str = "firing", timeout: float = 60.0) -> dict[str, Any]:
        """Wait until alert `name` is in `state` (pending/firing); "inactive" waits for it to vanish."""

        def check() -> dict[str, Any] | None:
            matching = [a for a in self.alerts() if a["labels"].get("alertname") == name]
            if state == "inactive":
                return None if matching else {"labels": {"alertname": name}, "state": "inactive"}
            return next((a for a in matching if a["state"] == state), None)

        found: dict[str, Any] = wait_until(
            check,
            timeout=timeout,
            interval=0.25,
            what=f"alert {name} to be {state}",
            ignore=(httpx.HTTPError,),
        )
        return found

    def wait_for_value(self, expr: str, predicate: Callable[[float], bool] = bool, timeout: float = 30.0) -> float:
        """Wait until `expr` returns a series whose value satisfies `predicate`; return the value."""

        def check() -> tuple[float] | None:
            value = self.query_value(expr)
            return (value,) if value is not None and predicate(value) else None

        found = wait_until(
            check,
            timeout=timeout,
            interval=0.25,
            what=f"{expr} to satisfy the condition",
            ignore=(httpx.HTTPError,),
        )
        return found[0]


class Alertmanager(_LoopbackServer):
    """An Alertmanager (clustering off) routing every alert to one webhook, fast timers."""

    kind = "alertmanager"

    def __init__(
        self,
        work_dir: Path,
        *,
        webhook_url: str,
        bearer_token: str | None = None,
        group_by: Sequence[str] = ("alertname",),
        group_wait: str = "1s",
        group_interval: str = "1s",
        repeat_interval: str = "1h",
        binary: str | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        super().__init__(
            work_dir,
            binary or find_binary("INCIDENTOPS_ALERTMANAGER_BIN", "prometheus-alertmanager", "alertmanager"),
            ready_timeout,
        )
        self.webhook_url = webhook_url
        self.bearer_token = bearer_token
        self.group_by = list(group_by)
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.repeat_interval = repeat_interval

    @property
    def config_path(self) -> Path:
        """Where the generated alertmanager.yml lives."""
        return self.work_dir / "alertmanager.yml"

    def config(self) -> dict[str, Any]:
        """The alertmanager.yml content as a dict (Alertmanager 0.25 field names)."""
        webhook: dict[str, Any] = {"url": self.webhook_url, "send_resolved": True}
        if self.bearer_token:
            webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": self.bearer_token}}
        return {
            "route": {
                "receiver": "webhook",
                "group_by": self.group_by,
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
            },
            "receivers": [{"name": "webhook", "webhook_configs": [webhook]}],
        }

    def _write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.config_path.chmod(0o600)  # it may hold a bearer token

    def _argv(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.work_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=info",
        ]

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager currently holds (API v2)."""
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=10.0)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts
