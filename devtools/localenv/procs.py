"""Subprocess, port and waiting helpers shared by the local environment.

Every server we start gets its own process group and a log file (never a pipe nobody drains),
so it can be stopped completely and its output shown when it fails to come up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """A condition did not become true before its deadline."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on `host` right now (the OS picks it, so parallel runs differ)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll `predicate` until it returns a truthy value, and return that value.

    Exceptions listed in `ignore` count as "not yet" (a server that is still starting refuses
    connections); the last one is reported if the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except ignore as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], T | Awaitable[T | None] | None],
    *,
    timeout: float,  # noqa: ASYNC109 - same signature as wait_until on purpose
    interval: float = 0.1,
    what: str = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Async twin of `wait_until`; `predicate` may be a plain or an async callable."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            outcome = predicate()
            result = await outcome if isinstance(outcome, Awaitable) else outcome
            if result:
                return result
        except ignore as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        await asyncio.sleep(interval)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    """The argv of a running process (empty when it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def processes_matching(predicate: Callable[[int, list[str]], bool]) -> list[int]:
    """Pids of live processes whose (pid, argv) satisfy `predicate`; Linux /proc only."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            pid = int(entry.name)
            argv = cmdline(pid)
            if argv and pid_alive(pid) and predicate(pid, argv):
                found.append(pid)
    return sorted(found)


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def terminate_pids(pids: Sequence[int], timeout: float = 10.0) -> list[int]:
    """SIGTERM the given pids, SIGKILL those still alive after `timeout`; return the survivors."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(WaitTimeout):
        wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=timeout, what="processes to exit")
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(WaitTimeout):
        wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=5, what="killed processes to exit")
    return [pid for pid in pids if pid_alive(pid)]


class ManagedProcess:
    """A child process in its own process group, with its output in a log file.

    The own group lets `stop()`/`kill()` take down grandchildren too, so a test never leaves
    a server behind.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def name(self) -> str:
        """Short name for messages: the program's base name."""
        return Path(self.argv[0]).name

    def start(self) -> None:
        """Start the process (output appended to `log_path`)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._close_log()
        self._log = self.log_path.open("ab")
        self._popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        """The underlying Popen (raises if never started)."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._popen

    @property
    def pid(self) -> int:
        """Pid of the process (also its process-group id)."""
        return self.popen.pid

    @property
    def running(self) -> bool:
        """Whether the process has been started and has not exited."""
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit code once exited (negative: killed by that signal), else None."""
        return None if self._popen is None else self._popen.poll()

    def output(self) -> str:
        """Everything the process wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 60) -> str:
        """The last `lines` lines of output, for error messages."""
        return "\n".join(self.output().splitlines()[-lines:])

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, wait up to `timeout`, then SIGKILL; return the exit code."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self._popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self._popen.wait(timeout=10)
        # children that ignored SIGTERM must not outlive their parent
        self._signal_group(signal.SIGKILL)
        self._close_log()
        return self._popen.returncode

    def kill(self) -> int | None:
        """SIGKILL the whole group at once (a crash, as `kill -9` would cause) and reap it."""
        if self._popen is None:
            return None
        self._signal_group(signal.SIGKILL)
        self._popen.wait(timeout=10)
        self._close_log()
        return self._popen.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
