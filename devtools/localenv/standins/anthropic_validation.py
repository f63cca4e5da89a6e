"""What the Messages API refuses, checked as it checks and worded as it words it.

The operator must never send a request the real API would reject, and a test cannot learn that from
Anthropic itself, so the stand-in refuses what the API refuses: a missing key or `anthropic-version`
header, a body without model, max_tokens or messages, bad tools or tool_choice, roles that do not
alternate, and `tool_use` blocks without a `tool_result` right after (or the reverse).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from localenv.standins.core import _anthropic_error, _Incoming, _is_int

_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")


def refusal(incoming: _Incoming) -> web.Response | None:
    """The error the Messages API would answer `incoming` with (None when it would accept it)."""
    headers = incoming.request.headers
    if not (headers.get("x-api-key") or headers.get("Authorization", "").removeprefix("Bearer ").strip()):
        return _anthropic_error(401, "x-api-key header is required")
    if not headers.get("anthropic-version"):
        return _anthropic_error(400, "anthropic-version: header is required")
    error = request_error(incoming.json)
    return _anthropic_error(400, error) if error else None


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


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


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
