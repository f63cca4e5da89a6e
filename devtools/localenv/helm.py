"""The chart (helm/incidentops) on the local cluster: render, install, and act as its ServiceAccount.

helm is built from the Go module proxy next to the control plane (devtools/build-controlplane.sh).
The ServiceAccount kubeconfig carries a short-lived token from the TokenRequest API, so a test can
run the operator with exactly the rights the chart grants, as the pod would.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from localenv.controlplane import helm_binary, repo_root


class HelmError(RuntimeError):
    """helm failed; the message has its stderr (what a user would read)."""


def chart_dir() -> Path:
    return repo_root() / "helm" / "incidentops"


def helm(*args: str, kubeconfig: Path | None = None, timeout: float = 180.0) -> str:
    """Run helm and return its stdout; a failure raises HelmError with stderr."""
    argv = [str(helm_binary()), *args]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if result.returncode != 0:
        raise HelmError(f"helm {' '.join(args[:2])} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def set_flags(values: Mapping[str, str] | None) -> list[str]:
    """--set for each value path (helm types numbers and booleans; the chart's schema checks them)."""
    flags: list[str] = []
    for key, value in (values or {}).items():
        flags += ["--set", f"{key}={value}"]
    return flags


def render(
    release: str,
    namespace: str,
    values: Mapping[str, str] | None = None,
    *,
    api_versions: Sequence[str] = (),
    values_file: Path | None = None,
) -> list[dict[str, Any]]:
    """The chart's objects as `helm template` renders them (api_versions as the cluster would report)."""
    args = ["template", release, str(chart_dir()), "--namespace", namespace, *set_flags(values)]
    for version in api_versions:
        args += ["--api-versions", version]
    if values_file is not None:
        args += ["--values", str(values_file)]
    return [doc for doc in yaml.safe_load_all(helm(*args)) if doc]


def install(
    release: str, namespace: str, kubeconfig: Path, values: Mapping[str, str] | None = None, *extra: str
) -> str:
    """`helm install --wait` into `namespace` (created if missing); returns helm's output (NOTES included)."""
    return helm(
        "install",
        release,
        str(chart_dir()),
        "--namespace",
        namespace,
        "--create-namespace",
        "--wait",
        "--timeout",
        "120s",
        *set_flags(values),
        *extra,
        kubeconfig=kubeconfig,
    )


def uninstall(release: str, namespace: str, kubeconfig: Path) -> None:
    helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "120s", kubeconfig=kubeconfig)


def service_account_kubeconfig(
    api: k8s.ApiClient, namespace: str, service_account: str, path: Path, seconds: int = 3600
) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (a TokenRequest token), same server and CA."""
    request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds))
    answer = k8s.CoreV1Api(api).create_namespaced_service_account_token(service_account, namespace, request)
    if answer.status is None or not answer.status.token:
        raise RuntimeError(f"TokenRequest for {namespace}/{service_account} returned no token")
    token = answer.status.token
    configuration = api.configuration
    cluster: dict[str, Any] = {"server": configuration.host}
    if configuration.ssl_ca_cert:
        cluster["certificate-authority-data"] = base64.b64encode(Path(configuration.ssl_ca_cert).read_bytes()).decode()
    else:
        cluster["insecure-skip-tls-verify"] = True
    name = f"{namespace}:{service_account}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "local", "user": name, "namespace": namespace}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
