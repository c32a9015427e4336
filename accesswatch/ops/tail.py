"""``accesswatch alerts tail``: a live, readable view of the alert topic.

    09:14:03  CRITICAL  U00412   AW-011  Access from a leaver account
                                         account U00412 is marked leaver in the staff …
    09:20:41  CRITICAL  U00412   AW-011  Access from a leaver account  [v3 update, 7 events]
                                         account U00412 is marked leaver in the staff …

Imports stay light (Kafka and the core load when a tail starts), so the CLI can
take ``HELP`` from here when it builds its parser.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

from console.versions import LatestVersions

if TYPE_CHECKING:
    from accesswatch.core import Alert
    from streams.settings import Settings

HELP = """\
Print each alert as it is published on the alert topic.

An alert is published again, under the same alert_id with its version one
higher, when its evidence grows. Such a re-publication is printed as an update,
marked "[v3 update, 7 events]", at the time it was published. An older or the
same version of an alert arriving after a newer one (a replay, two workers
after a rebalance) is not printed, with --json neither. The versions shown are
remembered for the last 100,000 alerts. --max counts alerts and updates printed.
"""
REMEMBERED = 100_000
COLOURS = {"critical": "\033[1;97;41m", "high": "\033[1;31m", "medium": "\033[33m",
           "low": "\033[36m"}
RESET, DIM, BOLD, CLEAR_LINE = "\033[0m", "\033[2m", "\033[1m", "\r\033[K"


def use_colour(choice: str, stream: TextIO) -> bool:
    if choice != "auto":
        return choice == "always"
    return stream.isatty() and not os.environ.get("NO_COLOR")


def format_alert(alert: Alert, colour: bool) -> str:
    """Two lines: when, severity, member, rule and title; then the first reason.

    An update (version 2 on) is stamped with the time it was published and marked.
    """
    update = alert.version > 1
    clock = (alert.updated_at if update and alert.updated_at else alert.created_at)[11:19]
    sev = f"{alert.severity.upper():<8}"
    if colour:
        sev = f"{COLOURS.get(alert.severity, '')}{sev}{RESET}"
    reason = alert.reasons[0] if alert.reasons else ""
    pad = " " * (len(clock) + 2 + 10 + 11)
    head = f"{clock}  {sev}  {alert.user_id:<9} {alert.rule_id:<7} {alert.title}"
    if update:
        events = f"{alert.count} event{'' if alert.count == 1 else 's'}"
        mark = f"[v{alert.version} update, {events}]"
        head += f"  {BOLD}{mark}{RESET}" if colour else f"  {mark}"
    tail = f"{pad}{reason}"
    return f"{head}\n{DIM}{tail}{RESET}" if colour else f"{head}\n{tail}"


def render(value: bytes | None, shown: LatestVersions, *, as_json: bool,
           colour: bool) -> str | None:
    """What to print for one record, or None for a version not newer than one shown."""
    raw = value or b""
    try:
        alert = _decoder().decode(raw)
    except msgspec.DecodeError:
        alert = None
    if alert is not None and not shown.offer(alert.alert_id, alert.version):
        return None
    if as_json:
        return bytes(raw).decode("utf-8", "replace")
    return format_alert(alert, colour) if alert is not None \
        else "(an alert that does not match the alert schema)"


async def tail(s: Settings, partitions: int, *, from_beginning: bool, max_alerts: int | None,
               idle_exit: float | None, as_json: bool, colour: bool,
               out: TextIO = sys.stdout) -> int:
    """Print alerts and updates as they arrive; returns how many were shown."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams import kafka_compat
    from streams.connect import aiokafka_options

    kafka_compat.install(s.empty_fetch_backoff_ms or 50)
    consumer = AIOKafkaConsumer(**aiokafka_options(s), group_id=None, enable_auto_commit=False)
    await consumer.start()
    shown, seen = 0, LatestVersions(REMEMBERED)
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
                line = render(rec.value, seen, as_json=as_json, colour=colour)
                if line is None:
                    continue
                out.write(clear + line + "\n")
                shown += 1
                if max_alerts is not None and shown >= max_alerts:
                    break
            out.flush()
    finally:
        await consumer.stop()
    return shown


@functools.cache
def _decoder() -> Any:
    from accesswatch.core import Alert

    return msgspec.json.Decoder(Alert)
