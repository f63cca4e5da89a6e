"""Namespace and actor defaults come from the kubeconfig the way kubectl reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from incidentops.cli.session import Session, SessionError
from incidentops.kube import KubeError

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


class Reviewer:
    """Answers a SelfSubjectReview as the apiserver would, or fails like an old/unreachable one."""

    def __init__(self, answer: dict[str, Any] | KubeError) -> None:
        self.answer = answer
        self.calls = 0

    def self_subject_review(self) -> dict[str, Any]:
        self.calls += 1
        if isinstance(self.answer, KubeError):
            raise self.answer
        return self.answer


def with_client(kubeconfig: str, client: Reviewer) -> Session:
    session = Session(kubeconfig=kubeconfig)
    session._client = client  # type: ignore[assignment]
    return session


def test_actor_is_who_the_apiserver_says_not_user_env(kubeconfig: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "alice")  # anyone can set this: it is not used
    reviewer = Reviewer({"status": {"userInfo": {"username": "oidc:bob@example.com", "groups": ["sre"]}}})
    session = with_client(kubeconfig, reviewer)
    assert session.default_actor() == "oidc:bob@example.com"
    assert session.default_actor() == "oidc:bob@example.com" and reviewer.calls == 1  # asked once per command


def test_no_identity_is_a_clear_error_that_names_the_way_out(kubeconfig: str) -> None:
    for answer in (KubeError("not allowed: selfsubjectreviews"), {"status": {"userInfo": {}}}):
        with pytest.raises(SessionError, match=r"cannot tell who you are.*pass --by NAME"):
            with_client(kubeconfig, Reviewer(answer)).default_actor()


def test_bad_context_or_file_is_a_clear_error(kubeconfig: str, tmp_path: Path) -> None:
    with pytest.raises(SessionError, match='context "nope" not found'):
        Session(kubeconfig=kubeconfig, context="nope").resolved_namespace()
    with pytest.raises(SessionError, match="cannot read kubeconfig"):
        Session(kubeconfig=str(tmp_path / "missing")).resolved_namespace()
