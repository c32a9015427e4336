"""A second reader for a cold read: the subjects, on another core.

A worker reading its reference data from the start is bound by one core: it
decodes and stores millions of records, while the broker sends them for a few
per cent of another (measured at 6.7 M records: 55 s of the worker's CPU, 4 s
of the broker's).  Subjects are most of the records, their table stands alone
(no index beside it; areas and flag sets are theirs only), so a second process
reads them while the worker reads the rest, and hands the table over as a
snapshot does (``ReferenceData.save``, ``take_subjects``).

``python -m streams.reference_part OUT TOPIC:PARTITION:END ...`` reads each
partition from its start up to END as the worker's feed would
(``ReferenceFeed.catch_up``) and writes OUT, with the offsets read up to, what
was applied and refused, and its peak RSS in the manifest's ``meta``.  The
settings come as JSON on stdin (``Settings.plain``), secrets included, so the
child reads exactly what its worker would.  It exits non-zero saying why in
one line if it cannot finish (its log is the worker's: stderr is shared); the
worker then reads the subjects itself.

>>> part = await start_part(settings, {TopicPartition("ref.subjects", 0): 1000})  # doctest: +SKIP
>>> meta = await part.finish(ref)                                                 # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from accesswatch.reference import ReferenceData, SnapshotError
from streams import kafka_compat, malloc
from streams.metrics import Metrics
from streams.reference_feed import ReferenceFeed, reference_consumer
from streams.settings import Settings

log = logging.getLogger("accesswatch.reference")
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


class PartFailed(Exception):
    """The second reader did not deliver; the message is one line for the log."""


class Part:
    """A second reader under way (``start_part``)."""

    def __init__(self, proc: asyncio.subprocess.Process, out: Path,
                 tmp: tempfile.TemporaryDirectory[str]) -> None:
        self.proc, self.out, self._tmp = proc, out, tmp
        self.started = time.monotonic()

    async def finish(self, ref: ReferenceData) -> dict[str, Any]:
        """Wait for it, and move its subjects into ``ref``; its ``meta``, or
        ``PartFailed``.  ``close`` it after, whatever happened."""
        if await self.proc.wait() != 0:  # it said why in the log (its stderr is ours)
            raise PartFailed(f"it exited with {self.proc.returncode}")
        try:
            return ref.take_subjects(self.out)
        except SnapshotError as e:
            raise PartFailed(str(e)) from None

    def close(self) -> None:
        """Stop it if it still runs, and remove what it wrote (a table taken stays
        mapped: its files go when nothing maps them)."""
        if self.proc.returncode is None:
            self.proc.kill()
        shutil.rmtree(self._tmp.name, ignore_errors=True)


async def start_part(settings: Settings, ends: dict[TopicPartition, int]) -> Part:
    """Start reading ``ends`` (partition → offset to read up to) in a child process."""
    base = settings.data_path
    base.mkdir(parents=True, exist_ok=True)
    for stale in base.glob("reference-part-*"):  # a worker killed mid-read left it
        shutil.rmtree(stale, ignore_errors=True)
    tmp = tempfile.TemporaryDirectory(prefix="reference-part-", dir=base)
    out = Path(tmp.name) / "subjects"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streams.reference_part", str(out),
        *(f"{tp.topic}:{tp.partition}:{end}" for tp, end in ends.items()),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(settings.plain()).encode())
    await proc.stdin.drain()
    proc.stdin.close()
    return Part(proc, out, tmp)


async def read_part(settings: Settings, out: Path, ends: dict[TopicPartition, int]) -> None:
    """In the child: read ``ends``, then write the table to ``out``."""
    ref = ReferenceData()
    ref.begin_load()
    feed = ReferenceFeed(settings, ref, Metrics(CollectorRegistry()), {})
    consumer = reference_consumer(settings)
    await consumer.start()
    try:
        with malloc.fewer_collections():
            for tp, end in ends.items():
                await feed.catch_up(consumer, tp, end)
    finally:
        await consumer.stop()
    ref.freeze()
    meta = {"positions": {f"{tp.topic}:{tp.partition}": offset
                          for tp, offset in feed.positions.items()},
            "applied": dict(feed.applied),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    ref.save_frozen(out, meta)


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the worker that started it goes (``kill -9``
    included), so no reader outlives its worker."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # it went before the line above
        sys.exit(1)


def main(argv: list[str]) -> int:
    _die_with_parent()
    settings = Settings.model_validate(json.loads(sys.stdin.read()))
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="[%(asctime)s] %(levelname)s %(name)s (second reader): "
                               "%(message)s")
    malloc.limit_arenas()
    kafka_compat.install(settings.empty_fetch_backoff_ms)
    out, specs = Path(argv[0]), argv[1:]
    ends = {}
    for spec in specs:
        topic, partition, end = spec.rsplit(":", 2)
        ends[TopicPartition(topic, int(partition))] = int(end)
    try:
        asyncio.run(read_part(settings, out, ends))
    except Exception as e:  # one line: the worker reads the subjects itself
        log.error("could not read %s: %s: %s", ", ".join(specs), type(e).__name__, e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
