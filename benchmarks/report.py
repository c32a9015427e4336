"""What a section of ``docs/BENCHMARKS.md`` says when its part did not run or failed."""

from __future__ import annotations

from typing import Any


def unavailable(title: str, result: dict[str, Any] | None, not_run: str) -> str:
    """``title`` (the section's heading) over why there are no figures: the part was
    not run (``not_run`` names the options that leave it out) or ``result`` is an error."""
    if result and "error" in result:
        return title + f"Failed in this run:\n\n```\n{result['error']}\n```\n"
    return title + f"Not run ({not_run}).\n"
