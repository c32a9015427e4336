"""CLI commands of the live pipeline, registered into ``accesswatch``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Handler = Callable[[argparse.Namespace], int]


def add_commands(sub: Any) -> dict[str, Handler]:
    """Add the live subcommands to ``sub``; return their handlers by name."""
    return {}
