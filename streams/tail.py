"""``accesswatch alerts tail``: a live, readable view of the alert topic.

    09:14:03  CRITICAL  U00412   AW-011  Access from a suspended or leaver account
                                         account U00412 is marked leaver in the staff …
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from accesswatch.core import Alert
from streams import aiokafka_guards, fetch_backoff
from streams.connect import aiokafka_options
from streams.settings import Settings

COLOURS = {"critical": "\033[1;97;41m", "high": "\033[1;31m", "medium": "\033[33m",
           "low": "\033[36m"}
RESET, DIM, CLEAR_LINE = "\033[0m", "\033[2m", "\r\033[K"
_decode = msgspec.json.Decoder(Alert).decode


def use_colour(choice: str, stream: TextIO) -> bool:
    if choice != "auto":
        return choice == "always"
    return stream.isatty() and not os.environ.get("NO_COLOR")


def format_alert(alert: Alert, colour: bool) -> str:
    clock = alert.created_at[11:19]
    sev = f"{alert.severity.upper():<8}"
    if colour:
        sev = f"{COLOURS.get(alert.severity, '')}{sev}{RESET}"
    reason = alert.reasons[0] if alert.reasons else ""
    pad = " " * (len(clock) + 2 + 10 + 11)
    head = f"{clock}  {sev}  {alert.user_id:<9} {alert.rule_id:<7} {alert.title}"
    tail = f"{pad}{reason}"
    return f"{head}\n{DIM}{tail}{RESET}" if colour else f"{head}\n{tail}"


async def tail(s: Settings, partitions: int, *, from_beginning: bool, max_alerts: int | None,
               idle_exit: float | None, as_json: bool, colour: bool,
               out: TextIO = sys.stdout) -> int:
    """Print alerts as they arrive; returns how many were shown."""
    fetch_backoff.install(s.empty_fetch_backoff_ms or 50)
    aiokafka_guards.install()
    consumer = AIOKafkaConsumer(**aiokafka_options(s), group_id=None, enable_auto_commit=False)
    await consumer.start()
    shown = 0
    try:
        tps = [TopicPartition(s.topic_alerts, p) for p in range(partitions)]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        last = time.monotonic()
        while max_alerts is None or shown < max_alerts:
            batches = await consumer.getmany(timeout_ms=500)
            records = [r for recs in batches.values() for r in recs]
            if not records:
                if idle_exit is not None and time.monotonic() - last > idle_exit:
                    break
                continue
            last = time.monotonic()
            # On a terminal, clear the line first: a progress bar may be drawn there.
            clear = CLEAR_LINE if colour else ""
            for rec in sorted(records, key=lambda r: r.timestamp):
                out.write(clear + _render(rec.value, as_json, colour) + "\n")
                shown += 1
                if max_alerts is not None and shown >= max_alerts:
                    break
            out.flush()
    finally:
        await consumer.stop()
    return shown


def _render(value: Any, as_json: bool, colour: bool) -> str:
    if as_json:
        return bytes(value).decode("utf-8", "replace")
    try:
        return format_alert(_decode(value), colour)
    except msgspec.DecodeError:
        return "(an alert that does not match the alert schema)"
