"""Processes a `make demo KEEP=1` leaves running on purpose, recorded so `make cluster-down` stops them.

Each is a process group (ManagedProcess starts one per child); the record is a list of pids with
what they are, in .dev/leftovers. Stopping sends SIGTERM to each group, then SIGKILL to what is
left after a few seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from localenv.controlplane import repo_root


def record_path() -> Path:
    return repo_root() / ".dev" / "leftovers"


def record(pid: int, what: str) -> None:
    """Remember a process group to stop at cluster-down."""
    path = record_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(f"{pid} {what}\n")


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_all(grace: float = 5.0) -> list[str]:
    """Stop every recorded process group; returns what was stopped."""
    path = record_path()
    if not path.exists():
        return []
    entries: list[tuple[int, str]] = []
    for line in path.read_text().splitlines():
        number, _, what = line.partition(" ")
        if number.isdigit():
            entries.append((int(number), what))
    stopped = []
    for pid, what in entries:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
            stopped.append(what)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid, _ in entries):
        time.sleep(0.1)
    for pid, _ in entries:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return stopped
