"""The contract's JSON Schemas, shipped inside the package."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

KINDS = ("access_event", "staff", "subject", "case", "duty", "alert")


@cache
def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one record kind, e.g. ``schema("access_event")``."""
    if kind not in KINDS:
        raise KeyError(f"no schema for {kind!r}; known: {', '.join(KINDS)}")
    text = (
        files("accesswatch.contract")
        .joinpath("schemas")
        .joinpath(f"{kind}.schema.json")
        .read_text()
    )
    loaded: dict[str, Any] = json.loads(text)
    return loaded
