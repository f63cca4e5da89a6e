"""The operator image's Dockerfile, checked without a container engine (and without a cluster).

The test reads the Dockerfile and repeats its build stage in a temporary directory that stands for
the image's root: the build stage's COPY instructions (honouring .dockerignore), its ENV, and its
`python -m venv` / `python -m pip` steps, with every absolute path moved under that directory and
`python` replaced by an interpreter of the image's Python version when one is on this machine.
Then it checks what the image would contain (the pinned runtime dependencies, no dev tools) and
runs the ENTRYPOINT and the kubectl plugin from that venv with the final stage's environment.

Nothing here needs a cluster: no fixture of tests/conftest.py is requested. It needs PyPI (or
pip's cache) to build the wheel and install the dependencies, and takes a minute or so.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from incidentops import config as operator_config
from localenv.controlplane import repo_root

pytestmark = pytest.mark.integration

ROOT = repo_root()
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BASE_IMAGE = re.compile(r"python:(?P<version>(?P<minor>3\.\d+)\.\d+)-slim-bookworm(@sha256:[0-9a-f]{64})?")
IMAGE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"  # PATH of the python images
STEP_TIMEOUT = 600.0
RUN_TIMEOUT = 60.0


# -- the Dockerfile, read -----------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]


def logical_lines(text: str) -> list[str]:
    """Instructions with their `\\` continuations joined; comments dropped (inside a continuation too)."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        lines.append(pending + line)
        pending = ""
    assert not pending, f"the Dockerfile ends inside a continued line: {pending!r}"
    return lines


def parse_dockerfile(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            assert match, f"cannot read FROM {args!r}"
            stages.append(Stage(base=match[1], name=match[2]))
        else:
            assert stages, f"{keyword} before the first FROM is not supported by this test"
            stages[-1].instructions.append((keyword, args))
    return stages


def expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m[1], ""), value)


def env_of(stage: Stage, start: dict[str, str]) -> dict[str, str]:
    """The stage's ENV instructions applied over `start`, with $VAR and ${VAR} expanded as Docker does."""
    env = dict(start)
    for args in stage.all("ENV"):
        tokens = shlex.split(args)
        pairs = (
            [token.partition("=")[::2] for token in tokens] if "=" in tokens[0] else [(tokens[0], " ".join(tokens[1:]))]
        )
        before = dict(env)  # one instruction's values see the variables as they were before it
        env.update({key: expand(value, before) for key, value in pairs})
    return env


def exec_form(args: str) -> list[str]:
    assert args.startswith("["), f"use the exec (JSON) form, so the operator is PID 1 and gets SIGTERM: {args!r}"
    command = json.loads(args)
    assert isinstance(command, list) and command and all(isinstance(part, str) for part in command)
    return command


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex over context-relative paths (`**`, `*`, `?`, `[...]`)."""
    out, i = "", 0
    pattern = pattern.strip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignore_patterns() -> list[re.Pattern[str]]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert not [p for p in patterns if p.startswith("!")], "this test does not implement `!` exceptions"
    return [pattern_regex(p) for p in patterns]


def ignored(relative: str, patterns: list[re.Pattern[str]]) -> bool:
    """Whether the context path, or a folder it is in, is left out of the build context."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(p.fullmatch(prefix) for p in patterns for prefix in prefixes)


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    parsed = parse_dockerfile(DOCKERFILE.read_text())
    assert len(parsed) >= 2, "a multi-stage build: a build stage and a final stage"
    return parsed


# -- the build stage, repeated -----------------------------------------------------------------


