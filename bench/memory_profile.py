"""Where the operator's memory goes, by owner, as N incidents are opened through the webhook and stay open.

The operator runs as in production (`python -m incidentops`), with a sitecustomize on PYTHONPATH (here
only) that starts tracemalloc on SIGUSR1 and writes a snapshot on SIGUSR2. Tracing starts once the
operator has taken a first alert and is quiet (every import done: tracing imports slows them down
a hundredfold), so the snapshot holds what the N incidents cost and nothing else. Each traced block is charged
to the innermost frame that belongs to an owner we can act on: kopf, the kubernetes client, pydantic,
aiohttp, prometheus_client, or one of our own modules; the standard library (json, asyncio) is charged to
whoever called it.

    python bench/memory_profile.py --incidents 3000 [--env NAME=VALUE]
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
def _start(signum, frame):
    tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "10")))
def _dump(signum, frame):
    path = os.environ["BENCH_TRACEMALLOC_OUT"]
    tracemalloc.take_snapshot().dump(path + ".part")
    os.replace(path + ".part", path)
signal.signal(signal.SIGUSR1, _start)
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


def table(shot: tracemalloc.Snapshot, rss: float, before: float, count: int) -> None:
    sizes: Counter[str] = Counter()
    for trace in shot.traces:
        sizes[owner(trace.traceback)] += trace.size
    traced = sum(sizes.values())
    print(f"\n{count} open incidents: RSS {rss:.0f} MiB ({before:.0f} before them, tracing's own memory included)")
    print(
        f"live Python memory allocated since, still held: {traced / 2**20:.1f} MiB, "
        f"{traced / count / 1024:.1f} KiB per incident"
    )
    for name, size in sizes.most_common(12):
        print(f"  {name:44s} {size / 2**20:8.2f} MiB  {size / count:8.0f} B per incident")
    print("  largest sites:")
    for stat in shot.statistics("traceback")[:10]:
        frames = [f for f in stat.traceback if "/incidentops/" in f.filename] or list(stat.traceback)
        frame = frames[-1]
        where = frame.filename.split("site-packages/")[-1].split("/operator/")[-1]
        print(f"    {stat.size / 2**20:7.2f} MiB  {stat.count:8d} blocks  {where}:{frame.lineno}")


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
    print(f"== profile: {args.incidents} incidents in {namespace}")
    asyncio.run(create(handle.url, namespace, 1, 1))  # every import a first incident needs, done untraced
    before = quiet(handle)
    os.kill(pid, signal.SIGUSR1)
    began = time.monotonic()
    asyncio.run(create(handle.url, namespace, args.incidents, args.senders, first=1))
    print(f"created {args.incidents} in {time.monotonic() - began:.0f} s (traced: slower than without)")
    rss = quiet(handle)
    table(snapshot(pid, out), rss, before, args.incidents)
    handle.stop()
    k8s.CoreV1Api(api).delete_namespace(namespace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
