"""The one place that talks to the Kubernetes API (official client), with errors we can act on.

The client is synchronous; the operator calls it through AsyncKube, which runs each call on a
bounded thread pool so the event loop (webhooks, Kopf) never blocks on the network.

It is long because it is the only such place: every verb the operator uses, with its error
mapping, sits here so that no other module imports the Kubernetes client.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import functools
import json
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any, NamedTuple, TypeVar

from incidentops.api.v1alpha1.common import GROUP, VERSION, format_time
from incidentops.api.v1alpha1.resources import Kind
from incidentops.logs import Throttle

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_PENDING_EVENTS = 10_000  # about 2 KiB each while waiting
Obj = dict[str, Any]


class KubeError(Exception):
    """Base of the errors callers distinguish."""


class NotFound(KubeError):
    """404: the object (or its namespace) does not exist."""


class Conflict(KubeError):
    """409: it already exists, or our resourceVersion is stale."""


class Invalid(KubeError):
    """422/400: the apiserver refused the object; the message says why."""


class Unavailable(KubeError):
    """The apiserver could not be reached or answered 5xx/429: retry later."""


class Forbidden(KubeError):
    """RBAC (or authentication) refused the call: a right the operator was not given."""


class Gone(KubeError):
    """410: a watch's resourceVersion is too old to resume from: list again."""


class Page(NamedTuple):
    items: builtins.list[Obj]
    token: str | None  # the next page's continue token; None: this was the last
    resource_version: str  # the snapshot every page of the LIST shows


def _message(error: Any) -> str:
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except ValueError:
        return str(error.reason)


def error_for_status(status: int, message: str) -> KubeError:
    """The error a failed apiserver answer means, whichever client got it."""
    if status == 404:
        return NotFound(message)
    if status == 409:
        return Conflict(message)
    if status in (400, 422):
        return Invalid(message)
    if status in (401, 403):
        return Forbidden(f"not allowed: {message}")
    if status == 410:
        return Gone(message)
    return Unavailable(f"apiserver answered {status}: {message}")


def _verb_and_resource(function: str, args: tuple[Any, ...]) -> tuple[str, str]:
    """("list", "incidents") for list_namespaced_custom_object(GROUP, VERSION, ns, "incidents"), ("get",
    "deployment") for read_namespaced_deployment: which kind the operator asks for, and how often."""
    verb, _, rest = function.partition("_")
    verb = "get" if verb == "read" else verb
    if "custom_object" in rest:
        at = 3 if "namespaced" in rest else 2
        return verb, str(args[at]) if len(args) > at else "custom"
    return verb, rest.removeprefix("namespaced_").removesuffix("_status").replace("_", "")


def _translate(error: Exception) -> Exception:
    import urllib3  # noqa: PLC0415 - the client library loads lazily (see KubeClient)
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    if isinstance(error, ApiException):
        return error_for_status(error.status or 0, _message(error))
    if isinstance(error, urllib3.exceptions.HTTPError | OSError | socket.timeout):
        return Unavailable(f"apiserver unreachable: {error}")
    return error


