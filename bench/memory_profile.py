"""Where the operator's memory goes, by owner, with N open incidents (and optionally N DetectionRules).

The operator runs as in production (`python -m incidentops`), with tracemalloc started before any import
(a sitecustomize on PYTHONPATH, here only) and a snapshot written on SIGUSR2. Each traced block is charged
to the innermost frame that belongs to an owner we can act on: kopf, the kubernetes client, pydantic,
aiohttp, prometheus_client, or one of our own modules; the standard library (json, asyncio) is charged to
whoever called it. RSS minus what Python traced is the allocator's share (arenas, fragmentation).

    python bench/memory_profile.py --incidents 3000 [--rules 0] [--env NAME=VALUE]
Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from kubernetes import client as k8s
from measure import fresh_namespace
from scale import create, operator, quiet

from localenv.controlplane import api_client, use_or_start_cluster
from localenv.crds import install_crds
from localenv.procs import free_port, wait_until

SITECUSTOMIZE = """
import os, signal, tracemalloc
tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "12")))
def _dump(signum, frame):
    path = os.environ["BENCH_TRACEMALLOC_OUT"]
    tracemalloc.take_snapshot().dump(path + ".part")
    os.replace(path + ".part", path)
signal.signal(signal.SIGUSR2, _dump)
"""

OWNERS = (
    ("kopf", "/kopf/"),
    ("kubernetes client", "/kubernetes/"),
    ("pydantic", "/pydantic"),
    ("aiohttp", "/aiohttp/"),
    ("prometheus_client", "/prometheus_client/"),
    ("anthropic/httpx", "/anthropic/"),
    ("anthropic/httpx", "/httpx/"),
)


def owner(trace: tracemalloc.Traceback) -> str:
    """The innermost frame we can act on: a library, or one of our modules (by its package)."""
    for frame in reversed(trace):  # innermost last in tracemalloc's order when most_recent_first is False
        name = frame.filename
        if "/incidentops/" in name and "/site-packages/" not in name:
            tail = name.split("/incidentops/", 1)[1]
            return "incidentops." + tail.split("/", 1)[0].removesuffix(".py")
        for label, marker in OWNERS:
            if marker in name:
                return label
    return "interpreter and stdlib (imports, code objects)"


def snapshot(pid: int, out: Path) -> tracemalloc.Snapshot:
    out.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR2)
    wait_until(out.exists, timeout=600, interval=0.5, what="the tracemalloc snapshot")
    return tracemalloc.Snapshot.load(str(out))


def table(shot: tracemalloc.Snapshot, rss: float, title: str) -> None:
    sizes: Counter[str] = Counter()
    for trace in shot.traces:
        sizes[owner(trace.traceback)] += trace.size
    traced = sum(sizes.values()) / 2**20
    print(f"\n{title}: RSS {rss:.0f} MiB, traced by Python {traced:.0f} MiB")
    for name, size in sizes.most_common(14):
        print(f"  {name:48s} {size / 2**20:8.1f} MiB")
    print(f"  {'allocator and untraced (RSS - traced; tracing itself included)':48s} {rss - traced:8.1f} MiB")
    print("  largest sites:")
    for stat in shot.statistics("lineno")[:8]:
        frame = stat.traceback[0]
        where = frame.filename.split("site-packages/")[-1].split("/operator/")[-1]
        print(f"    {stat.size / 2**20:7.1f} MiB  {stat.count:8d} blocks  {where}:{frame.lineno}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=3000)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    kubeconfig = use_or_start_cluster()
    api = api_client(kubeconfig)
    install_crds(api)
    namespace = fresh_namespace(api, "bench-memory")
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    (work / "sitecustomize.py").write_text(SITECUSTOMIZE)
    out = work / "snapshot"
    env = {
        **dict(item.split("=", 1) for item in args.env),
        "PYTHONPATH": f"{work}:{os.environ.get('PYTHONPATH', '')}",
        "BENCH_TRACEMALLOC_OUT": str(out),
    }
    handle = operator(kubeconfig, namespace, free_port(), env, work / "operator.log").start(ready_timeout=300)
    pid = handle.process.pid
    assert pid is not None
    print(f"== profile: {args.incidents} incidents in {namespace} (tracemalloc on: slower, and it costs memory)")
    idle = quiet(handle)
    table(snapshot(pid, out), idle, "idle")
    began = time.monotonic()
    asyncio.run(create(handle.url, namespace, args.incidents, args.senders))
    print(f"\ncreated {args.incidents} in {time.monotonic() - began:.0f} s")
    full = quiet(handle)
    table(snapshot(pid, out), full, f"{args.incidents} open incidents")
    handle.kill()
    handle.start(ready_timeout=600)
    new_pid = handle.process.pid
    assert new_pid is not None
    table(snapshot(new_pid, out), quiet(handle), "after a restart over them")
    handle.stop()
    k8s.CoreV1Api(api).delete_namespace(namespace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
