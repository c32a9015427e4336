"""A short pause after an empty fetch, for brokers that ignore ``fetch.max.wait.ms``.

Kafka holds an empty fetch open for up to ``fetch.max.wait.ms``; some
Kafka-protocol brokers (noida-db among them) answer at once, so an idle
aiokafka consumer re-fetches in a tight loop and burns a core.  Pausing a few
milliseconds after a fetch that brought nothing stops the spin and adds at
most that much latency; a fetch that brings data is never delayed.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from aiokafka.consumer.fetcher import Fetcher

_original = Fetcher._proc_fetch_request
_backoff_seconds = 0.0


def install(backoff_ms: int) -> None:
    """Apply to every aiokafka consumer in this process (0 turns it off)."""
    global _backoff_seconds
    _backoff_seconds = backoff_ms / 1000.0
    if Fetcher._proc_fetch_request is _original:
        Fetcher._proc_fetch_request = _with_backoff  # type: ignore[method-assign]


def hold_back(consumer: Any, backoff_ms: int) -> None:
    """A longer pause for one started aiokafka consumer (say, of topics that rarely change)."""
    consumer._fetcher._accesswatch_backoff = backoff_ms / 1000.0


@functools.wraps(_original)
async def _with_backoff(self: Fetcher, *args: Any, **kwargs: Any) -> bool:
    got_data: bool = await _original(self, *args, **kwargs)
    pause = getattr(self, "_accesswatch_backoff", _backoff_seconds)
    if not got_data and pause > 0:
        try:
            await asyncio.sleep(pause)
        except asyncio.CancelledError:
            # As the original does: Fetcher.close() cancels and awaits its fetch tasks.
            return False
    return got_data