def matching_python(minor: str) -> Path | None:
    """An interpreter of Python `minor` (e.g. "3.12"): this one, one on PATH, or one of pyenv's."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [sys.executable, shutil.which(f"python{minor}")]
    candidates += sorted(glob.glob(str(pyenv / f"{minor}.*" / "bin" / f"python{minor}")))
    for candidate in candidates:
        if not candidate:
            continue
        try:
            found = subprocess.run(
                [candidate, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            continue
        if found.returncode == 0 and found.stdout.strip() == minor:
            return Path(candidate)
    return None


@dataclass
class Built:
    root: Path  # stands for the image's /
    python: Path  # the interpreter that played the build stage's `python`
    venv: Path  # the final stage's venv, under root
    final_env: dict[str, str]  # the final stage's environment, paths under root
    entrypoint: list[str]

    def venv_python(self) -> Path:
        return self.venv / "bin" / "python"


def moved(token: str, root: Path) -> str:
    """A command-line token with its absolute path (or an option's absolute value) moved under root."""
    key, eq, value = token.partition("=")
    if eq and key.startswith("-") and value.startswith("/"):
        return f"{key}={root}{value}"
    return f"{root}{token}" if token.startswith("/") else token


def build_command(segment: str, root: Path, python: Path) -> list[str]:
    """One `python -m pip|venv ...` step of the build stage, as it runs here (paths under root, globs expanded)."""
    tokens = [moved(token, root) for token in shlex.split(segment)]
    if re.fullmatch(r"pip3?", tokens[0]):
        tokens[:1] = ["python", "-m", "pip"]
    if not re.fullmatch(r"python(3(\.\d+)?)?", tokens[0]) or tokens[1:3] not in (["-m", "pip"], ["-m", "venv"]):
        pytest.fail(f"the build stage runs `{segment}`, which this test cannot repeat: keep to python -m pip|venv")
    command = [str(python), *tokens[1:3]]
    for token in tokens[3:]:
        if any(char in token for char in "*?["):
            matches = sorted(glob.glob(token))
            assert matches, f"`{segment}`: nothing matches {token}"
            command += matches
        else:
            command.append(token)
    return command


def venv_of(build: Stage) -> str:
    """The folder the build stage's `python -m venv` creates (its last argument)."""
    for args in build.all("RUN"):
        for segment in args.split("&&"):
            tokens = shlex.split(segment)
            if tokens[1:3] == ["-m", "venv"]:
                return tokens[-1].rstrip("/")
    pytest.fail("the build stage creates no venv (`python -m venv PATH`)")


def copy_into(sources: list[str], dest: Path, into_folder: bool, patterns: list[re.Pattern[str]]) -> None:
    """COPY from the build context: a folder's contents, or files, minus what .dockerignore leaves out."""
    for source in sources:
        assert not any(char in source for char in "*?["), f"COPY {source}: globs are not supported by this test"
        relative = os.path.normpath(source).removeprefix("./")
        origin = ROOT / relative
        assert origin.exists(), f"COPY {source}: not in the repository"
        assert relative == "." or not ignored(relative, patterns), f"COPY {source}: .dockerignore leaves it out"
        if origin.is_file():
            target = dest / origin.name if into_folder else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
            continue
        for path in sorted(origin.rglob("*")):
            inside = path.relative_to(ROOT).as_posix()
            if path.is_file() and not ignored(inside, patterns):
                target = dest / path.relative_to(origin)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)


def run_build_stage(stage: Stage, root: Path, python: Path, log: Path) -> None:
    patterns = ignore_patterns()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.pop("PIP_NO_CACHE_DIR", None)  # pip's cache on purpose: the build stage is thrown away anyway
    workdir = root
    for keyword, args in stage.instructions:
        if keyword == "WORKDIR":
            workdir = root / args.lstrip("/") if args.startswith("/") else workdir / args
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "ENV":
            env = env_of(Stage(stage.base, stage.name, [("ENV", args)]), env)
        elif keyword == "COPY":
            parts = shlex.split(args)
            assert not [p for p in parts if p.startswith("--")], f"COPY {args}: options are not supported here"
            *sources, dest = parts
            target = Path(moved(dest, root)) if dest.startswith("/") else workdir / dest
            copy_into(sources, target, len(sources) > 1 or dest.endswith("/"), patterns)
        elif keyword == "RUN":
            for segment in args.split("&&"):
                assert not re.search(r"[;|`]|\$\(", segment), f"RUN {args}: only `&&` chains are repeated here"
                command = build_command(segment.strip(), root, python)
                with log.open("a") as out:
                    out.write(f"\n$ {shlex.join(command)}\n")
                    out.flush()
                    done = subprocess.run(
                        command,
                        cwd=workdir,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        timeout=STEP_TIMEOUT,
                        check=False,
                    )
                tail = "".join(log.read_text().splitlines(keepends=True)[-40:])
                assert done.returncode == 0, f"`{segment.strip()}` failed (exit {done.returncode}):\n{tail}"
        elif keyword != "LABEL":
            pytest.fail(f"the build stage has {keyword}, which this test cannot repeat")


