"""Namespace and actor defaults come from the kubeconfig the way kubectl reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from incidentops.cli.session import Session, SessionError

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
    "users": [{"name": "oncall-sre", "user": {"token": "t"}}],
    "contexts": [
        {"name": "prod", "context": {"cluster": "c", "user": "oncall-sre", "namespace": "payments"}},
        {"name": "bare", "context": {"cluster": "c", "user": "oncall-sre"}},
    ],
    "current-context": "prod",
}


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(KUBECONFIG))
    return str(path)


def test_namespace_comes_from_flag_then_context_then_default(kubeconfig: str) -> None:
    assert Session(kubeconfig=kubeconfig).resolved_namespace() == "payments"
    assert Session(kubeconfig=kubeconfig, context="bare").resolved_namespace() == "default"
    assert Session(kubeconfig=kubeconfig, namespace="ops").resolved_namespace() == "ops"


def test_kubeconfig_env_is_read_at_call_time(kubeconfig: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    assert Session().resolved_namespace() == "payments"


def test_actor_is_user_env_else_the_context_user(kubeconfig: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "alice")
    assert Session(kubeconfig=kubeconfig).default_actor() == "alice"
    monkeypatch.delenv("USER")
    monkeypatch.delenv("USERNAME", raising=False)
    assert Session(kubeconfig=kubeconfig).default_actor() == "oncall-sre"


def test_bad_context_or_file_is_a_clear_error(kubeconfig: str, tmp_path: Path) -> None:
    with pytest.raises(SessionError, match='context "nope" not found'):
        Session(kubeconfig=kubeconfig, context="nope").resolved_namespace()
    with pytest.raises(SessionError, match="cannot read kubeconfig"):
        Session(kubeconfig=str(tmp_path / "missing")).resolved_namespace()
