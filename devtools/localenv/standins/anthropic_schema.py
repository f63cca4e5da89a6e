"""Values for a JSON schema: the tool inputs the stand-in model builds from a tool's `input_schema`.

The auto model must call any read tool and submit any submit_* tool the operator offers without a
test spelling each input out, and the operator validates what it gets, so the values must satisfy
the schema pydantic wrote: local `$ref`s, `allOf`/`anyOf`/`oneOf`, enums, bounds, lengths, date-times.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localenv.standins.core import _int, _is_int, _is_number, _list, _now_iso, _obj

_NESTING = 8


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