@pytest.fixture(scope="module")
def built(stages: list[Stage], tmp_path_factory: pytest.TempPathFactory) -> Built:
    build, final = stages[0], stages[-1]
    image = BASE_IMAGE.fullmatch(build.base)
    assert image, f"the build stage's base {build.base!r} is not python:X.Y.Z-slim-bookworm"
    python = matching_python(image["minor"]) or Path(sys.executable)
    root = tmp_path_factory.mktemp("image-root")
    log = root.parent / "build.log"
    run_build_stage(build, root, python, log)
    venv = venv_of(build)
    copies = [[p for p in shlex.split(args) if not p.startswith("--")] for args in final.all("COPY")]
    assert [venv, venv] in copies, f"the final stage should copy the venv {venv} to the same path: {copies}"
    final_env = {k: v.replace(venv, moved(venv, root)) for k, v in env_of(final, {"PATH": IMAGE_PATH}).items()}
    entrypoint = [moved(part, root) for part in exec_form(final.all("ENTRYPOINT")[-1])]
    return Built(root, python, Path(moved(venv, root)), final_env, entrypoint)


def distributions(built: Built) -> dict[str, str]:
    listing = subprocess.run(
        [
            str(built.venv_python()),
            "-c",
            "import importlib.metadata as m, json; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))",
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=True,
    )
    return {canonicalize_name(name): version for name, version in json.loads(listing.stdout).items()}


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if not p.is_symlink()}


def run_in_image(
    built: Built, command: list[str], extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run with the final stage's environment only: no cluster anywhere (no in-cluster variables, no kubeconfig)."""
    home = built.root / "home-of-nobody"
    home.mkdir(exist_ok=True)
    env = {**built.final_env, "HOME": str(home), "KUBECONFIG": "/nonexistent/kubeconfig", **(extra or {})}
    assert not [k for k in env if k.startswith("KUBERNETES_")]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)


# -- the Dockerfile's promises ------------------------------------------------------------------


def test_both_stages_use_the_same_pinned_python_that_the_project_supports(stages: list[Stage]) -> None:
    build, final = stages[0], stages[-1]
    assert final.base == build.base, "the venv links to the build stage's interpreter: the same image in both"
    image = BASE_IMAGE.fullmatch(final.base)
    assert image, f"{final.base!r}: pin a patch release of python:X.Y.Z-slim-bookworm"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(image["version"]), f"Python {image['version']} vs {requires}"


def test_final_stage_runs_as_a_numeric_non_root_user(stages: list[Stage]) -> None:
    users = stages[-1].all("USER")
    assert users, "the final stage sets no USER: it would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: a numeric, non-zero UID"
    assert gid.isdigit() and int(gid) != 0, f"USER {users[-1]}: a numeric, non-zero GID"


def test_final_stage_copies_the_venv_and_no_source(stages: list[Stage]) -> None:
    build, final = stages[0], stages[-1]
    assert not final.all("ADD"), "ADD in the final stage"
    venv, sources_dir = venv_of(build), build.all("WORKDIR")[-1]
    assert final.all("COPY"), "the final stage copies nothing"
    for args in final.all("COPY"):
        parts = shlex.split(args)
        assert f"--from={build.name}" in parts, f"COPY {args}: the final stage copies from the build stage only"
        *sources, dest = [p for p in parts if not p.startswith("--")]
        assert sources == [venv] and dest.rstrip("/") == venv, f"COPY {args}: only the venv, to the same path"
        assert not venv.startswith(sources_dir), f"COPY {args}: the venv is inside the source tree {sources_dir}"


def test_final_stage_environment_and_port(stages: list[Stage]) -> None:
    final = stages[-1]
    env = env_of(final, {})
    for key, value in {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "MALLOC_ARENA_MAX": "2"}.items():
        assert env.get(key) == value, f"ENV {key}={value} missing"
    assert env.get("INCIDENTOPS_LOG_FORMAT") == "json"
    assert operator_config.unknown_settings(env) == [], "an INCIDENTOPS_* variable that is no setting"
    port = operator_config.Config.model_fields["http_port"].default
    exposed = [word.split("/")[0] for args in final.all("EXPOSE") for word in args.split()]
    assert str(port) in exposed, f"EXPOSE {exposed} does not include the operator's port {port}"


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = ignore_patterns()
    for path in (".venv/bin/python", ".dev/kubeconfig", ".git/HEAD", "tests/conftest.py", "bench/storm.py"):
        assert ignored(path, patterns), f"{path} would be sent to the builder"
    for path in (".mypy_cache/x", "operator/incidentops/__pycache__/x.pyc", "incidentops.egg-info/PKG-INFO"):
        assert ignored(path, patterns), f"{path} would be sent to the builder"
    for path in ("dist/x.whl", "build/lib/x.py"):
        assert ignored(path, patterns), f"{path} would be sent to the builder"
    assert not ignored("operator/incidentops/__main__.py", patterns)


