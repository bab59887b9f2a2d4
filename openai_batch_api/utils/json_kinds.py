"""The JSON Schema type of a value read from YAML, as request schemas name their fields' types."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def json_kind(value: Any) -> str:
    """`null`, `boolean`, `integer`, `number`, `string`, `array` or `object` (else the type's name)."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: a bool is an int to Python, not to JSON Schema
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object" if isinstance(value, Mapping) else type(value).__name__
