"""Anthropic Messages API (POST /anthropic/v1/messages), validated as the API does and answered by a model to order.

Triage talks to Claude, which CI and the demo cannot reach. Each request is answered by the next
queued script step when there is one (tests drive every turn: tool calls, submissions, errors,
malformed answers, slowness), else by the current mode: "auto" plays a diligent model (it calls
every read tool once, then submits values built from the submit tool's schema), "obey" plays a
model that a prompt injection turned against its user (it follows the last `@@model {json}`
directive anywhere in what it is shown), so security tests can prove the operator contains it.

This module holds the route, the script and the control methods; requests are checked in
`anthropic_validation`, and the modes answer in `anthropic_answers` (tool inputs from `anthropic_schema`).
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from aiohttp import web

from localenv.standins.anthropic_answers import (
    _Answer,
    _first_submit,
    _new_id,
    _tool_use,
    auto_answer,
    obey_answer,
)
from localenv.standins.anthropic_validation import _blocks, _text, refusal
from localenv.standins.core import (
    INJECTED,
    _anthropic_error,
    _AnthropicState,
    _Incoming,
    _is_int,
    _is_number,
    _list,
    _obj,
    _one_line,
    _State,
)

MODES = ("auto", "obey")
MALFORMED = b'{"type": "message", "content": "oops"}'
"""What a `{"malformed": true}` step answers (200, JSON): a "message" without id, model, usage or content blocks."""
TRUNCATED = b'{"id": "msg_01trunc", "type": "message", "role": "assistant", "content": [{"type": "te'
"""What a `{"malformed": "truncated"}` step answers (200, application/json): a body cut mid-way."""

_STEP_KINDS = ("tool_use", "tool_uses", "submit", "malformed", "error")
_STEP_KEYS = frozenset({*_STEP_KINDS, "text", "tool", "retry_after", "message", "delay", "usage", "stop_reason"})


def _step_answer(step: dict[str, Any], data: dict[str, Any]) -> _Answer | None:
    """A script step's answer; None for a submit step when the request offers no submit_* tool."""
    content = [_text(step["text"])] if "text" in step else []
    uses = [step["tool_use"]] if "tool_use" in step else list(step.get("tool_uses", []))
    content.extend(_tool_use(use["name"], use.get("input", {}), use.get("id")) for use in uses)
    if "submit" in step:
        submit = _first_submit(data)
        name = step.get("tool") or (submit["name"] if submit else None)
        if name is None:
            return None
        content.append(_tool_use(name, step["submit"]))
    stop = "tool_use" if any(block["type"] == "tool_use" for block in content) else "end_turn"
    return _Answer(content, step.get("stop_reason", stop), dict(step.get("usage", {})))


