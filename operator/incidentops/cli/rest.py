"""A lean apiserver client for the plugin: the kubeconfig, TLS and JSON over http.client.

The official client costs most of a second to import, longer than the whole call should take
(`kubectl get` answers in well under 0.1 s). The plugin needs a few verbs (get, list, create,
patch) on its own kinds, so it speaks REST itself whenever the kubeconfig uses what this module
understands: a bearer token (inline or in a file), a client certificate, basic auth, a CA
bundle, or the pod's service account. Anything else (exec credential plugins, auth providers,
proxies, merged kubeconfigs) goes through the official client, so no user loses access for speed.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from incidentops.api.v1alpha1.common import GROUP, VERSION
from incidentops.api.v1alpha1.resources import Kind
from incidentops.kube import Unavailable, error_for_status

Obj = dict[str, Any]
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TIMEOUT = 30.0
_UNDERSTOOD_USER = {"token", "tokenFile", "client-certificate", "client-certificate-data", "client-key"}
_UNDERSTOOD_USER |= {"client-key-data", "username", "password"}
_UNDERSTOOD_CLUSTER = {"server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify"}
_UNDERSTOOD_CLUSTER |= {"tls-server-name", "extensions"}


class Unsupported(Exception):
    """The kubeconfig needs more than this client does; use the official one."""


@dataclass(frozen=True)
class Endpoint:
    """Where the apiserver is and how to prove who we are."""

    server: str
    context: ssl.SSLContext | None
    headers: dict[str, str]
    server_name: str | None = None


def _file(base: Path, entry: dict[str, Any], key: str) -> Path | None:
    value = entry.get(key)
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def _data_file(data: str, handles: list[Any]) -> str:
    """Decoded kubeconfig *-data written to a private temporary file (ssl loads certificates from files)."""
    handle = tempfile.NamedTemporaryFile(prefix="kubectl-incident-", delete=True)  # noqa: SIM115 - closed by the caller
    handle.write(base64.b64decode(data))
    handle.flush()
    handles.append(handle)
    return handle.name


def _tls(base: Path, cluster: dict[str, Any], user: dict[str, Any]) -> ssl.SSLContext:
    handles: list[Any] = []
    try:
        if cluster.get("insecure-skip-tls-verify"):
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif cluster.get("certificate-authority-data"):
            context = ssl.create_default_context(cafile=_data_file(cluster["certificate-authority-data"], handles))
        elif ca := _file(base, cluster, "certificate-authority"):
            context = ssl.create_default_context(cafile=str(ca))
        else:
            context = ssl.create_default_context()
        cert = (
            _data_file(user["client-certificate-data"], handles)
            if user.get("client-certificate-data")
            else _file(base, user, "client-certificate")
        )
        key = (
            _data_file(user["client-key-data"], handles)
            if user.get("client-key-data")
            else _file(base, user, "client-key")
        )
        if cert:
            context.load_cert_chain(str(cert), str(key) if key else None)
        return context
    finally:
        for handle in handles:
            handle.close()


def endpoint_from_kubeconfig(path: str, config: dict[str, Any], context_name: str | None) -> Endpoint:
    """The endpoint of the chosen context; Unsupported when the official client is needed."""
    contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or []}
    chosen = contexts.get(context_name or config.get("current-context"))
    if chosen is None:
        raise Unsupported("no such context")
    clusters = {c.get("name"): c.get("cluster") or {} for c in config.get("clusters") or []}
    users = {u.get("name"): u.get("user") or {} for u in config.get("users") or []}
    cluster = clusters.get(chosen.get("cluster"))
    user = users.get(chosen.get("user"), {})
    if not cluster or not cluster.get("server"):
        raise Unsupported("no cluster")
    if set(cluster) - _UNDERSTOOD_CLUSTER or set(user) - _UNDERSTOOD_USER:
        raise Unsupported("auth this client does not speak")
    base = Path(path).expanduser().resolve().parent
    headers: dict[str, str] = {}
    token = user.get("token")
    if not token and (token_file := _file(base, user, "tokenFile")):
        token = token_file.read_text().strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif user.get("username"):
        pair = f"{user['username']}:{user.get('password', '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    server = str(cluster["server"]).rstrip("/")
    context = _tls(base, cluster, user) if server.startswith("https") else None
    return Endpoint(server, context, headers, cluster.get("tls-server-name"))


def in_cluster_endpoint() -> Endpoint:
    """The pod's service account, as client-go's rest.InClusterConfig reads it."""
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    token = (SERVICE_ACCOUNT / "token").read_text().strip()
    context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
    bracketed = f"[{host}]" if ":" in host else host
    return Endpoint(f"https://{bracketed}:{port}", context, {"Authorization": f"Bearer {token}"})


class _Configuration:
    def __init__(self, host: str) -> None:
        self.host = host


class _ApiClient:
    """What error messages read of the official client: the server's URL."""

    def __init__(self, host: str) -> None:
        self.configuration = _Configuration(host)


SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
SELF_SUBJECT_REVIEW: Obj = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}


class RestClient:
    """get, list and merge-patch for our kinds; errors as incidentops.kube raises them."""

    def __init__(self, endpoint: Endpoint, *, component: str = "kubectl-incident") -> None:
        self._endpoint = endpoint
        self.component = component
        self.api_client = _ApiClient(endpoint.server)
        self._url = urllib.parse.urlsplit(endpoint.server)

    def _path(self, kind: Kind, namespace: str | None, name: str | None = None) -> str:
        where = f"/namespaces/{namespace}" if namespace else ""
        tail = f"/{name}" if name else ""
        return f"{self._url.path}/apis/{GROUP}/{VERSION}{where}/{kind.plural}{tail}"

    def _request(self, method: str, path: str, body: Obj | None = None, content_type: str = "") -> Obj:
        headers = {"Accept": "application/json", "User-Agent": self.component, **self._endpoint.headers}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        host, port = self._url.hostname or "", self._url.port
        try:
            if self._url.scheme == "https":
                connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                    host, port, context=self._endpoint.context, timeout=TIMEOUT
                )
                if self._endpoint.server_name and self._endpoint.context is not None:
                    connection = _with_server_name(connection, self._endpoint.server_name)
            else:
                connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            connection.close()
        except (OSError, http.client.HTTPException) as error:
            raise Unavailable(f"apiserver unreachable: {error}") from error
        return _answer(response.status, raw)

    def get(self, kind: Kind, namespace: str, name: str) -> Obj:
        return self._request("GET", self._path(kind, namespace, name))

    def list(
        self,
        kind: Kind,
        namespace: str | None = None,
        label_selector: str = "",
        limit: int = 0,
        field_selector: str = "",
    ) -> list[Obj]:
        query = {k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v}
        if limit:
            query["limit"] = str(limit)
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        items: list[Obj] = self._request("GET", self._path(kind, namespace) + suffix).get("items", [])
        return items

    def create(self, kind: Kind, namespace: str, body: Obj) -> Obj:
        query = urllib.parse.urlencode({"fieldManager": self.component})
        return self._request("POST", f"{self._path(kind, namespace)}?{query}", body, "application/json")

    def self_subject_review(self) -> Obj:
        """Who the apiserver says this client is (what `kubectl auth whoami` asks)."""
        return self._request("POST", f"{self._url.path}{SELF_SUBJECT_REVIEWS}", SELF_SUBJECT_REVIEW, "application/json")

    def patch_spec(self, kind: Kind, namespace: str, name: str, patch: Obj, resource_version: str | None = None) -> Obj:
        body = dict(patch)
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        query = urllib.parse.urlencode({"fieldManager": self.component})
        path = f"{self._path(kind, namespace, name)}?{query}"
        return self._request("PATCH", path, body, "application/merge-patch+json")


def _with_server_name(connection: http.client.HTTPConnection, server_name: str) -> http.client.HTTPConnection:
    """Verify the certificate against tls-server-name rather than the host we dial."""
    context = connection._context  # type: ignore[attr-defined]
    wrap = context.wrap_socket

    def wrap_socket(sock: Any, server_hostname: str | None = None, **kwargs: Any) -> Any:
        return wrap(sock, server_hostname=server_name, **kwargs)

    context.wrap_socket = wrap_socket
    return connection


def _answer(status: int, raw: bytes) -> Obj:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    if 200 <= status < 300:
        return data if isinstance(data, dict) else {}
    message = str(data.get("message") if isinstance(data, dict) else "") or raw[:200].decode(errors="replace")
    raise error_for_status(status, message)
