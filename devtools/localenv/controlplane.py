"""The local test cluster: upstream Kubernetes built from source, run by `kwokctl --runtime binary`.

There is no container engine here, so kind cannot run. kwokctl starts etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok-controller as plain processes; kwok fakes the
nodes and makes pods Running, so Deployments, ReplicaSets, rollouts and scheduling are real.
Every component binary is a local absolute path (kwokctl would otherwise download it), and all
listeners are on 127.0.0.1.

kwokctl keeps its state under `<cache>/incidentops/kwok` (KWOK_WORKDIR), never in the repo or
in ~/.kube/config; the kubeconfig for users and tests is written to `<repo>/.dev/kubeconfig`.

One module, though long: starting, reusing, health-checking and stopping one cluster share the
same paths, ports and leftovers, and reading it top to bottom is how a newcomer learns the cluster.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from localenv.procs import (
    WaitTimeout,
    cmdline,
    free_port,
    pid_alive,
    processes_matching,
    rss_kib,
    terminate_pids,
    wait_until,
)
from localenv.progress import say, step

CLUSTER_NAME = "incidentops"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")
DEFAULT_NODES = 2
LOCAL_CLUSTER_ENV = "INCIDENTOPS_LOCAL_CLUSTER"
_BINDIR_PATTERN = re.compile(r"k8s-(?P<k8s>v[^_]+)_etcd-v(?P<etcd>[^_]+)_kwok-(?P<kwok>v[^/]+)")


class ControlPlaneError(RuntimeError):
    """The local control plane could not be built, started or stopped."""


# --- locations ---------------------------------------------------------------------------------


def repo_root() -> Path:
    """The repository this package lives in (the package is installed editable from devtools/)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "devtools" / "build-controlplane.sh").is_file():
        raise ControlPlaneError(f"{root} is not the incidentops repo (no devtools/build-controlplane.sh)")
    return root


def build_script() -> Path:
    """The script that builds (or finds cached) control-plane binaries."""
    return repo_root() / "devtools" / "build-controlplane.sh"


def kubeconfig_path() -> Path:
    """Where the local cluster's kubeconfig is written (git-ignored)."""
    return repo_root() / ".dev" / "kubeconfig"