# -- the build stage's result -------------------------------------------------------------------


def test_build_uses_the_image_python(built: Built, stages: list[Stage]) -> None:
    image = BASE_IMAGE.fullmatch(stages[0].base)
    assert image
    if matching_python(image["minor"]) is None:
        pytest.skip(f"no Python {image['minor']} on this machine: the venv was built with {sys.executable}")
    version = subprocess.run(
        [str(built.venv_python()), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=True,
    )
    assert version.stdout.strip() == image["minor"]


def test_venv_holds_the_pinned_runtime_dependencies_and_no_dev_tools(built: Built) -> None:
    installed = distributions(built)
    assert installed.get("incidentops"), f"the operator is not installed: {sorted(installed)}"
    pinned: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            pinned[canonicalize_name(name)] = version.strip()
    unpinned = {n: v for n, v in installed.items() if n != "incidentops" and pinned.get(n) != v}
    assert unpinned == {}, f"installed but not pinned (or pinned to another version) by constraints.txt: {unpinned}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {canonicalize_name(re.split(r"[<>=!~\[; ]", d)[0]) for d in project["dependencies"]}
    assert runtime <= set(installed), f"runtime dependencies missing: {runtime - set(installed)}"
    dev = {canonicalize_name(re.split(r"[<>=!~\[; ]", d)[0]) for d in project["optional-dependencies"]["dev"]}
    assert {"pytest", "mypy", "ruff"} <= dev
    assert dev & set(installed) == set(), f"dev tools in the image: {sorted(dev & set(installed))}"
    site = built.venv / "lib"
    for tool in ("pytest", "mypy", "ruff", "localenv"):
        assert not list(site.glob(f"python3*/site-packages/{tool}")), f"{tool} is in the image's venv"
        assert not (built.venv / "bin" / tool).exists(), f"bin/{tool} is in the image's venv"


def test_pip_check_passes(built: Built) -> None:
    check = subprocess.run(
        [str(built.python), "-m", "pip", "--python", str(built.venv_python()), "check"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT * 2,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_bytecode_is_compiled_at_build_time(built: Built) -> None:
    package = next(built.venv.glob("lib/python3*/site-packages/incidentops"))
    assert list((package / "__pycache__").glob("__main__.*.pyc")), "no bytecode: each start would compile"


def test_entry_points_run_without_a_cluster_and_write_nothing(built: Built) -> None:
    before = snapshot(built.venv)

    # As `docker run IMAGE` with no settings: a one-line configuration error, exit 2.
    bare = run_in_image(built, built.entrypoint)
    assert bare.returncode == 2, f"exit {bare.returncode}\n{bare.stderr}"
    assert "Traceback" not in bare.stderr, bare.stderr
    assert bare.stderr.startswith("incidentops: webhook authentication needs a token"), bare.stderr

    # Configured, but no cluster: every module imports, then a JSON log line says what to set.
    nocluster = run_in_image(built, built.entrypoint, {"INCIDENTOPS_WEBHOOK_AUTH": "none"})
    assert nocluster.returncode == 2, f"exit {nocluster.returncode}\n{nocluster.stderr}"
    assert "Traceback" not in nocluster.stderr, nocluster.stderr
    records = [json.loads(line) for line in nocluster.stderr.splitlines() if line.strip()]
    assert records, "nothing logged"
    last = records[-1]
    assert last["level"] == "error", last
    assert last["message"].startswith("no Kubernetes connection could be configured"), last
    assert "Set KUBECONFIG" in last["message"], last

    # The kubectl plugin, found on the image's PATH.
    plugin = shutil.which("kubectl-incident", path=built.final_env["PATH"])
    assert plugin and Path(plugin).parent == built.venv / "bin", f"kubectl-incident on PATH: {plugin}"
    usage = run_in_image(built, [plugin, "--help"])
    assert usage.returncode == 0, usage.stderr
    assert usage.stdout.startswith("Usage: kubectl incident"), usage.stdout
    for verb in ("ack", "resolve", "approve"):
        assert re.search(rf"^\s+{verb}\s", usage.stdout, re.MULTILINE), f"{verb} missing from\n{usage.stdout}"

    assert snapshot(built.venv) == before, "running wrote into the venv (a read-only root filesystem would fail)"
