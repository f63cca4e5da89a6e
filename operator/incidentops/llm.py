"""The one place that calls a language model: Anthropic's Messages API through the anthropic SDK.

Bounded by construction: an hourly call budget per process, a timeout per call (the caller's
deadline), no retries of our own or the SDK's (a failure leaves the rules' result standing, so
a retry would only add cost and latency), and a per-answer output bound. Failures come back as
an LlmError with a stable reason (timeout, rate_limited, server_error, unavailable, refused...)
for status and metrics; their messages are redacted of the key.

The key comes from a Secret (INCIDENTOPS_LLM_API_KEY_SECRET) or the SDK's ANTHROPIC_API_KEY;
ANTHROPIC_BASE_URL, read by the SDK, points it at a proxy, a gateway or the local stand-in. The SDK
is imported on first use (the plugin and a process without a key never pay for it), and its
loggers stay at WARNING: at DEBUG they would print requests.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from incidentops.redaction import excerpt

log = logging.getLogger(__name__)
HOUR = 3600.0
_QUIET = ("anthropic", "httpx2", "httpcore2", "httpx", "httpcore")


class LlmError(Exception):
    """A call that gave no usable answer; `reason` is one of triage's fallback reasons."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Reply:
    """One answer: its content blocks as plain dicts (type text or tool_use), why it stopped, its usage."""

    content: list[dict[str, Any]]
    stop_reason: str | None
    tokens_in: int
    tokens_out: int

    def tool_uses(self) -> list[dict[str, Any]]:
        return [block for block in self.content if block.get("type") == "tool_use"]


@dataclass
class CallBudget:
    """At most `per_hour` calls in any sliding hour, in this process."""

    per_hour: int
    clock: Callable[[], float] = time.monotonic
    _calls: deque[float] = field(default_factory=deque)

    def take(self) -> bool:
        now = self.clock()
        while self._calls and now - self._calls[0] >= HOUR:
            self._calls.popleft()
        if len(self._calls) >= self.per_hour:
            return False
        self._calls.append(now)
        return True

    def left(self) -> int:
        now = self.clock()
        return self.per_hour - sum(1 for at in self._calls if now - at < HOUR)


def _blocks(content: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for block in content or []:
        kind = getattr(block, "type", None)
        if kind == "text":
            out.append({"type": "text", "text": str(getattr(block, "text", ""))})
        elif kind == "tool_use":
            raw_input = getattr(block, "input", None)
            out.append(
                {
                    "type": "tool_use",
                    "id": str(getattr(block, "id", "")),
                    "name": str(getattr(block, "name", "")),
                    "input": raw_input,
                }
            )
    return out


class Llm:
    """An AsyncAnthropic client with the operator's bounds."""

    def __init__(self, *, api_key: str | None, model: str, max_tokens: int, budget: CallBudget) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.budget = budget
        self._key = api_key
        self._client: Any = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """What redaction must take out of anything this client says."""
        return (self._key,) if self._key else ()

    async def load(self) -> None:
        """Import the SDK now (a second or two, off the event loop), not when the first incident waits for it."""
        await asyncio.to_thread(importlib.import_module, "anthropic")
        self._sdk()

    def _sdk(self) -> Any:
        if self._client is None:
            import anthropic  # noqa: PLC0415 - heavy; only a process that triages with a model loads it

            for name in _QUIET:
                logging.getLogger(name).setLevel(logging.WARNING)
            self._client = anthropic.AsyncAnthropic(api_key=self._key, max_retries=0)
        return self._client

    async def create(
        self,
        *,
        system: str,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        tool_choice: dict[str, Any],
        within: float,
        max_tokens: int | None = None,
    ) -> Reply:
        """One Messages API call within the hourly budget; LlmError for anything that is not an answer."""
        if not self.budget.take():
            raise LlmError("call_budget", f"the hourly budget of {self.budget.per_hour} model calls is spent")
        import anthropic  # noqa: PLC0415

        client = self._sdk()
        try:
            message = await client.messages.create(
                model=self.model,
                max_tokens=max_tokens or self.max_tokens,
                system=system,
                messages=list(messages),
                tools=list(tools),
                tool_choice=tool_choice,
                timeout=max(0.1, within),
            )
        except anthropic.APITimeoutError:
            raise LlmError("timeout", f"no answer within {within:.1f}s") from None
        except anthropic.RateLimitError as error:
            after = error.response.headers.get("retry-after")
            raise LlmError("rate_limited", "429 rate limited" + (f" (retry-after {after}s)" if after else "")) from None
        except anthropic.APIStatusError as error:
            reason = "server_error" if error.status_code >= 500 else "refused"
            raise LlmError(reason, f"{error.status_code}: {self._said(str(error.message))}") from None
        except anthropic.APIConnectionError as error:
            raise LlmError("unavailable", f"cannot reach the Messages API: {self._said(str(error))}") from None
        except anthropic.AnthropicError as error:  # an answer the SDK could not read, a missing credential
            raise LlmError("invalid_answer", f"unreadable answer: {self._said(str(error))}") from None
        usage = getattr(message, "usage", None)
        content = _blocks(getattr(message, "content", None))
        if not isinstance(getattr(message, "content", None), list):
            raise LlmError("invalid_answer", "the answer had no content blocks")
        return Reply(
            content,
            getattr(message, "stop_reason", None),
            int(getattr(usage, "input_tokens", 0) or 0),
            int(getattr(usage, "output_tokens", 0) or 0),
        )

    def _said(self, text: str) -> str:
        return excerpt(text, 300, self.secrets)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()