def cache_root() -> Path:
    """Same cache root as build-controlplane.sh: $INCIDENTOPS_CACHE or $XDG_CACHE_HOME/incidentops."""
    explicit = os.environ.get("INCIDENTOPS_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "incidentops"


def kwok_workdir() -> Path:
    """KWOK_WORKDIR for kwokctl: its clusters, PKI, logs and pid files."""
    return cache_root() / "kwok"


def cluster_dir() -> Path:
    """kwokctl's directory for our cluster (logs are in `logs/`)."""
    return kwok_workdir() / "clusters" / CLUSTER_NAME


def _marker_path() -> Path:
    return kwok_workdir() / f"{CLUSTER_NAME}.localenv.json"


# --- binaries ----------------------------------------------------------------------------------


def _script_path(option: str) -> Path:
    """The path the build script prints for one of its --print options (nothing is built)."""
    out = subprocess.run(["bash", str(build_script()), option], check=True, capture_output=True, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def bin_dir() -> Path:
    """Directory the build script puts (or would put) the binaries in; nothing is built."""
    return _script_path("--print-bin-dir")


def ensure_binaries() -> Path:
    """Build the control plane unless cached (progress streams to stderr); return the bin dir."""
    result = subprocess.run(["bash", str(build_script())], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise ControlPlaneError(f"build-controlplane.sh failed with exit code {result.returncode}")
    return Path(result.stdout.strip().splitlines()[-1])


def versions(bins: Path) -> dict[str, str]:
    """Versions encoded in the bin dir name: k8s (v1.34.4), etcd (3.6.16), kwok (v0.7.0)."""
    match = _BINDIR_PATTERN.search(str(bins))
    if not match:
        raise ControlPlaneError(f"cannot read versions from {bins}")
    return match.groupdict()


def kubectl_binary() -> Path:
    """The kubectl built with the control plane (same version as the apiserver)."""
    return bin_dir() / "kubectl"


def prometheus_operator_crds() -> Path:
    """The prometheus-operator's CRD manifests, from its module on the Go module proxy (cached)."""
    return _script_path("--prometheus-operator-crds")


def helm_binary() -> Path:
    """The helm the build script builds next to the control plane (its own version key)."""
    return _script_path("--print-helm")


# --- kwokctl -----------------------------------------------------------------------------------


def _kwokctl_env() -> dict[str, str]:
    return {**os.environ, "KWOK_WORKDIR": str(kwok_workdir())}


def _kwokctl(bins: Path, *args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """Run kwokctl for our cluster; its JSON log lines are echoed as plain progress unless quiet."""
    argv = [str(bins / "kwokctl"), "--name", CLUSTER_NAME, *args]
    kwok_workdir().mkdir(parents=True, exist_ok=True)
    result = subprocess.run(argv, env=_kwokctl_env(), capture_output=True, text=True, check=False, cwd=kwok_workdir())
    if not quiet:
        for line in result.stderr.splitlines():
            say(f"kwokctl: {_plain_log_line(line)}")
    if check and result.returncode != 0:
        raise ControlPlaneError(f"kwokctl {' '.join(args)} failed ({result.returncode}):\n{result.stderr.strip()}")
    return result


def _plain_log_line(line: str) -> str:
    """Turn kwokctl's JSON log record into words; other lines pass through."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict):
        return line
    text = str(record.get("msg", line))
    elapsed = record.get("elapsed")
    if isinstance(elapsed, dict) and "human" in elapsed:
        text += f" ({elapsed['human']})"
    if "err" in record:
        text += f": {record['err']}"
    return text


def _kwokctl_config(bins: Path) -> dict[str, Any]:
    """KwokctlConfiguration pinning every binary kwokctl may need to a local path.

    Left unset (their components are off here, and nothing local provides them): etcdctl and
    kectl (only `kwokctl etcdctl/kectl/snapshot`), jaeger, metrics-server, dashboard, kind.
    """
    found = versions(bins)
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": {
            "runtime": "binary",
            "bindAddress": "127.0.0.1",
            "kubeVersion": found["k8s"],
            "etcdVersion": found["etcd"],
            "kwokVersion": found["kwok"],
            "etcdBinary": str(bins / "etcd"),
            "kubeApiserverBinary": str(bins / "kube-apiserver"),
            "kubeControllerManagerBinary": str(bins / "kube-controller-manager"),
            "kubeSchedulerBinary": str(bins / "kube-scheduler"),
            "kwokControllerBinary": str(bins / "kwok"),
            "kubectlBinary": str(bins / "kubectl"),
            **({"prometheusBinary": p} if (p := shutil.which("prometheus")) else {}),
        },
    }


@dataclass
class _Marker:
    """What we chose when creating the cluster (kwokctl does not report health ports)."""

    bin_dir: str
    ports: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls) -> _Marker | None:
        try:
            data = json.loads(_marker_path().read_text())
            return cls(bin_dir=str(data["bin_dir"]), ports={k: int(v) for k, v in data["ports"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def save(self) -> None:
        _marker_path().write_text(json.dumps({"bin_dir": self.bin_dir, "ports": self.ports}, indent=2))


# --- health ------------------------------------------------------------------------------------


def api_client(kubeconfig: Path) -> k8s.ApiClient:
    """A kubernetes ApiClient for this kubeconfig (not the process-global default)."""
    api: k8s.ApiClient = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    return api


def server_version(kubeconfig: Path, timeout: float = 3.0) -> str | None:
    """gitVersion from GET /version, or None when the cluster is unreachable."""
    try:
        with contextlib.closing(api_client(kubeconfig)) as api:
            info = k8s.VersionApi(api).get_code(_request_timeout=timeout)
            return str(info.git_version)
    except Exception:  # any config, TLS or connection problem means "not reachable"
        return None


@dataclass
class KubeCluster:
    """A cluster under test: its kubeconfig and a client configured for it."""

    kubeconfig: Path
    api: k8s.ApiClient


def to_plain(api: k8s.ApiClient, obj: object) -> Any:
    """A client model as JSON-ready data with wire (camelCase) names and no None fields."""
    return api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]


def raw_get(api: k8s.ApiClient, path: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET a non-resource path (/readyz, /version, ...) with the client's credentials."""
    method, url, headers, body, post = api.param_serialize("GET", path, auth_settings=["BearerToken"])
    response = api.call_api(method, url, headers, body, post, _request_timeout=timeout)
    response.read()  # type: ignore[no-untyped-call]
    return response.status, (response.data or b"").decode(errors="replace")


def _apiserver_ready(api: k8s.ApiClient) -> bool:
    try:
        status, body = raw_get(api, "/readyz", timeout=2.0)
    except Exception:  # refused or reset while the apiserver starts
        return False
    return status == 200 and body.strip() == "ok"


def _ready_nodes(api: k8s.ApiClient) -> list[str]:
    ready = []
    for node in k8s.CoreV1Api(api).list_node(_request_timeout=5).items:
        conditions = (node.status.conditions if node.status else None) or []
        if node.metadata and node.metadata.name and any(c.type == "Ready" and c.status == "True" for c in conditions):
            ready.append(node.metadata.name)
    return ready


def _healthz(port: int) -> bool:
    """Anonymous /healthz of kube-controller-manager, kube-scheduler, kwok-controller (self-signed TLS)."""
    try:
        response = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=False, timeout=2.0)  # loopback only
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.text.strip() == "ok"


def _component_pids() -> dict[str, list[int]]:
    """Live component processes of our cluster, by component (their exe sits in the cluster dir)."""
    bin_prefix = str(cluster_dir() / "bin") + "/"
    found: dict[str, list[int]] = {}
    for pid in processes_matching(lambda _pid, argv: argv[0].startswith(bin_prefix)):
        argv = cmdline(pid)
        if argv:
            found.setdefault(Path(argv[0]).name, []).append(pid)
    return found


def _cluster_processes() -> list[int]:
    """Every live process that belongs to our cluster (matched on its directory in argv)."""
    marker = str(cluster_dir()) + "/"
    return processes_matching(lambda _pid, argv: any(marker in arg for arg in argv))


@dataclass
class ComponentStatus:
    """One control-plane process."""

    name: str
    pids: list[int]
    rss_kib: int
    healthy: bool | None = None

    @property
    def running(self) -> bool:
        """Whether at least one process is alive."""
        return any(pid_alive(p) for p in self.pids)


@dataclass
class ClusterStatus:
    """What `status` reports: components, apiserver version, Ready nodes."""

    exists: bool
    kubeconfig: Path
    components: list[ComponentStatus]
    version: str | None
    ready_nodes: list[str]

    @property
    def running(self) -> bool:
        """Any component process alive."""
        return any(c.running for c in self.components)

    @property
    def healthy(self) -> bool:
        """All components running (and healthy where checkable), API reachable, enough nodes Ready."""
        return (
            self.exists
            and self.kubeconfig.is_file()
            and all(c.running and c.healthy is not False for c in self.components)
            and self.version is not None
            and len(self.ready_nodes) >= DEFAULT_NODES
        )

    @property
    def total_rss_kib(self) -> int:
        """Sum of the components' resident memory."""
        return sum(c.rss_kib for c in self.components)

    def render(self) -> str:
        """Human-readable report."""
        state = "healthy" if self.healthy else ("degraded" if self.running else "down")
        lines = [f"cluster {CLUSTER_NAME}: {state}", f"  kubeconfig: {self.kubeconfig}"]
        if self.version:
            lines.append(f"  apiserver: {self.version}")
        lines.append(f"  nodes Ready: {len(self.ready_nodes)} ({', '.join(self.ready_nodes) or '-'})")
        for c in self.components:
            health = {True: "healthy", False: "UNHEALTHY", None: ""}[c.healthy]
            pids = ",".join(map(str, c.pids)) or "-"
            run = "running" if c.running else "stopped"
            lines.append(f"  {c.name:<24} {run:<8} pid {pids:<8} rss {c.rss_kib / 1024:7.1f} MiB {health}")
        lines.append(f"  total rss: {self.total_rss_kib / 1024:.1f} MiB")
        return "\n".join(lines)


def cluster_status() -> ClusterStatus:
    """Inspect the local cluster without changing anything."""
    kubeconfig = kubeconfig_path()
    pids = _component_pids()
    marker = _Marker.load()
    ports = marker.ports if marker else {}
    components = []
    for name in COMPONENTS:
        component_pids = pids.get(name, [])
        healthy = _healthz(ports[name]) if name in ports and component_pids else None
        rss = sum(rss_kib(p) for p in component_pids)
        components.append(ComponentStatus(name, component_pids, rss, healthy))
    version = server_version(kubeconfig) if kubeconfig.is_file() and pids else None
    ready: list[str] = []
    if version is not None:
        with contextlib.suppress(Exception), contextlib.closing(api_client(kubeconfig)) as api:
            ready = _ready_nodes(api)
    return ClusterStatus(
        exists=(cluster_dir() / "kwok.yaml").is_file(),
        kubeconfig=kubeconfig,
        components=components,
        version=version,
        ready_nodes=ready,
    )


# --- lifecycle ---------------------------------------------------------------------------------


def _write_kubeconfig(bins: Path) -> Path:
    """Write a self-contained kubeconfig (certificates embedded) to .dev/kubeconfig."""
    text = _kwokctl(bins, "get", "kubeconfig", quiet=True).stdout
    yaml.safe_load(text)  # refuse to write something that is not YAML
    path = kubeconfig_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


def _create(bins: Path) -> None:
    kwok_workdir().mkdir(parents=True, exist_ok=True)
    config_file = kwok_workdir() / f"{CLUSTER_NAME}.kwokctl.yaml"
    config_file.write_text(yaml.safe_dump(_kwokctl_config(bins), sort_keys=False))
    ports = {name: free_port() for name in ("kube-controller-manager", "kube-scheduler", "kwok-controller")}
    _Marker(bin_dir=str(bins), ports=ports).save()
    with step(
        "creating cluster with kwokctl (etcd, kube-apiserver, kube-controller-manager, "
        "kube-scheduler, kwok-controller as local processes)"
    ):
        _kwokctl(
            bins,
            "--config",
            str(config_file),
            "create",
            "cluster",
            "--runtime",
            "binary",
            "--kubeconfig",
            "",
            "--kube-controller-manager-port",
            str(ports["kube-controller-manager"]),
            "--kube-scheduler-port",
            str(ports["kube-scheduler"]),
            "--controller-port",
            str(ports["kwok-controller"]),
        )


def _delete(bins: Path) -> None:
    with step("deleting cluster"):
        if (cluster_dir() / "kwok.yaml").is_file():
            _kwokctl(bins, "delete", "cluster", check=False)
        leftovers = _cluster_processes()
        if leftovers:
            say(f"stopping leftover cluster processes {leftovers}")
            survivors = terminate_pids(leftovers)
            if survivors:
                raise ControlPlaneError(f"processes {survivors} of cluster {CLUSTER_NAME} would not exit")
        shutil.rmtree(cluster_dir(), ignore_errors=True)
        _marker_path().unlink(missing_ok=True)


def _wait_ready(bins: Path, nodes: int, timeout: float) -> Path:
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    marker = _Marker.load()
    ports = marker.ports if marker else {}
    kubeconfig = _write_kubeconfig(bins)
    with contextlib.closing(api_client(kubeconfig)) as api:
        with step("waiting for etcd and kube-apiserver /readyz"):
            wait_until(lambda: _apiserver_ready(api), timeout=left(), interval=0.2, what="kube-apiserver /readyz")
        for name in ("kube-controller-manager", "kube-scheduler", "kwok-controller"):
            if name in ports:
                with step(f"waiting for {name} /healthz"):
                    wait_until(
                        functools.partial(_healthz, ports[name]), timeout=left(), interval=0.2, what=f"{name} /healthz"
                    )
        with step(f"ensuring {nodes} fake nodes"):
            _kwokctl(bins, "scale", "node", "--replicas", str(nodes), quiet=True)
        with step("waiting for nodes Ready"):
            wait_until(
                lambda: len(_ready_nodes(api)) >= nodes,
                timeout=left(),
                interval=0.2,
                what=f"{nodes} Ready nodes",
                ignore=(k8s.ApiException, OSError),
            )
        with step("waiting for the default service account (kube-controller-manager at work)"):
            core = k8s.CoreV1Api(api)
            wait_until(
                lambda: core.read_namespaced_service_account("default", "default"),
                timeout=left(),
                interval=0.2,
                what="serviceaccount default/default",
                ignore=(k8s.ApiException,),
            )
    return kubeconfig


def _quick_health(nodes: int) -> bool:
    status = cluster_status()
    return status.healthy and len(status.ready_nodes) >= nodes


@contextlib.contextmanager
def _cluster_lock() -> Iterator[None]:
    """Serialize cluster-up/-down across processes (parallel test sessions, CI steps)."""
    kwok_workdir().mkdir(parents=True, exist_ok=True)
    with (kwok_workdir() / f"{CLUSTER_NAME}.lock").open("w") as handle:
        if not _try_lock(handle.fileno()):
            say("another process is starting or stopping the cluster; waiting for it")
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def cluster_up(nodes: int = DEFAULT_NODES, timeout: float = 180.0) -> Path:
    """Start the local cluster (or confirm it is up) and return its kubeconfig path. Idempotent."""
    bins = ensure_binaries()
    with _cluster_lock():
        return _cluster_up_locked(bins, nodes, timeout)


def _cluster_up_locked(bins: Path, nodes: int, timeout: float) -> Path:
    started = time.monotonic()
    marker = _Marker.load()
    exists = (cluster_dir() / "kwok.yaml").is_file()
    if exists and (marker is None or marker.bin_dir != str(bins)):
        say("existing cluster was made with other binaries (or by hand); recreating it")
        _delete(bins)
        exists = False
    if exists and not kubeconfig_path().is_file() and _component_pids():
        # Running, started from another checkout (the cluster is one per machine): this checkout only
        # lacks the kubeconfig to see that it is healthy. Restarting it would leave kwok's nodes without
        # a lease for minutes (pods Pending).
        with contextlib.suppress(ControlPlaneError, OSError, yaml.YAMLError):
            _write_kubeconfig(bins)
    if exists and _quick_health(nodes):
        say(f"cluster {CLUSTER_NAME} is already up ({time.monotonic() - started:.1f}s)")
        return kubeconfig_path()
    if exists:
        with step("restarting the stopped or degraded cluster"):
            _kwokctl(bins, "stop", "cluster", check=False)
            stray = _cluster_processes()
            if stray:
                terminate_pids(stray)
            restarted = _kwokctl(bins, "start", "cluster", check=False).returncode == 0
        if restarted:
            try:
                path = _wait_ready(bins, nodes, timeout)
            except (WaitTimeout, ControlPlaneError) as exc:
                say(f"restart did not work ({exc}); recreating the cluster")
            else:
                say(f"cluster {CLUSTER_NAME} is up in {time.monotonic() - started:.1f}s")
                return path
        _delete(bins)
    _create(bins)
    try:
        path = _wait_ready(bins, nodes, timeout)
    except WaitTimeout as exc:
        raise ControlPlaneError(f"{exc}\n{_log_tails()}") from None
    say(f"cluster {CLUSTER_NAME} is up in {time.monotonic() - started:.1f}s")
    return path


def _log_tails(lines: int = 15) -> str:
    parts = []
    for name in COMPONENTS:
        log = cluster_dir() / "logs" / f"{name}.log"
        with contextlib.suppress(OSError):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            parts.append(f"--- {log} ---\n{tail}")
    return "\n".join(parts)


def cluster_down() -> bool:
    """Delete the local cluster and check no process of it is left; True when none is."""
    with _cluster_lock():
        return _cluster_down_locked()


def _cluster_down_locked() -> bool:
    started = time.monotonic()
    before = _cluster_processes()
    bins = bin_dir()
    kwokctl_ok = (bins / "kwokctl").is_file()
    if kwokctl_ok:
        _delete(bins)
    else:
        terminate_pids(_cluster_processes())
    kubeconfig_path().unlink(missing_ok=True)
    # exited components linger as zombies until init reaps them; wait so `ps` shows nothing
    with contextlib.suppress(WaitTimeout):
        wait_until(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in before),
            timeout=5,
            what="exited components to be reaped",
        )
    leftovers = _cluster_processes()
    if leftovers:
        say(f"processes still running after cluster-down: {leftovers}")
        return False
    say(f"cluster {CLUSTER_NAME} is down, no processes left ({time.monotonic() - started:.1f}s)")
    return True


def use_or_start_cluster() -> Path:
    """The cluster tests should use: $KUBECONFIG if it reaches a cluster, else the local one.

    Set INCIDENTOPS_LOCAL_CLUSTER=1 to ignore $KUBECONFIG. A $KUBECONFIG that already points at
    the local cluster goes through `cluster_up` so a stopped local cluster is restarted.
    """
    env_value = os.environ.get("KUBECONFIG", "")
    if env_value and os.environ.get(LOCAL_CLUSTER_ENV) != "1":
        given = Path(env_value)
        local = kubeconfig_path()
        if not (given.exists() and local.exists() and given.resolve() == local.resolve()):
            version = server_version(given)
            if version is not None:
                say(f"using the cluster from KUBECONFIG={env_value} ({version})")
                return given
            say(f"KUBECONFIG={env_value} does not reach a cluster; using the local one")
    return cluster_up()
