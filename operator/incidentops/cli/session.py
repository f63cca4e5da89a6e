"""Connection settings the way kubectl resolves them: --kubeconfig, $KUBECONFIG, --context, namespace.

Also turns the client's failures into one-line messages: a responder at 3am needs "cannot reach
the API server at https://...: connection refused", not a urllib3 traceback.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from incidentops.cli.rest import RestClient, Unsupported, endpoint_from_kubeconfig, in_cluster_endpoint
from incidentops.kube import KubeClient, KubeError, NotFound, Unavailable, load_api_client

ApiClient = KubeClient | RestClient

DEFAULT_NAMESPACE = "default"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_OBJECT_REPR = re.compile(r"<[^>]*object at 0x[0-9a-f]+>:\s*")


class SessionError(Exception):
    """Configuration or connection trouble, already phrased for the user."""


def _kubeconfig_path(explicit: str | None) -> str | None:
    """The kubeconfig to read, or None for in-cluster config (only when nothing else exists)."""
    if explicit:
        return explicit
    from_env = os.environ.get("KUBECONFIG")
    if from_env:
        return from_env
    home = Path("~/.kube/config").expanduser()
    if not home.exists() and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    return str(home)


@dataclass
class Session:
    """What the global flags select; the API client is created on first use."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    _client: ApiClient | None = field(default=None, init=False, repr=False)
    _config: dict[str, Any] | None = field(default=None, init=False, repr=False)
    _actor: str | None = field(default=None, init=False, repr=False)

    @property
    def kubeconfig_path(self) -> str | None:
        return _kubeconfig_path(self.kubeconfig)

    def _kubeconfig(self) -> dict[str, Any]:
        """The kubeconfig as read (first file of a KUBECONFIG list), cached for the call."""
        if self._config is None:
            path = self.kubeconfig_path or ""
            try:
                loaded = yaml.safe_load(Path(path.split(os.pathsep)[0]).expanduser().read_text()) or {}
            except (OSError, yaml.YAMLError) as error:
                raise SessionError(f"cannot read kubeconfig {path}: {error}") from None
            if not isinstance(loaded, dict):
                raise SessionError(f"cannot read kubeconfig {path}: not a kubeconfig")
            self._config = loaded
        return self._config

    def _context(self) -> dict[str, Any]:
        """The selected kubeconfig context's body ({} in-cluster or when none is set)."""
        path = self.kubeconfig_path
        if path is None:
            return {}
        config = self._kubeconfig()
        wanted = self.context or config.get("current-context")
        chosen = next((c for c in config.get("contexts") or [] if c.get("name") == wanted), None)
        if chosen is None and self.context:
            raise SessionError(f'context "{self.context}" not found in kubeconfig {path}')
        body = (chosen or {}).get("context") or {}
        return dict(body)

    def resolved_namespace(self) -> str:
        """-n, else the context's namespace, else (in a pod) the pod's namespace, else "default"."""
        if self.namespace:
            return self.namespace
        from_context = self._context().get("namespace")
        if from_context:
            return str(from_context)
        if self.kubeconfig_path is None and SERVICE_ACCOUNT_NAMESPACE.exists():
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or DEFAULT_NAMESPACE
        return DEFAULT_NAMESPACE

    def default_actor(self) -> str:
        """Who acts when --by is not given: the user the API server authenticated (`kubectl auth whoami`).

        Not $USER: the admission policy the chart installs refuses any `by` but the requester's own name,
        so the plugin writes the name the API server will check.
        """
        if self._actor is None:
            try:
                review = self.client().self_subject_review()
            except KubeError as error:
                raise SessionError(
                    f"cannot tell who you are: the API server did not answer a SelfSubjectReview ({error}); "
                    "pass --by NAME"
                ) from None
            name = str(((review.get("status") or {}).get("userInfo") or {}).get("username") or "")
            if not name:
                raise SessionError("cannot tell who you are: the API server named no user; pass --by NAME")
            self._actor = name
        return self._actor

    def client(self) -> ApiClient:
        """The API client for the selected cluster and context: the lean one when it can speak the auth."""
        if self._client is None:
            if self.context:
                self._context()  # a clear "context not found" before the client library's wording
            self._client = self._lean_client()
        if self._client is None:
            from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415 - only on this path

            try:
                api = load_api_client(self.kubeconfig_path, self.context, pool=4)
            except (ConfigException, OSError, TypeError, ValueError) as error:
                where = self.kubeconfig_path or "in-cluster configuration"
                raise SessionError(f"cannot load Kubernetes configuration from {where}: {error}") from None
            self._client = KubeClient(api, component="kubectl-incident")
        return self._client

    def full_client(self) -> KubeClient:
        """The official client, for what the lean one does not speak (Deployments, dry runs)."""
        client = self.client()
        if isinstance(client, KubeClient):
            return client
        from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415 - only on this path

        try:
            return KubeClient(load_api_client(self.kubeconfig_path, self.context, pool=4), component="kubectl-incident")
        except (ConfigException, OSError, TypeError, ValueError) as error:
            raise SessionError(f"cannot load Kubernetes configuration: {error}") from None

    def _lean_client(self) -> RestClient | None:
        path = self.kubeconfig_path
        try:
            if path is None:
                return RestClient(in_cluster_endpoint())
            if os.pathsep in path:  # several files merge by kubectl's rules: the official client knows them
                return None
            return RestClient(endpoint_from_kubeconfig(path, self._kubeconfig(), self.context))
        except (Unsupported, KeyError, OSError, ValueError):
            return None

    @property
    def server(self) -> str:
        """The API server URL, for error messages."""
        return str(self.client().api_client.configuration.host)


def _root_reason(error: BaseException) -> str:
    """The innermost useful reason of a connection failure, without object reprs."""
    reason: BaseException = error
    while True:
        inner = getattr(reason, "reason", None)
        if isinstance(inner, BaseException):
            reason = inner
        elif reason.__cause__ is not None:
            reason = reason.__cause__
        else:
            break
    return _OBJECT_REPR.sub("", str(reason)) or type(reason).__name__


def explain(error: KubeError, session: Session) -> str:
    """A one-line message for errors that are not about a particular incident."""
    if isinstance(error, Unavailable) and error.__cause__ is not None and "unreachable" in str(error):
        return f"cannot reach the Kubernetes API server at {session.server}: {_root_reason(error.__cause__)}"
    if isinstance(error, NotFound) and "could not find the requested resource" in str(error):
        return (
            'the server doesn\'t have a resource type "incidents": '
            "is the incidentops CRD installed (kubectl apply -f crds/)?"
        )
    return str(error)
