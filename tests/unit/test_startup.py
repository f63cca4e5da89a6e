"""Starting the operator wrong gives one readable line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "INCIDENTOPS_LOG_FORMAT": "text"}
    return subprocess.run(
        [sys.executable, "-m", "incidentops"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_no_kubeconfig_is_one_line_naming_what_to_set(tmp_path: Path) -> None:
    done = start(tmp_path, INCIDENTOPS_WEBHOOK_AUTH="none", INCIDENTOPS_PROMETHEUS_ULR="http://p:9090")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert "INCIDENTOPS_PROMETHEUS_ULR is not a setting" in lines[0] and "INCIDENTOPS_PROMETHEUS_URL?" in lines[0]
    assert "no Kubernetes connection could be configured" in lines[1] and "KUBECONFIG" in lines[1]


def test_a_bad_setting_stops_it_before_anything_starts(tmp_path: Path) -> None:
    done = start(tmp_path, INCIDENTOPS_WEBHOOK_AUTH="none", INCIDENTOPS_PROMETHEUS_URL="prometheus:9090")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "incidentops: invalid configuration: INCIDENTOPS_PROMETHEUS_URL='prometheus:9090': expected a URL such as "
        "http://prometheus:9090, with http:// or https:// (got 'prometheus:9090')"
    )
