"""The project's objects on a real cluster, for tests, benchmarks and the demo: create, find, wait.

Plain dicts in and out (as kubectl sees them), so what a test asserts is what a user would read.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, cast

from kubernetes import client as k8s

from localenv.procs import wait_until

GROUP, VERSION = "incidentops.dev", "v1alpha1"
PLURALS = {
    "Incident": "incidents",
    "Runbook": "runbooks",
    "EscalationPolicy": "escalationpolicies",
    "DetectionRule": "detectionrules",
    "Postmortem": "postmortems",
}
Obj = dict[str, Any]


def _custom(api: k8s.ApiClient) -> Any:
    return k8s.CustomObjectsApi(api)


def create(api: k8s.ApiClient, namespace: str, kind: str, name: str, spec: Obj, **meta: Any) -> Obj:
    """Create one of the project's objects (metadata extras such as labels as keyword arguments)."""
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name, **meta}, "spec": spec}
    return cast(Obj, _custom(api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], body))


def get(api: k8s.ApiClient, namespace: str, kind: str, name: str) -> Obj:
    return cast(Obj, _custom(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name))


def listed(api: k8s.ApiClient, namespace: str, kind: str = "Incident") -> list[Obj]:
    found = cast(Obj, _custom(api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind]))
    return cast(list[Obj], found["items"])


def patch_spec(api: k8s.ApiClient, namespace: str, kind: str, name: str, spec: Obj) -> Obj:
    patch = {"spec": spec}
    return cast(Obj, _custom(api).patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name, patch))


def incident_of(api: k8s.ApiClient, namespace: str, service: str) -> Obj | None:
    """The newest incident of a service in the namespace, if any."""
    found = [i for i in listed(api, namespace) if (i.get("spec") or {}).get("service") == service]
    return max(found, key=lambda i: i["metadata"]["creationTimestamp"]) if found else None


def wait_incident(
    api: k8s.ApiClient,
    namespace: str,
    service: str,
    until: Callable[[Obj], bool],
    what: str,
    timeout: float = 60.0,
) -> Obj:
    """The service's incident once `until(incident)` holds (its status read as a user would)."""

    def reached() -> Obj | None:
        found = incident_of(api, namespace, service)
        return found if found is not None and until(found) else None

    result: Obj = wait_until(reached, timeout=timeout, interval=0.2, what=f"incident of {service}: {what}")
    return result


def status(obj: Obj | None, *path: str) -> Any:
    """A field of an object's status by path (None when any part is missing)."""
    node: Any = (obj or {}).get("status") or {}
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def events_of(api: k8s.ApiClient, namespace: str, kind: str, name: str) -> list[str]:
    """The Events on one object, as `reason: message`."""
    items = k8s.CoreV1Api(api).list_namespaced_event(namespace).items
    return [
        f"{e.reason}: {e.message}" for e in items if e.involved_object.kind == kind and e.involved_object.name == name
    ]


def secret(api: k8s.ApiClient, namespace: str, name: str, data: dict[str, str]) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    body = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name), data=encoded)
    k8s.CoreV1Api(api).create_namespaced_secret(namespace, body)


def configmap(api: k8s.ApiClient, namespace: str, name: str, data: dict[str, str]) -> None:
    body = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=name), data=data)
    k8s.CoreV1Api(api).create_namespaced_config_map(namespace, body)


def wait_event(api: k8s.ApiClient, namespace: str, kind: str, name: str, prefix: str, timeout: float = 30.0) -> str:
    """The first Event on the object that starts with `prefix` (`reason: message`), once it was posted."""

    def posted() -> str | None:
        return next((e for e in events_of(api, namespace, kind, name) if e.startswith(prefix)), None)

    found: str = wait_until(posted, timeout=timeout, interval=0.2, what=f"event {prefix!r} on {kind} {name}")
    return found
