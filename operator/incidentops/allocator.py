"""Keep glibc's allocator from holding on to memory the operator no longer uses.

Python returns freed objects to malloc, but glibc keeps one arena per thread that ever allocated
(the Kubernetes client's pool threads) and rarely hands free pages back: a burst (a start-up
listing, an alert storm) left the process hundreds of MiB above what it held. Two arenas and a
trim after each burst, and once a minute, keep RSS close to what is live. Elsewhere (musl, macOS)
this does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h
TRIM_EVERY = 60.0  # seconds


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018 - only glibc has both
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def limit_arenas(arenas: int = 2) -> bool:
    """At most `arenas` malloc arenas from now on (what MALLOC_ARENA_MAX does, settable after start)."""
    return bool(_LIBC is not None and _LIBC.mallopt(M_ARENA_MAX, arenas) == 1)


def trim() -> None:
    """Hand free heap pages back to the system."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


async def trim_periodically(every: float = TRIM_EVERY) -> None:
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(trim)  # tens of ms on a large heap: not on the event loop
