"""Readable rejection reasons, driven by the shipped JSON Schemas themselves.

The fast decoders (msgspec) say *that* a record is invalid; this walks the
schema over the parsed value to say *why*, in words an operator can act on.
Only enum values and timestamps are echoed: any other field may hold
personal data, so a reason describes it by type and length alone.
"""

from __future__ import annotations

import math
from typing import Any

from accesswatch.contract.timestamps import parse_ts
from accesswatch.errors import InvalidRecord

_JSON_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "array": "an array",
    "object": "an object",
    "null": "null",
    "boolean": "true or false",
}


def explain(value: Any, schema: dict[str, Any]) -> InvalidRecord | None:
    """The first way ``value`` breaks ``schema``, or None when it conforms."""
    if not isinstance(value, dict):
        return InvalidRecord(f"not a JSON object (got {_type_name(value)})", "not_object")
    for name in schema.get("required", ()):
        if name not in value:
            return InvalidRecord(f"{name}: missing", "missing_field")
    for name, prop in schema.get("properties", {}).items():
        if name in value:
            problem = _check(name, value[name], prop)
            if problem is not None:
                return problem
    return None


def _check(path: str, value: Any, prop: dict[str, Any]) -> InvalidRecord | None:
    if "enum" in prop:
        if value in prop["enum"] and not isinstance(value, bool):
            return None
        allowed = "|".join("null" if v is None else str(v) for v in prop["enum"])
        shown = repr(value) if isinstance(value, str) and len(value) <= 40 else _type_name(value)
        return InvalidRecord(f"{path}: {shown} is not one of {allowed}", "bad_enum")
    types = prop.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(_is_type(value, t) for t in types):
            wanted = " or ".join(_JSON_TYPES[t] for t in types)
            return InvalidRecord(f"{path}: must be {wanted}, got {_type_name(value)}", "wrong_type")
    if isinstance(value, str):
        return _check_string(path, value, prop)
    if isinstance(value, int | float) and "minimum" in prop and value < prop["minimum"]:
        return InvalidRecord(f"{path}: must be at least {prop['minimum']}", "out_of_range")
    if isinstance(value, list) and "items" in prop:
        for i, item in enumerate(value):
            problem = _check(f"{path}[{i}]", item, prop["items"])
            if problem is not None:
                return problem
    return None


def _check_string(path: str, value: str, prop: dict[str, Any]) -> InvalidRecord | None:
    n = len(value)
    if n < prop.get("minLength", 0):
        return InvalidRecord(f"{path}: must not be empty", "too_short")
    if "maxLength" in prop and n > prop["maxLength"]:
        return InvalidRecord(
            f"{path}: {n} characters, longer than the {prop['maxLength']} allowed", "too_long"
        )
    if prop.get("format") == "date-time":
        try:
            parse_ts(value, path)
        except InvalidRecord as e:
            return e
    return None


def _is_type(value: Any, t: str) -> bool:
    if t == "integer":
        # JSON Schema counts 3.0 as an integer; booleans are never numbers.
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value) and value.is_integer()
        )
    if t == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "null":
        return value is None
    return isinstance(value, {"string": str, "array": list, "object": dict}[t])


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