def _message(data: dict[str, Any], answer: _Answer, size: int) -> web.Response:
    usage = {
        "input_tokens": max(1, size // 4),
        "output_tokens": max(1, len(json.dumps(answer.content)) // 4),
    }
    usage.update(answer.usage)
    body = {
        "id": _new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": data["model"],
        "content": answer.content,
        "stop_reason": answer.stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    return web.json_response(body, headers={"request-id": _new_id("req_")})


# script steps, checked when queued so a typo fails the test that wrote it


def checked_step(step: Any) -> dict[str, Any]:
    """A copy of a script step, or ValueError saying what is wrong with it."""
    if not isinstance(step, dict):
        raise ValueError(f"a script step must be an object, not {step!r}")
    unknown = sorted(set(step) - _STEP_KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in script step {step!r}; expected some of {sorted(_STEP_KEYS)}")
    kinds = [kind for kind in _STEP_KINDS if kind in step]
    if len(kinds) > 1 or not (kinds or "text" in step):
        raise ValueError(f"a script step needs exactly one of {', '.join(_STEP_KINDS)} (or only text): {step!r}")
    problems = {
        "tool_use": not _use_ok(step.get("tool_use")),
        "tool_uses": not (isinstance(step.get("tool_uses"), list) and step["tool_uses"])
        or not all(_use_ok(use) for use in step.get("tool_uses", [])),
        "submit": not isinstance(step.get("submit"), dict),
        "malformed": step.get("malformed") not in (True, "truncated"),
        "error": not (_is_int(step.get("error")) and 400 <= step["error"] <= 599),
        "text": not isinstance(step.get("text"), str),
        "tool": not isinstance(step.get("tool"), str) or "submit" not in step,
        "retry_after": not (_is_number(step.get("retry_after")) and step["retry_after"] >= 0) or "error" not in step,
        "message": not isinstance(step.get("message"), str) or "error" not in step,
        "delay": not (_is_number(step.get("delay")) and step["delay"] >= 0),
        "usage": not (isinstance(step.get("usage"), dict) and all(_is_int(v) for v in step["usage"].values())),
        "stop_reason": not isinstance(step.get("stop_reason"), str),
    }
    bad = [key for key, problem in problems.items() if key in step and problem]
    if bad:
        raise ValueError(f"bad {', '.join(bad)} in script step {step!r}")
    copied: dict[str, Any] = json.loads(json.dumps(step))
    return copied


def _use_ok(use: Any) -> bool:
    return (
        isinstance(use, dict)
        and isinstance(use.get("name"), str)
        and bool(use["name"])
        and isinstance(use.get("input", {}), dict)
        and isinstance(use.get("id", ""), str)
    )


def _tool_name_of(messages: list[Any], use_id: str) -> str:
    for message in reversed(messages):
        for block in _blocks(_obj(message).get("content")):
            if block.get("type") == "tool_use" and block.get("id") == use_id:
                return str(block.get("name"))
    return use_id


def describe_messages(data: Any, answer: Any) -> str:
    """One line for a Messages request and its answer, e.g. `messages (model m, 3 messages, last: tool_result x)`."""
    request = _obj(data)
    messages = _list(request.get("messages"))
    last = "nothing"
    if messages:
        blocks = _blocks(_obj(messages[-1]).get("content"))
        results = [_tool_name_of(messages, str(b.get("tool_use_id"))) for b in blocks if b.get("type") == "tool_result"]
        texts = [str(b.get("text")) for b in blocks if b.get("type") == "text"]
        last = f"tool_result {', '.join(results)}" if results else f'text "{_one_line(" ".join(texts), 60)}"'
    line = f"messages (model {request.get('model', '?')}, {len(messages)} messages, last: {last})"
    content = _blocks(_obj(answer).get("content"))
    uses = [str(b.get("name")) for b in content if b.get("type") == "tool_use"]
    if uses:
        return f"{line} -> tool_use {', '.join(uses)}"
    said = " ".join(str(b.get("text")) for b in content if b.get("type") == "text")
    return f'{line} -> text "{_one_line(said, 60)}"' if content else line


class AnthropicMessages:
    """The Messages API: POST /anthropic/v1/messages, answered by the script, else by the mode."""

    _state: _State

    def anthropic_script(self, steps: list[dict[str, Any]]) -> None:
        """Queue `steps`; each request consumes the first one (before the mode answers). All or none are queued."""
        checked = [checked_step(step) for step in steps]
        with self._state.cond:
            self._state.anthropic.script.extend(checked)

    def anthropic_auto(self, answers: dict[str, dict[str, Any]] | None = None, latency: float = 0.0) -> None:
        """Configure the auto model (obey mode falls back to it): values for submit_* tools by tool name, and a
        delay before every answer. The mode is not changed."""
        answers = {} if answers is None else answers
        if not isinstance(answers, dict) or not all(isinstance(values, dict) for values in answers.values()):
            raise ValueError(f"answers must map a submit tool name to property values, not {answers!r}")
        if not (_is_number(latency) and latency >= 0):
            raise ValueError(f"latency must be a number of seconds >= 0, not {latency!r}")
        copied: dict[str, dict[str, Any]] = json.loads(json.dumps(answers))
        with self._state.cond:
            self._state.anthropic.answers = copied
            self._state.anthropic.latency = float(latency)

    def anthropic_mode(self, mode: str) -> None:
        """Either "auto" (a diligent model) or "obey" (a model following injected `@@model` directives)."""
        if mode not in MODES:
            raise ValueError(f"unknown anthropic mode {mode!r}; expected one of {', '.join(MODES)}")
        with self._state.cond:
            self._state.anthropic.mode = mode

    def anthropic_reset(self) -> None:
        """Drop queued steps and answers: auto mode, no latency."""
        with self._state.cond:
            self._state.anthropic = _AnthropicState()

    async def _anthropic_messages(self, incoming: _Incoming) -> web.Response:
        refused = refusal(incoming)
        if refused is not None:
            return refused
        data = _obj(incoming.json)
        with self._state.cond:
            state = self._state.anthropic
            step = state.script.popleft() if state.script else None
            mode, answers, latency = state.mode, copy.deepcopy(state.answers), state.latency
        delay = latency + float((step or {}).get("delay", 0))
        if delay > 0:
            await asyncio.sleep(delay)
        if step is None:
            answer = obey_answer(data, answers) if mode == "obey" else auto_answer(data, answers)
            return _message(data, answer, len(incoming.body))
        return _scripted(step, data, len(incoming.body))

    async def _anthropic_not_found(self, incoming: _Incoming) -> web.Response:
        return _anthropic_error(404, "Not Found")


def _scripted(step: dict[str, Any], data: dict[str, Any], size: int) -> web.Response:
    if "error" in step:
        response = _anthropic_error(step["error"], step.get("message"), step.get("retry_after"))
    elif step.get("malformed"):
        body = TRUNCATED if step["malformed"] == "truncated" else MALFORMED
        response = web.Response(body=body, content_type="application/json")
    else:
        answer = _step_answer(step, data)
        if answer is not None:
            return _message(data, answer, size)
        response = _anthropic_error(500, "stand-in script: a submit step, but the request offers no submit_* tool")
    response[INJECTED] = True
    return response
