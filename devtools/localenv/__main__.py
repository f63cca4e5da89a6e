"""`python -m localenv cluster-up | cluster-down | status`: manage the local test cluster.

Exit codes: 0 success (status: healthy), 1 failure (status: degraded), 3 (status) not running.
cluster-up prints the kubeconfig path on stdout, so `export KUBECONFIG=$(python -m localenv
cluster-up)` works.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from localenv import controlplane, leftovers
from localenv.crds import install_crds


def current_kubeconfig() -> Path:
    """$KUBECONFIG, else the local cluster's, else kubectl's default."""
    if os.environ.get("KUBECONFIG"):
        return Path(os.environ["KUBECONFIG"].split(os.pathsep)[0])
    local = controlplane.kubeconfig_path()
    return local if local.exists() else Path.home() / ".kube" / "config"


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOT_RUNNING = 3


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(prog="python -m localenv", description="Manage the local test cluster.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("cluster-up", help="build binaries if needed, start the cluster (idempotent)")
    up.add_argument("--nodes", type=int, default=controlplane.DEFAULT_NODES, help="fake nodes to run")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for readiness")
    commands.add_parser("cluster-down", help="delete the cluster and check no process is left")
    commands.add_parser("status", help="show components, memory, API version and nodes")
    commands.add_parser("kubeconfig", help="print the local kubeconfig path")
    commands.add_parser("install-crds", help="install or update the CRDs in the current kubeconfig's cluster")
    args = parser.parse_args(argv)

    try:
        if args.command == "cluster-up":
            path = controlplane.cluster_up(nodes=args.nodes, timeout=args.timeout)
            print(path)
            print(f"use it with: export KUBECONFIG={path}", file=sys.stderr)
            return EXIT_OK
        if args.command == "cluster-down":
            for what in leftovers.stop_all():
                print(f"stopped the {what} left by make demo KEEP=1", file=sys.stderr)
            return EXIT_OK if controlplane.cluster_down() else EXIT_FAILED
        if args.command == "install-crds":
            for name in install_crds(controlplane.api_client(current_kubeconfig())):
                print(f"customresourcedefinition {name} established", file=sys.stderr)
            return EXIT_OK
        if args.command == "kubeconfig":
            print(controlplane.kubeconfig_path())
            return EXIT_OK
        status = controlplane.cluster_status()
        print(status.render())
        if status.healthy:
            return EXIT_OK
        return EXIT_FAILED if status.running else EXIT_NOT_RUNNING
    except controlplane.ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
