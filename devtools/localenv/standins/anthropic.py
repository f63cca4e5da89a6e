"""Anthropic Messages API (POST /anthropic/v1/messages), validated as the API does and answered by a model to order.

Triage talks to Claude, which CI and the demo cannot reach. Each request is answered by the next
queued script step when there is one (tests drive every turn: tool calls, submissions, errors,
malformed answers, slowness), else by the current mode: "auto" plays a diligent model (it calls
every read tool once, then submits values built from the submit tool's schema), "obey" plays a
model that a prompt injection turned against its user (it follows the last `@@model {json}`
directive anywhere in what it is shown), so security tests can prove the operator contains it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from localenv.standins.core import (
    INJECTED,
    _anthropic_error,
    _AnthropicState,
    _Incoming,
    _now_iso,
    _obj,
    _one_line,
    _State,
)

MODES = ("auto", "obey")
MARKER = "@@model"
ECHO_LIMIT = 20_000
DIGEST_LIMIT = 200
MALFORMED = b'{"type": "message", "content": "oops"}'
"""What a `{"malformed": true}` step answers (200, JSON): a "message" without id, model, usage or content blocks."""
TRUNCATED = b'{"id": "msg_01trunc", "type": "message", "role": "assistant", "content": [{"type": "te'
"""What a `{"malformed": "truncated"}` step answers (200, application/json): a body cut mid-way."""

_ALPHABET = string.ascii_letters + string.digits
_DECODER = json.JSONDecoder()
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
_STEP_KINDS = ("tool_use", "tool_uses", "submit", "malformed", "error")
_STEP_KEYS = frozenset({*_STEP_KINDS, "text", "tool", "retry_after", "message", "delay", "usage", "stop_reason"})
_REASONING = ("reason", "summary", "cause", "explanation", "rationale", "analysis")
_NESTING = 8


@dataclass
class _Answer:
    content: list[dict[str, Any]]
    stop_reason: str = "end_turn"
    usage: dict[str, int] = field(default_factory=dict)


def _new_id(prefix: str) -> str:
    return f"{prefix}01" + "".join(secrets.choice(_ALPHABET) for _ in range(22))


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _tool_use(name: str, tool_input: dict[str, Any], use_id: str | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": use_id or _new_id("toolu_"), "name": name, "input": tool_input}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any, default: int) -> int:
    return value if _is_int(value) else default


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# request validation: the first thing the real API would refuse, worded as it words it


def request_error(data: Any) -> str | None:
    """What the Messages API would answer 400 to in `data` (None when it would accept it)."""
    if not isinstance(data, dict):
        return "request body must be a JSON object"
    for name in ("model", "max_tokens", "messages"):
        if name not in data:
            return f"{name}: Field required"
    if not isinstance(data["model"], str) or not data["model"]:
        return "model: Input should be a valid string"
    if not _is_int(data["max_tokens"]):
        return "max_tokens: Input should be a valid integer"
    if data["max_tokens"] < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    if data.get("stream"):
        return "stream: the stand-in does not stream; call messages.create without stream"
    return _system_error(data.get("system")) or _tools_error(data) or _messages_error(data)


def _system_error(system: Any) -> str | None:
    if system is None or isinstance(system, str):
        return None
    if not isinstance(system, list):
        return "system: Input should be a valid string or list"
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            return f"system.{j}: Input should be a text block"
    return None


def _tools_error(data: dict[str, Any]) -> str | None:
    tools = data.get("tools")
    if tools is not None and not isinstance(tools, list):
        return "tools: Input should be a valid list"
    names: set[str] = set()
    for k, tool in enumerate(tools or []):
        if not isinstance(tool, dict):
            return f"tools.{k}: Input should be a valid dictionary"
        name = tool.get("name")
        if tool.get("type") not in (None, "custom"):  # a server tool (web search...): not checked further
            names.add(str(name))
            continue
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            return f"tools.{k}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
        if name in names:
            return "tools: Tool names must be unique."
        names.add(name)
        if "description" in tool and not isinstance(tool["description"], str):
            return f"tools.{k}.custom.description: Input should be a valid string"
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            return f"tools.{k}.custom.input_schema: Field required"
        if schema.get("type") != "object":
            return f"tools.{k}.custom.input_schema.type: Input should be 'object'"
    choice = data.get("tool_choice")
    if choice is None:
        return None
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        return "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"
    if not names:
        return "tool_choice may only be specified while providing tools"
    if choice["type"] == "tool" and choice.get("name") not in names:
        return f"tool_choice.name: Tool '{choice.get('name')}' not found in provided tools"
    return None


def _blocks(content: Any) -> list[dict[str, Any]]:
    """A message's content as blocks (a string is one text block); what is not a block is dropped."""
    if isinstance(content, str):
        return [_text(content)] if content else []
    return [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []


def _messages_error(data: dict[str, Any]) -> str | None:
    messages = data["messages"]
    if not isinstance(messages, list):
        return "messages: Input should be a valid list"
    if not messages:
        return "messages: at least one message is required"
    pending: list[str] = []  # the tool_use ids of the previous assistant message
    uses_tools = False
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages.{i}: Input should be a valid dictionary"
        role = message.get("role")
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if i == 0 and role != "user":
            return 'messages: first message must use the "user" role'
        if i > 0 and role == messages[i - 1].get("role"):
            return (
                'messages: roles must alternate between "user" and "assistant", '
                f'but found multiple "{role}" roles in a row'
            )
        content = message.get("content")
        if "content" not in message:
            return f"messages.{i}.content: Field required"
        if not isinstance(content, str | list) or (isinstance(content, list) and len(_blocks(content)) != len(content)):
            return f"messages.{i}.content: Input should be a valid string or list of content blocks"
        blocks = _blocks(content)
        if not blocks and not (role == "assistant" and i == len(messages) - 1):
            return (
                f"messages.{i}: all messages must have non-empty content "
                "except for the optional final assistant message"
            )
        error = _blocks_error(blocks, f"messages.{i}", role)
        if error:
            return error
        uses = [str(b["id"]) for b in blocks if b.get("type") == "tool_use"]
        results = [(j, str(b["tool_use_id"])) for j, b in enumerate(blocks) if b.get("type") == "tool_result"]
        uses_tools = uses_tools or bool(uses or results)
        for j, use_id in results:
            if use_id not in pending:
                return (
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {use_id}. "
                    "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                )
        unanswered = [use_id for use_id in pending if use_id not in {use_id for _, use_id in results}]
        if unanswered:
            return (
                f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(unanswered)}. Each `tool_use` block must have a corresponding `tool_result` block "
                "in the next message."
            )
        pending = uses
    if uses_tools and not data.get("tools"):
        return "Requests which include `tool_use` or `tool_result` blocks must define tools."
    return None


def _blocks_error(blocks: list[dict[str, Any]], where: str, role: str) -> str | None:
    for j, block in enumerate(blocks):
        at = f"{where}.content.{j}"
        kind = block.get("type")
        if not isinstance(kind, str):
            return f"{at}.type: Field required"
        if kind == "text":
            if not isinstance(block.get("text"), str):
                return f"{at}.text: Field required"
            if not block["text"].strip():
                return "messages: text content blocks must contain non-whitespace text"
        elif kind == "tool_use":
            if role != "assistant":
                return f"{at}: `tool_use` blocks can only appear in `assistant` messages"
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                return f"{at}.tool_use: `id` and `name` are required strings"
            if not isinstance(block.get("input"), dict):
                return f"{at}.tool_use.input: Input should be a valid dictionary"
        elif kind == "tool_result":
            if role != "user":
                return f"{at}: `tool_result` blocks can only appear in `user` messages"
            if not isinstance(block.get("tool_use_id"), str):
                return f"{at}.tool_result.tool_use_id: Field required"
            result = block.get("content", "")
            if not isinstance(result, str | list) or (isinstance(result, list) and len(_blocks(result)) != len(result)):
                return f"{at}.tool_result.content: Input should be a valid string or list of content blocks"
    return None


# what the model is shown


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content", "")
    if isinstance(content, str):
        return content
    return "\n".join(str(b.get("text", "")) for b in _blocks(content) if b.get("type") == "text")


def _seen(data: dict[str, Any]) -> list[str]:
    """Every piece of text the request shows the model, in order: system, texts, tool results, tool inputs."""
    system = data.get("system")
    pieces = [system] if isinstance(system, str) else [str(b.get("text", "")) for b in _blocks(system)]
    for message in data["messages"]:
        for block in _blocks(message.get("content")):
            if block.get("type") == "text":
                pieces.append(str(block.get("text", "")))
            elif block.get("type") == "tool_result":
                pieces.append(_result_text(block))
            elif block.get("type") == "tool_use":
                pieces.append(json.dumps(block.get("input"), ensure_ascii=False))
    return [piece for piece in pieces if piece]


def _digest(data: dict[str, Any]) -> str:
    """A one-line digest of the tool results in the conversation (what a model would sum up)."""
    results = [
        _result_text(block)
        for message in data["messages"]
        for block in _blocks(message.get("content"))
        if block.get("type") == "tool_result"
    ]
    return _one_line(" | ".join(results), DIGEST_LIMIT) if results else ""


def _custom_tools(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in data.get("tools") or [] if t.get("type") in (None, "custom")]


def _first_submit(data: dict[str, Any]) -> dict[str, Any] | None:
    return next((t for t in _custom_tools(data) if str(t["name"]).startswith("submit_")), None)


def _called(data: dict[str, Any]) -> set[str]:
    return {
        str(block.get("name"))
        for message in data["messages"]
        if message.get("role") == "assistant"
        for block in _blocks(message.get("content"))
        if block.get("type") == "tool_use"
    }


# building a tool input from its JSON schema


@dataclass
class _Builder:
    """Fills a JSON schema: `full` fills every property (a submission), else only the required ones (a read call).

    `text` gives a string property's value by name; `bounded` honours maxLength/maxItems.
    """

    root: dict[str, Any]
    full: bool
    text: Callable[[str], str]
    bounded: bool = True

    def resolve(self, schema: Any) -> dict[str, Any]:
        """Follow local `$ref`s (pydantic's `$defs`), merge `allOf`, take the first non-null `anyOf`/`oneOf`."""
        resolved = _obj(schema)
        for _ in range(_NESTING):
            rest = {k: v for k, v in resolved.items() if k not in ("$ref", "allOf", "anyOf", "oneOf")}
            ref = resolved.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/"):
                target: Any = self.root
                for part in ref[2:].split("/"):
                    target = _obj(target).get(part)
                resolved = {**rest, **_obj(target)}
            elif isinstance(resolved.get("allOf"), list):
                for part in resolved["allOf"]:
                    rest.update(self.resolve(part))
                resolved = rest
            elif _list(resolved.get("anyOf") or resolved.get("oneOf")):
                options = _list(resolved.get("anyOf") or resolved.get("oneOf"))
                chosen = next((o for o in options if _obj(o).get("type") != "null"), options[0])
                resolved = {**rest, **_obj(chosen)}
            else:
                break
        return resolved

    def value(self, name: str, schema: Any, depth: int = 0) -> Any:
        resolved = self.resolve(schema)
        if "const" in resolved:
            return resolved["const"]
        enum = resolved.get("enum")
        if isinstance(enum, list) and enum:
            return next((v for v in enum if v != "none"), enum[0]) if self.full else enum[0]
        kind = _schema_type(resolved)
        if kind == "object":
            return self.object(resolved, depth + 1) if depth < _NESTING else {}
        if kind == "array":
            return self.array(name, resolved, depth)
        if kind in ("integer", "number"):
            return self.number(resolved, integer=kind == "integer")
        if kind == "boolean":
            return False
        if kind == "null":
            return None
        return self.string(name, resolved)

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = _obj(schema.get("properties"))
        required = _list(schema.get("required"))
        names = [n for n in properties if self.full or n in required]
        return {n: self.value(n, properties[n], depth) for n in names}

    def array(self, name: str, schema: dict[str, Any], depth: int) -> list[Any]:
        low = _int(schema.get("minItems"), 0)
        count = max(1, low) if self.full else low
        if self.bounded:
            count = min(count, _int(schema.get("maxItems"), count))
        return [self.value(name, schema.get("items"), depth) for _ in range(count)]

    def number(self, schema: dict[str, Any], *, integer: bool) -> int | float:
        step = 1 if integer else 0.001
        low = _bound(schema, "minimum", "exclusiveMinimum", step, max)
        high = _bound(schema, "maximum", "exclusiveMaximum", -step, min)
        value = 0.9 if self.full else (low if low is not None else 0)
        value = min(max(value, low if low is not None else value), high if high is not None else value)
        if not integer:
            return value
        rounded = round(value)
        if low is not None and rounded < low:
            rounded = math.ceil(low)
        if high is not None and rounded > high:
            rounded = math.floor(high)
        return int(rounded)

    def string(self, name: str, schema: dict[str, Any]) -> str:
        text = self.text(name) if self.full else ""
        if schema.get("format") == "date-time":
            text = _now_iso()
        if self.bounded and _is_int(schema.get("maxLength")):
            text = text[: schema["maxLength"]]
        if _is_int(schema.get("minLength")):
            text = text.ljust(schema["minLength"], ".")
        return text


def _schema_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    return "object" if "properties" in schema else "array" if "items" in schema else "string"


def _bound(
    schema: dict[str, Any], inclusive: str, exclusive: str, step: float, tighter: Callable[[float, float], float]
) -> float | None:
    bounds = [float(schema[inclusive])] if _is_number(schema.get(inclusive)) else []
    if _is_number(schema.get(exclusive)):
        bounds.append(float(schema[exclusive]) + step)
    return tighter(*bounds) if len(bounds) == 2 else (bounds[0] if bounds else None)


def _input_for(tool: dict[str, Any], data: dict[str, Any], answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The input a diligent model gives `tool`: a read call's required properties, or a full submission."""
    schema = _obj(tool.get("input_schema"))
    name = str(tool["name"])
    if not name.startswith("submit_"):
        return _obj(_Builder(schema, full=False, text=str).value(name, schema))
    digest = _digest(data)

    def text(prop: str) -> str:
        reasoning = any(word in prop.lower() for word in _REASONING)
        return f"stand-in: {prop}; seen: {digest}" if reasoning and digest else f"stand-in: {prop}"

    built = _obj(_Builder(schema, full=True, text=text).value(name, schema))
    built.update(copy.deepcopy(answers.get(name, {})))
    return built


# the three ways of answering


def auto_answer(data: dict[str, Any], answers: dict[str, dict[str, Any]]) -> _Answer:
    """A diligent model: each read tool once (in the order offered), then the first submit_* tool."""
    tools = _custom_tools(data)
    choice = _obj(data.get("tool_choice"))
    forced = next((t for t in tools if choice.get("type") == "tool" and t["name"] == choice.get("name")), None)
    if forced is not None:
        return _Answer([_tool_use(str(forced["name"]), _input_for(forced, data, answers))], "tool_use")
    if not tools or choice.get("type") == "none":
        return _Answer([_text(f"stand-in: no tool to call; seen: {_digest(data)}")])
    called = _called(data)
    reads = [t for t in tools if not str(t["name"]).startswith("submit_")]
    tool = next((t for t in reads if t["name"] not in called), None) or _first_submit(data)
    if tool is None and choice.get("type") == "any":
        tool = reads[0]
    if tool is None:
        return _Answer([_text(f"stand-in: done; seen: {_digest(data)}")])
    return _Answer([_tool_use(str(tool["name"]), _input_for(tool, data, answers))], "tool_use")


def _directive_ok(directive: dict[str, Any]) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "call": lambda v: (
            isinstance(v, dict) and isinstance(v.get("name"), str) and isinstance(v.get("input", {}), dict)
        ),
        "submit": lambda v: isinstance(v, dict),
        "say": lambda v: isinstance(v, str),
        "echo": lambda v: v is True,
        "usage": lambda v: isinstance(v, dict) and all(_is_int(n) for n in v.values()),
        "tool": lambda v: isinstance(v, str),
    }
    present = [key for key in checks if key in directive]
    return bool(set(present) - {"tool"}) and all(checks[key](directive[key]) for key in present)


def _directives_in(text: str) -> list[dict[str, Any]]:
    """`@@model {json}` directives in `text`, also when the text is JSON-escaped (a tool result's JSON string)."""
    found: list[dict[str, Any]] = []
    start = text.find(MARKER)
    while start != -1:
        line = text[start + len(MARKER) :].split("\n", 1)[0].lstrip()
        for candidate in (line, line.replace('\\"', '"').replace("\\\\", "\\")):
            try:
                directive, _ = _DECODER.raw_decode(candidate)
            except ValueError:
                continue
            if isinstance(directive, dict) and _directive_ok(directive):
                found.append(directive)
                break
        start = text.find(MARKER, start + len(MARKER))
    return found


def _last_directive(pieces: list[str]) -> dict[str, Any] | None:
    found = [directive for piece in pieces for directive in _directives_in(piece)]
    return found[-1] if found else None


def obey_answer(data: dict[str, Any], answers: dict[str, dict[str, Any]]) -> _Answer:
    """A hijacked model: the last `@@model` directive it was shown decides (call > submit > echo > say)."""
    pieces = _seen(data)
    directive = _last_directive(pieces)
    if directive is None:
        return auto_answer(data, answers)
    submit = _first_submit(data)
    tool_name = directive.get("tool") or (submit["name"] if submit else None)
    if "call" in directive:
        call = directive["call"]
        answer = _Answer([_tool_use(call["name"], call.get("input", {}))], "tool_use")
    elif "submit" in directive:
        inputs = directive["submit"]
        content = _tool_use(tool_name, inputs) if tool_name else _text(json.dumps(inputs))
        answer = _Answer([content], "tool_use" if tool_name else "end_turn")
    elif "echo" in directive:
        answer = _echo(data, tool_name, "\n".join(pieces)[:ECHO_LIMIT])
    elif "say" in directive:
        answer = _Answer([_text(directive["say"])])
    else:
        answer = auto_answer(data, answers)
    answer.usage = dict(directive.get("usage", {}))
    return answer


def _echo(data: dict[str, Any], tool_name: str | None, seen: str) -> _Answer:
    """The exfiltration attempt: every free-text field of the submission carries all the model saw."""
    if tool_name is None:
        return _Answer([_text(seen)])
    tool = next((t for t in _custom_tools(data) if t["name"] == tool_name), {})
    schema = _obj(tool.get("input_schema"))
    inputs = _obj(_Builder(schema, full=True, text=lambda _: seen, bounded=False).value(tool_name, schema))
    if seen not in _strings(inputs):  # a schema without free text: leak it anyway
        inputs["reasoning"] = seen
    return _Answer([_tool_use(tool_name, inputs)], "tool_use")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    values = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [text for item in values for text in _strings(item)]


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
        headers = incoming.request.headers
        if not (headers.get("x-api-key") or headers.get("Authorization", "").removeprefix("Bearer ").strip()):
            return _anthropic_error(401, "x-api-key header is required")
        if not headers.get("anthropic-version"):
            return _anthropic_error(400, "anthropic-version: header is required")
        error = request_error(incoming.json)
        if error:
            return _anthropic_error(400, error)
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
