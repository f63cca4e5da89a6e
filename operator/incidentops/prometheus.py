"""The one place that queries Prometheus (prometheus-api-client), with errors callers can act on.

Queries are synchronous (requests underneath); the operator runs them off the event loop. Two
kinds of failure matter and are kept apart: Prometheus refused the query (bad PromQL: a person
must fix the runbook or rule) and Prometheus could not be asked (down, slow: try again later,
and never read the silence as "all clear").
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests import RequestException
from urllib3.util.retry import Retry

from incidentops.redaction import origin, redact

# urllib3 logs every retry of a refused connection; with a thousand rules and Prometheus down that is
# a flood. The callers log what failed, once, in their own words.
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


class PrometheusError(Exception):
    """A query got no answer; `unreachable` tells an outage from a refused query."""

    def __init__(self, message: str, *, unreachable: bool) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True)
class Series:
    """One series of an instant vector: its labels and value."""

    labels: dict[str, str] = field(default_factory=dict)
    value: float = 0.0

    def __str__(self) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()) if k != "__name__")
        return f"{self.labels.get('__name__', '')}{{{inner}}} {self.value:g}"


_BODY = re.compile(r"\((b?'.*'|b?\".*\")\)\s*$", re.S)


def _refusal(error: PrometheusApiClientException) -> str:
    """Prometheus' own error text out of the client's "HTTP Status Code 400 (b'{...}')" message."""
    text = str(error)
    found = _BODY.search(text)
    if found:
        raw = found.group(1).lstrip("b")[1:-1].encode().decode("unicode_escape")
        try:
            answer = json.loads(raw)
            return f"{answer.get('errorType', 'error')}: {answer.get('error', raw)}"
        except ValueError:
            return raw[:512]
    return text[:512]


class Prometheus:
    """Instant queries against one Prometheus, with a bearer token and a timeout."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.url = url.rstrip("/")
        self.timeout = timeout
        # One quick retry: the caller polls anyway, and a slow answer is worse than an honest error.
        self._client = PrometheusConnect(
            url=self.url, headers=headers, retry=Retry(total=1, backoff_factor=0.2), timeout=timeout
        )

    def query(self, expr: str, at: datetime | None = None) -> list[Series]:
        """The instant vector `expr` returns now (or at `at`); raises PrometheusError."""
        params = {"time": f"{at.timestamp():.3f}"} if at is not None else None
        try:
            result = self._client.custom_query(expr, params=params)
        except PrometheusApiClientException as error:
            code = re.search(r"HTTP Status Code (\d+)", str(error))
            status = int(code.group(1)) if code else 0
            unreachable = status >= 500 or status in (0, 429)
            raise PrometheusError(f"Prometheus refused the query: {_refusal(error)}", unreachable=unreachable) from None
        except (RequestException, OSError) as error:
            raise PrometheusError(
                f"Prometheus at {origin(self.url)} did not answer: {redact(str(error), [self.url])}", unreachable=True
            ) from None
        except ValueError as error:  # an answer that is not JSON: a proxy's error page, say
            raise PrometheusError(
                f"Prometheus at {origin(self.url)} answered something else: {error}", unreachable=True
            ) from None
        series = []
        for item in result or []:
            value = item.get("value") or [0, "nan"]
            try:
                number = float(value[1])
            except (TypeError, ValueError, IndexError):
                number = float("nan")
            series.append(Series({str(k): str(v) for k, v in (item.get("metric") or {}).items()}, number))
        return series
