"""A deterministic instance of a JSON schema, for answers in `json_schema` mode."""

from __future__ import annotations

import zlib
from typing import Any

# Schemas nest; a self-referencing one must still end.
MAX_DEPTH = 8
# Whatever a request's schema asks for (minItems: 1000000000, nested arrays, minLength), one answer
# stays small: an array has at most MAX_ITEMS items, an answer at most MAX_VALUES values in all, and
# a string at most MAX_STRING characters.
MAX_ITEMS = 100
MAX_VALUES = 10_000
MAX_STRING = 100_000
STRING_FORMATS = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "00:00:00",
    "email": "someone@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def schema_instance(schema: Any, *, text: str) -> Any:
    """A value valid against `schema` (the common subset), derived from `text` so that it is stable."""
    return _instance(schema, root=schema, text=text, name="answer", depth=0, budget=[MAX_VALUES])


def _whole(value: Any, default: int) -> int:
    """A schema's count (minItems, maxItems), or `default` where it is not a whole number."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _pick(options: list[Any], text: str, name: str) -> Any:
    return options[zlib.crc32(f"{name}\0{text}".encode()) % len(options)]


def _resolve(schema: dict[str, Any], root: Any) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#"):
        return schema
    target: Any = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        if not isinstance(target, dict) or part not in target:
            return {}
        target = target[part]
    return target if isinstance(target, dict) else {}


def _instance(schema: Any, *, root: Any, text: str, name: str, depth: int, budget: list[int]) -> Any:
    # `budget` holds how many more values this answer may have, shared by the whole recursion.
    budget[0] -= 1
    if not isinstance(schema, dict):
        return f"Answer to: {text}"
    if depth > 2 * MAX_DEPTH:  # references and unions that only lead back to themselves
        return None
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return _pick(schema["enum"], text, name)
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            # Nullable unions take their non-null branch: an answer is more useful than a null.
            chosen = next((o for o in options if not (isinstance(o, dict) and o.get("type") == "null")), options[0])
            return _instance(chosen, root=root, text=text, name=name, depth=depth + 1, budget=budget)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if (depth >= MAX_DEPTH or budget[0] <= 0) and kind in ("object", "array"):
        return {} if kind == "object" else []
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        return {
            str(key): _instance(sub, root=root, text=text, name=str(key), depth=depth + 1, budget=budget)
            for key, sub in properties.items()
        }
    if kind == "array":
        count = min(max(_whole(schema.get("minItems"), 1), 1), _whole(schema.get("maxItems"), MAX_ITEMS), MAX_ITEMS)
        items = []
        for i in range(count):
            if budget[0] <= 0:
                break
            items.append(
                _instance(
                    schema.get("items", {}), root=root, text=text, name=f"{name}_{i}", depth=depth + 1, budget=budget
                )
            )
        return items
    if kind == "integer":
        return int(_clamp(len(text), schema))
    if kind == "number":
        return float(_clamp(round(len(text) / 10, 1), schema))
    if kind == "boolean":
        return len(text) % 2 == 0
    if kind == "null":
        return None
    return _string(schema, text, name)


def _clamp(value: float, schema: dict[str, Any]) -> float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if isinstance(low, (int, float)) and value < low:
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    if isinstance(high, (int, float)) and value > high:
        value = high - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0)
    return value


def _string(schema: dict[str, Any], text: str, name: str) -> str:
    if schema.get("format") in STRING_FORMATS:
        return STRING_FORMATS[schema["format"]]
    value = f"Answer to: {text}" if name == "answer" else f"{name}: {text}"
    max_length = schema.get("maxLength")
    if isinstance(max_length, int):
        value = value[:max_length]
    min_length = schema.get("minLength")
    if isinstance(min_length, int) and len(value) < min_length:
        value = value.ljust(min(min_length, MAX_STRING), ".")
    return value
