"""http: call a URL the runbook names (clear a cache, flip a feature flag), expecting a status.

The URL comes from the runbook, never from alert text. Redirects are followed only on the same
scheme, host and port (a redirect elsewhere is refused: the runbook's author chose where the
call goes). The step's key travels as an Idempotency-Key header, so a call repeated after a
crash can be recognised by a service that honours it. The answer is recorded, bounded.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from incidentops.kube import KubeClient
from incidentops.remediation.actions.base import ActionError, Context, Plan, Target, refused

MAX_REDIRECTS = 5
MAX_RECORDED = 1024


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


class HttpCall:
    def plan(self, kube: KubeClient, target: Target, params: dict[str, Any], key: str, context: Context) -> Plan:
        url = params.get("url")
        if not url:
            return refused(target, "InvalidParams", "http needs params.url")
        method = str(params.get("method") or "GET")
        call = {
            "url": str(url),
            "method": method,
            "expect": params.get("expectStatus"),
            "key": key,
            "timeout": params.get("timeout"),
        }
        return Plan(target, call, [f"{method} {url}"], {}, reason=f"{method} {url}")

    def apply(self, kube: KubeClient, plan: Plan) -> str | None:
        call = plan.patch if isinstance(plan.patch, dict) else {}
        url, method = call["url"], call["method"]
        timeout = float(call.get("timeout") or 10.0)
        headers = {"Idempotency-Key": str(call["key"]), "User-Agent": "incidentops"}
        with httpx.Client(follow_redirects=False, timeout=timeout) as client:
            for _ in range(MAX_REDIRECTS + 1):
                try:
                    response = client.request(method, url, headers=headers)
                except httpx.HTTPError as error:
                    raise ActionError(f"{method} {url} failed: {error}") from None
                if not response.is_redirect:
                    break
                following = urljoin(url, response.headers.get("location", ""))
                if _origin(following) != _origin(url):
                    raise ActionError(f"{method} {url} redirected to another host ({following}): refused")
                url = following
            else:
                raise ActionError(f"{method} {call['url']}: more than {MAX_REDIRECTS} redirects")
        body = response.text[:MAX_RECORDED]
        expected = call.get("expect")
        ok = response.status_code == expected if expected else response.is_success
        answer = f"{method} {url} answered {response.status_code}: {body}"
        if not ok:
            wanted = expected or "2xx"
            raise ActionError(f"{answer[:MAX_RECORDED]} (expected {wanted})")
        return answer[: MAX_RECORDED + 200]

    def happened(self, kube: KubeClient, plan: Plan, key: str) -> bool:
        return False  # a call leaves no trace to look for: in doubt, it is made again with the same key

    def undo(self, kube: KubeClient, target: Target, before: dict[str, Any], key: str, context: Context) -> Plan:
        return Plan(target, None, reason="a call cannot be undone")


ACTION = HttpCall()
