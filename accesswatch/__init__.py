"""accesswatch: real-time monitoring of who looks up what on a force's systems."""

from __future__ import annotations

__version__ = "0.1.0"