def load_api_client(kubeconfig: str | None = None, context: str | None = None, pool: int = 32) -> Any:
    """An ApiClient from in-cluster config, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    import kubernetes.client  # noqa: PLC0415 - importing the client costs ~0.2 s: only when used
    import kubernetes.config  # noqa: PLC0415

    configuration = kubernetes.client.Configuration()
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    configuration.connection_pool_maxsize = pool
    configuration.retries = False
    return kubernetes.client.ApiClient(configuration)


class KubeClient:
    """Synchronous calls for our kinds, Secrets, Namespaces and Events, with translated errors."""

    def __init__(self, api_client: Any, *, component: str = "incidentops") -> None:
        import kubernetes.client  # noqa: PLC0415

        self.api_client = api_client
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.component = component
        self.instance = socket.gethostname()

    @functools.cached_property
    def core(self) -> Any:
        """CoreV1Api, built on first use: importing it costs most of a second, which the plugin never needs."""
        import kubernetes.client  # noqa: PLC0415

        return kubernetes.client.CoreV1Api(self.api_client)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from incidentops.metrics import KUBE_REQUEST_SECONDS  # noqa: PLC0415 - the plugin never loads metrics

        verb, resource = _verb_and_resource(fn.__name__, args)
        verb = "watch" if kwargs.get("watch") else verb
        started = time.perf_counter()
        result = "ok"
        kwargs.setdefault("_request_timeout", 30)
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            translated = _translate(error)
            result = type(translated).__name__.lower()
            raise translated from error
        finally:
            KUBE_REQUEST_SECONDS.labels(verb, resource, result).observe(time.perf_counter() - started)

    def _obj(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj:
        result: Obj = self._call(fn, *args, **kwargs)
        return result

    def get(self, kind: Kind, namespace: str, name: str) -> Obj:
        return self._obj(self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, kind.plural, name)

    def list(
        self,
        kind: Kind,
        namespace: str | None = None,
        label_selector: str = "",
        limit: int = 0,
        field_selector: str = "",
    ) -> list[Obj]:
        if field_selector:
            by_field: dict[str, Any] = {"field_selector": field_selector}
        else:
            by_field = {}
        if namespace:
            result = self._call(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                kind.plural,
                label_selector=label_selector,
                **({"limit": limit} if limit else {}),
                **by_field,
            )
        else:
            result = self._call(
                self.custom.list_cluster_custom_object,
                GROUP,
                VERSION,
                kind.plural,
                label_selector=label_selector,
                **by_field,
            )
        items: list[Obj] = result.get("items", [])
        return items

    def list_page(self, kind: Kind, namespace: str | None, limit: int, token: str | None = None) -> Page:
        """One page of a LIST (limit/continue). Every page of one LIST is the same snapshot: its
        resourceVersion is where a watch of what follows begins."""
        extra: dict[str, Any] = {"limit": limit, **({"_continue": token} if token else {})}
        if namespace:
            result = self._call(
                self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, kind.plural, **extra
            )
        else:
            result = self._call(self.custom.list_cluster_custom_object, GROUP, VERSION, kind.plural, **extra)
        meta = result.get("metadata") or {}
        return Page(result.get("items", []), meta.get("continue") or None, str(meta.get("resourceVersion") or ""))

    def watch(self, kind: Kind, namespace: str | None, resource_version: str, seconds: int) -> Iterator[Obj]:
        """A watch's events as JSON, from `resource_version`, until the server ends it after `seconds`.

        BOOKMARK events (asked for) keep the resourceVersion fresh while nothing changes; a version too
        old to resume from raises Gone, and the caller lists again."""
        extra: dict[str, Any] = {
            "watch": True,
            "resource_version": resource_version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": seconds,
            "_preload_content": False,
            "_request_timeout": (10, seconds + 30),
        }
        if namespace:
            response = self._call(
                self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, kind.plural, **extra
            )
        else:
            response = self._call(self.custom.list_cluster_custom_object, GROUP, VERSION, kind.plural, **extra)
        from kubernetes.watch.watch import iter_resp_lines  # noqa: PLC0415
        from urllib3.exceptions import HTTPError  # noqa: PLC0415

        try:
            lines: Iterator[str] = iter_resp_lines(response)  # type: ignore[no-untyped-call]
            for line in lines:
                if not line.strip():
                    continue
                event: Obj = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    code = int(status.get("code") or 500)
                    raise (
                        Gone(str(status.get("message")))
                        if code == 410
                        else error_for_status(code, str(status.get("message")))
                    )
                yield event
        except (OSError, HTTPError, ValueError) as error:  # a reset, a TLS error, a line cut short
            raise Unavailable(f"the watch of {kind.plural} broke off: {error}") from error
        finally:
            response.close()  # never back into the pool with a watch still on it

    def create(self, kind: Kind, namespace: str, body: Obj) -> Obj:
        return self._obj(
            self.custom.create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            kind.plural,
            body,
            field_manager=self.component,
        )

    def replace_status(self, kind: Kind, body: Obj) -> Obj:
        """PUT the status subresource; the body's resourceVersion makes it fail with Conflict if stale."""
        meta = body["metadata"]
        return self._obj(
            self.custom.replace_namespaced_custom_object_status,
            GROUP,
            VERSION,
            meta["namespace"],
            kind.plural,
            meta["name"],
            body,
            field_manager=self.component,
        )

    def delete(self, kind: Kind, namespace: str, name: str, uid: str, resource_version: str) -> None:
        """Delete exactly this version of the object (preconditions): a change since the decision stops it."""
        body = {"preconditions": {"uid": uid, "resourceVersion": resource_version}}
        self._call(self.custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, kind.plural, name, body=body)

    def patch_status(
        self, kind: Kind, namespace: str, name: str, patch: Obj, resource_version: str | None = None
    ) -> Obj:
        """Merge-patch the status subresource; with a resourceVersion it fails with Conflict if stale."""
        return self._merge_patch(
            self.custom.patch_namespaced_custom_object_status, kind, namespace, name, patch, resource_version
        )

    def patch_labels(self, kind: Kind, namespace: str, name: str, labels: dict[str, str]) -> Obj:
        """Merge-patch metadata.labels (labels only: no resourceVersion needed, nothing else touched)."""
        return self.patch_spec(kind, namespace, name, {"metadata": {"labels": labels}})

    def patch_spec(self, kind: Kind, namespace: str, name: str, patch: Obj, resource_version: str | None = None) -> Obj:
        """Merge-patch the object (spec only, by convention); optionally guarded by resourceVersion."""
        return self._merge_patch(
            self.custom.patch_namespaced_custom_object, kind, namespace, name, patch, resource_version
        )

    def _merge_patch(
        self,
        fn: Callable[..., Any],
        kind: Kind,
        namespace: str,
        name: str,
        patch: Obj,
        resource_version: str | None,
    ) -> Obj:
        body = dict(patch)
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return self._obj(fn, GROUP, VERSION, namespace, kind.plural, name, body, field_manager=self.component)

    @functools.cached_property
    def apps(self) -> Any:
        import kubernetes.client  # noqa: PLC0415

        return kubernetes.client.AppsV1Api(self.api_client)

    def _raw(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """The answer as plain JSON (dicts), as for our own kinds, not the client's model objects."""
        response = self._call(fn, *args, _preload_content=False, **kwargs)
        return json.loads(response.data or b"null")

    def deployment(self, namespace: str, name: str) -> Obj:
        result: Obj = self._raw(self.apps.read_namespaced_deployment, name, namespace)
        return result

    def patch_deployment(
        self, namespace: str, name: str, patch: Obj | builtins.list[Obj], *, dry_run: bool = False
    ) -> Obj:
        """A merge patch (a dict) or a JSON patch (a list); dry_run asks the apiserver what it would store."""
        extra = {"dry_run": "All"} if dry_run else {}
        result: Obj = self._raw(
            self.apps.patch_namespaced_deployment, name, namespace, patch, field_manager=self.component, **extra
        )
        return result

    def replica_sets(self, namespace: str, selector: str) -> builtins.list[Obj]:
        result = self._raw(self.apps.list_namespaced_replica_set, namespace, label_selector=selector)
        items: builtins.list[Obj] = result.get("items", [])
        return items

    def workloads(self, namespace: str) -> builtins.list[Obj]:
        """The namespace's Deployments and StatefulSets as JSON (for their declared dependencies)."""
        items: builtins.list[Obj] = []
        for fn, kind in (
            (self.apps.list_namespaced_deployment, "Deployment"),
            (self.apps.list_namespaced_stateful_set, "StatefulSet"),
        ):
            for item in self._raw(fn, namespace).get("items", []):
                items.append({**item, "kind": kind})
        return items

    def events(self, namespace: str, field_selector: str = "", limit: int = 200) -> builtins.list[Obj]:
        """Core Events of a namespace as JSON (read-only; the model's investigation reads them)."""
        result = self._raw(self.core.list_namespaced_event, namespace, field_selector=field_selector, limit=limit)
        items: builtins.list[Obj] = result.get("items", [])
        return items

    def pods(self, namespace: str, selector: str) -> builtins.list[Obj]:
        items: builtins.list[Obj] = self._raw(self.core.list_namespaced_pod, namespace, label_selector=selector).get(
            "items", []
        )
        return items

    def delete_pod(self, namespace: str, name: str, uid: str, *, dry_run: bool = False) -> None:
        """Delete exactly that pod (a uid precondition: never a newer pod that took its name)."""
        import kubernetes.client  # noqa: PLC0415

        body = kubernetes.client.V1DeleteOptions(
            preconditions=kubernetes.client.V1Preconditions(uid=uid), dry_run=["All"] if dry_run else None
        )
        self._call(self.core.delete_namespaced_pod, name, namespace, body=body)

    def nodes(self) -> builtins.list[Obj]:
        items: builtins.list[Obj] = self._raw(self.core.list_node).get("items", [])
        return items

    def node(self, name: str) -> Obj:
        result: Obj = self._raw(self.core.read_node, name)
        return result

    def patch_node(self, name: str, patch: Obj, *, dry_run: bool = False) -> Obj:
        extra = {"dry_run": "All"} if dry_run else {}
        result: Obj = self._raw(self.core.patch_node, name, patch, field_manager=self.component, **extra)
        return result

    def autoscalers(self, namespace: str) -> builtins.list[Obj]:
        import kubernetes.client  # noqa: PLC0415

        api = kubernetes.client.AutoscalingV2Api(self.api_client)
        items: builtins.list[Obj] = self._raw(api.list_namespaced_horizontal_pod_autoscaler, namespace).get("items", [])
        return items

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """The decoded value of one key of a Secret, or None when the key is absent."""
        secret = self._call(self.core.read_namespaced_secret, name, namespace)
        data = (secret.data or {}).get(key)
        return base64.b64decode(data).decode() if data is not None else None

    def configmap_data(self, namespace: str, name: str) -> dict[str, str]:
        """A ConfigMap's data (empty when it has none)."""
        configmap = self._call(self.core.read_namespaced_config_map, name, namespace)
        return dict(configmap.data or {})

    def service(self, namespace: str, name: str) -> Obj | None:
        """A Service as JSON, or None when it does not exist (where an http step may call)."""
        try:
            result: Obj = self._raw(self.core.read_namespaced_service, name, namespace)
        except NotFound:
            return None
        return result

    def self_subject_review(self) -> Obj:
        """Who the apiserver says this client is (what `kubectl auth whoami` asks)."""
        import kubernetes.client  # noqa: PLC0415

        api = kubernetes.client.AuthenticationV1Api(self.api_client)
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        result: Obj = self._raw(api.create_self_subject_review, body)
        return result

    @property
    def apiserver_url(self) -> str:
        """The apiserver's address as this client reaches it."""
        return str(self.api_client.configuration.host)

    def namespace_exists(self, name: str) -> bool:
        try:
            self._call(self.core.read_namespace, name)
        except NotFound:
            return False
        return True

    def version(self) -> str:
        import kubernetes.client  # noqa: PLC0415

        info = self._call(kubernetes.client.VersionApi(self.api_client).get_code)
        return str(info.git_version)

    def post_event(self, obj: Obj, reason: str, message: str, *, type_: str = "Normal") -> None:
        """A core/v1 Event on the object, so `kubectl describe` shows it."""
        meta = obj["metadata"]
        now = datetime.now(UTC)
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", f"{GROUP}/{VERSION}"),
                "kind": obj.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "firstTimestamp": format_time(now),
            "lastTimestamp": format_time(now),
            "count": 1,
        }
        self._call(self.core.create_namespaced_event, meta["namespace"], event, field_manager=self.component)


