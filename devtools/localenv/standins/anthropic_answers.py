"""How the stand-in model answers when no script step does: "auto" (diligent) or "obey" (hijacked).

Tests of triage need a model that investigates and submits without scripting every turn ("auto"), and
security tests need one that a prompt injection has turned ("obey": it follows the last `@@model {json}`
directive it was shown), so they can prove the operator contains what such a model asks for.
"""

from __future__ import annotations

import copy
import json
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from localenv.standins.anthropic_schema import _Builder
from localenv.standins.anthropic_validation import _blocks, _text
from localenv.standins.core import _is_int, _obj, _one_line

MARKER = "@@model"
ECHO_LIMIT = 20_000
DIGEST_LIMIT = 200

_ALPHABET = string.ascii_letters + string.digits
_DECODER = json.JSONDecoder()
_REASONING = ("reason", "summary", "cause", "explanation", "rationale", "analysis")


@dataclass
class _Answer:
    content: list[dict[str, Any]]
    stop_reason: str = "end_turn"
    usage: dict[str, int] = field(default_factory=dict)


def _new_id(prefix: str) -> str:
    return f"{prefix}01" + "".join(secrets.choice(_ALPHABET) for _ in range(22))


def _tool_use(name: str, tool_input: dict[str, Any], use_id: str | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": use_id or _new_id("toolu_"), "name": name, "input": tool_input}


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


# the two modes


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
