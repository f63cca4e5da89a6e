"""The plugin's lean client: which kubeconfigs it speaks itself, and errors as the operator's client raises them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from incidentops.cli.rest import Unsupported, _answer, endpoint_from_kubeconfig
from incidentops.kube import Conflict, Invalid, KubeError, NotFound, Unavailable


def kubeconfig(user: dict[str, Any], cluster: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "current-context": "dev",
        "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": cluster or {"server": "http://127.0.0.1:6443/"}}],
        "users": [{"name": "u", "user": user}],
    }


def test_tokens_inline_or_from_a_file_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret\n")
    endpoint = endpoint_from_kubeconfig(str(tmp_path / "config"), kubeconfig({"tokenFile": "token"}), None)
    assert endpoint.headers == {"Authorization": "Bearer s3cret"} and endpoint.server == "http://127.0.0.1:6443"
    inline = endpoint_from_kubeconfig(str(tmp_path / "config"), kubeconfig({"token": "abc"}), "dev")
    assert inline.headers["Authorization"] == "Bearer abc"


@pytest.mark.parametrize(
    "user",
    [
        {"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}},
        {"auth-provider": {"name": "oidc"}},
    ],
)
def test_credential_plugins_go_to_the_official_client(tmp_path: Path, user: dict[str, Any]) -> None:
    with pytest.raises(Unsupported):
        endpoint_from_kubeconfig(str(tmp_path / "config"), kubeconfig(user), None)


def test_proxies_and_unknown_contexts_go_to_the_official_client(tmp_path: Path) -> None:
    proxied = kubeconfig({"token": "t"}, {"server": "https://k8s:6443", "proxy-url": "http://proxy:3128"})
    with pytest.raises(Unsupported):
        endpoint_from_kubeconfig(str(tmp_path / "config"), proxied, None)
    with pytest.raises(Unsupported):
        endpoint_from_kubeconfig(str(tmp_path / "config"), kubeconfig({"token": "t"}), "other")


@pytest.mark.parametrize(
    ("status", "error"), [(404, NotFound), (409, Conflict), (422, Invalid), (403, KubeError), (503, Unavailable)]
)
def test_answers_map_to_the_same_errors_as_the_operator_client(status: int, error: type[Exception]) -> None:
    with pytest.raises(error, match="the reason"):
        _answer(status, b'{"kind": "Status", "message": "the reason"}')
    assert _answer(200, b'{"a": 1}') == {"a": 1}