class AsyncKube:
    """KubeClient's calls, run off the event loop on a bounded pool."""

    def __init__(self, client: KubeClient, workers: int = 16, event_workers: int = 2) -> None:
        self.client = client
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kube")
        # Events are for humans; their own narrow lane keeps them from slowing persistence down.
        self._events = ThreadPoolExecutor(max_workers=event_workers, thread_name_prefix="kube-events")
        self._posting: set[asyncio.Task[None]] = set()
        self._dropped_lines = Throttle()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(fn, *args, **kwargs))

    async def get(self, kind: Kind, namespace: str, name: str) -> Obj:
        return await self.run(self.client.get, kind, namespace, name)

    async def list(
        self, kind: Kind, namespace: str | None = None, label_selector: str = "", limit: int = 0
    ) -> list[Obj]:
        return await self.run(self.client.list, kind, namespace, label_selector, limit)

    async def pages(self, kind: Kind, namespace: str | None, limit: int = 500) -> AsyncIterator[Page]:
        """A LIST a page at a time: ten thousand objects are never one response held in memory."""
        token: str | None = None
        while True:
            page = await self.run(self.client.list_page, kind, namespace, limit, token)
            yield page
            token = page.token
            if token is None:
                return

    async def watch(
        self, kind: Kind, namespace: str | None, resource_version: str, seconds: int = 300
    ) -> AsyncIterator[Obj]:
        """KubeClient.watch on a thread of its own (a watch holds its connection for minutes: never a pool
        worker), its events handed to the loop as they come. A daemon thread: a process that stops never
        waits for the server to end the watch."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Obj | BaseException | None] = asyncio.Queue()
        left = threading.Event()  # the consumer is gone: the thread stops at the next line it reads

        def hand(item: Obj | BaseException | None) -> bool:
            if left.is_set():
                return False
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # the loop is closed: the operator stopped
                return False
            return True

        def follow() -> None:
            try:
                for event in self.client.watch(kind, namespace, resource_version, seconds):
                    if not hand(event):
                        return
            except Exception as error:
                hand(error)
            else:
                hand(None)

        threading.Thread(target=follow, name=f"watch-{kind.plural}-{namespace or 'all'}", daemon=True).start()
        try:
            while True:
                item = await events.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            left.set()

    async def create(self, kind: Kind, namespace: str, body: Obj) -> Obj:
        return await self.run(self.client.create, kind, namespace, body)

    async def replace_status(self, kind: Kind, body: Obj) -> Obj:
        return await self.run(self.client.replace_status, kind, body)

    async def patch_labels(self, kind: Kind, namespace: str, name: str, labels: dict[str, str]) -> Obj:
        return await self.run(self.client.patch_labels, kind, namespace, name, labels)

    async def patch_status(
        self, kind: Kind, namespace: str, name: str, patch: Obj, resource_version: str | None = None
    ) -> Obj:
        return await self.run(self.client.patch_status, kind, namespace, name, patch, resource_version)

    async def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        return await self.run(self.client.secret_value, namespace, name, key)

    async def configmap_data(self, namespace: str, name: str) -> dict[str, str]:
        return await self.run(self.client.configmap_data, namespace, name)

    async def workloads(self, namespace: str) -> builtins.list[Obj]:
        return await self.run(self.client.workloads, namespace)

    async def replica_sets(self, namespace: str, selector: str) -> builtins.list[Obj]:
        return await self.run(self.client.replica_sets, namespace, selector)

    async def events(self, namespace: str, field_selector: str = "", limit: int = 200) -> builtins.list[Obj]:
        return await self.run(self.client.events, namespace, field_selector, limit)

    async def deployment(self, namespace: str, name: str) -> Obj:
        return await self.run(self.client.deployment, namespace, name)

    async def delete(self, kind: Kind, namespace: str, name: str, uid: str, resource_version: str) -> None:
        await self.run(self.client.delete, kind, namespace, name, uid, resource_version)

    async def patch_spec(self, kind: Kind, namespace: str, name: str, patch: Obj) -> Obj:
        return await self.run(self.client.patch_spec, kind, namespace, name, patch)

    async def namespace_exists(self, name: str) -> bool:
        return await self.run(self.client.namespace_exists, name)

    async def version(self) -> str:
        return await self.run(self.client.version)

    async def post_event(self, obj: Obj, reason: str, message: str, *, type_: str = "Normal") -> None:
        """Best effort: an Event that cannot be posted is logged, never fatal."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._events, partial(self.client.post_event, obj, reason, message, type_=type_))
        except KubeError as error:
            log.warning("could not post event %s on %s: %s", reason, obj["metadata"].get("name"), error)

    def post_event_soon(self, obj: Obj, reason: str, message: str, *, type_: str = "Normal") -> None:
        """post_event without waiting for it: Events are for humans and must never hold a response up.

        What waits is only what the Event names (not the whole object: ten thousand new incidents
        queued ten thousand whole Incidents behind the Events lane), and at most MAX_PENDING_EVENTS
        of them; past that an Event is dropped, counted and logged (throttled)."""
        if len(self._posting) >= MAX_PENDING_EVENTS and type_ != "Warning":  # warnings are never dropped
            from incidentops.metrics import EVENTS_DROPPED  # noqa: PLC0415 - the plugin never loads metrics

            EVENTS_DROPPED.inc()
            self._dropped_lines.log(log, logging.WARNING, "events",
                "more than %d Events are waiting to be posted: %s on %s dropped (and others like it)",
                MAX_PENDING_EVENTS, reason, obj["metadata"].get("name"))  # fmt: skip
            return
        meta = obj["metadata"]
        ref = {
            "apiVersion": obj.get("apiVersion") or f"{GROUP}/{VERSION}",
            "kind": obj.get("kind"),
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")},
        }
        task = asyncio.create_task(self.post_event(ref, reason, message, type_=type_))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._events.shutdown(wait=False, cancel_futures=True)
