"""http: call a URL the runbook names (clear a cache, flip a feature flag), expecting a status.

The URL comes from the runbook, never from alert text, and it may only reach what the operator's
settings allow (incidentops.egress: Services of the incident's own namespace, and
INCIDENTOPS_HTTP_ALLOW); the check runs at the dry run, again before the call, and on every
redirect, which is followed only to the same scheme, host and port. The connection goes to the
address that was checked. The step's key travels as an Idempotency-Key header. What is recorded
is the status code and a short, redacted excerpt of the answer, never the whole body: status is
readable by many more people than the service the step called.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from incidentops.egress import Destination, EgressPolicy, Refused
from incidentops.kube import KubeClient
from incidentops.redaction import excerpt, safe_url
from incidentops.remediation.actions.base import ActionError, Context, Plan, Replans, refused
from incidentops.remediation.targets import Target

MAX_REDIRECTS = 5
EXCERPT = 200


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def _checked(kube: KubeClient | None, egress: EgressPolicy, url: str, namespace: str) -> Destination:
    """The checked destination; without a client (the plugin's dry run) no Service can be read."""
    return egress.resolve(url, namespace, kube.service if kube is not None else None)


class HttpCall(Replans):
    repeat_in_doubt = False  # a call leaves no trace to check: in doubt after a crash, the step fails instead

    def plan(self, kube: KubeClient, target: Target, params: dict[str, Any], key: str, context: Context) -> Plan:
        url = params.get("url")
        if not url:
            return refused(target, "InvalidParams", "http needs params.url")
        method = str(params.get("method") or "GET")
        shown = f"{method} {safe_url(str(url))}"
        if context.egress is not None:
            try:
                destination = _checked(kube, context.egress, str(url), target.namespace)
            except Refused as refusal:
                return refused(target, refusal.reason, f"{shown}: {refusal}")
            shown += f" ({destination.why}, {destination.address})"
        call = {
            "url": str(url),
            "method": method,
            "expect": params.get("expectStatus"),
            "key": key,
            "timeout": params.get("timeout"),
            "namespace": target.namespace,
            "egress": context.egress,  # checked again at the call, and on every redirect
        }
        return Plan(target, call, [shown], {}, reason=shown)

    def apply(self, kube: KubeClient, plan: Plan) -> str | None:
        call = plan.patch if isinstance(plan.patch, dict) else {}
        egress = call.get("egress")
        if not isinstance(egress, EgressPolicy):
            raise ActionError("http steps need the operator's egress settings; refused")
        url, method = str(call["url"]), str(call["method"])
        timeout = float(call.get("timeout") or 10.0)
        headers = {"Idempotency-Key": str(call["key"]), "User-Agent": "incidentops"}
        with httpx.Client(follow_redirects=False, timeout=timeout, trust_env=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                try:
                    destination = _checked(kube, egress, url, str(call.get("namespace") or plan.target.namespace))
                except Refused as refusal:
                    raise ActionError(f"{method} {safe_url(url)} refused ({refusal.reason}): {refusal}") from None
                pinned, host, extensions = destination.request(url)
                try:
                    response = client.request(method, pinned, headers={**headers, **host}, extensions=extensions)
                except httpx.HTTPError as error:
                    raise ActionError(f"{method} {safe_url(url)} failed: {type(error).__name__}") from None
                if not response.is_redirect:
                    break
                following = urljoin(url, response.headers.get("location", ""))
                if _origin(following) != _origin(url):
                    raise ActionError(
                        f"{method} {safe_url(url)} redirected to another host ({safe_url(following)}): refused"
                    )
                url = following
            else:
                raise ActionError(f"{method} {safe_url(str(call['url']))}: more than {MAX_REDIRECTS} redirects")
        expected = call.get("expect")
        ok = response.status_code == expected if expected else response.is_success
        said = excerpt(response.text, EXCERPT)
        answer = f"{method} {safe_url(url)} answered {response.status_code}" + (f": {said}" if said else "")
        if not ok:
            raise ActionError(f"{answer} (expected {expected or '2xx'})")
        return answer

    def happened(self, kube: KubeClient, plan: Plan, key: str) -> bool:
        return False  # a call leaves no trace to look for; in doubt, the shell fails the step instead

    def undo(self, kube: KubeClient, target: Target, before: dict[str, Any], key: str, context: Context) -> Plan:
        return Plan(target, None, reason="a call cannot be undone")


ACTION = HttpCall()
