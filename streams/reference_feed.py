"""Reference data from the compacted ``ref.*`` topics, kept live in every worker.

Each worker reads *all* partitions of every reference topic from the
beginning, outside the events consumer group (manual assignment, no group,
no commits), so each one holds the whole directory, roster and case list,
not a partition's share.  ``ready`` is set once it has read up to the end
offsets seen at start; after that, upserts and tombstones apply as they come.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from accesswatch.contract.reference import KEY_FIELDS, decode_reference
from accesswatch.errors import InvalidRecord
from accesswatch.reference import ReferenceData
from streams import kafka_compat
from streams.connect import aiokafka_options
from streams.metrics import Metrics
from streams.settings import Settings

log = logging.getLogger("accesswatch.reference")
REFERENCE_BACKOFF_MS = 100  # an update takes effect at most this much later


class ReferenceFeed:
    """Applies the reference topics to one ``ReferenceData``; single writer, one loop."""

    def __init__(self, settings: Settings, ref: ReferenceData, metrics: Metrics,
                 partitions: dict[str, int]) -> None:
        self.settings = settings
        self.ref = ref
        self.metrics = metrics
        self.kind_of = {topic: kind for kind, topic in settings.ref_topics.items()}
        self.partitions = partitions
        self.ready = asyncio.Event()
        self.applied: Counter[str] = Counter()
        self.positions: dict[TopicPartition, int] = {}  # next offset to apply

    async def run(self) -> None:
        """Read for ever; if the client fails, start a new one where the last stopped."""
        delay = 1.0
        while True:
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a lost broker must not end reference updates for good
                log.error("reference feed stopped (%s); restarting in %.0f s from offsets "
                          "already applied", type(e).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _read(self) -> None:
        consumer = AIOKafkaConsumer(**aiokafka_options(self.settings), group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    max_partition_fetch_bytes=4 * 1024 * 1024)
        await consumer.start()
        # Reference topics are quiet once read: polling them every 10 ms took about 5% of
        # a busy worker's event loop (on brokers that answer an empty fetch at once).
        kafka_compat.hold_back(consumer, REFERENCE_BACKOFF_MS)
        try:
            tps = [TopicPartition(topic, p) for topic in self.kind_of
                   for p in range(self.partitions.get(topic, 0))]
            consumer.assign(tps)
            for tp in tps:
                if tp in self.positions:
                    consumer.seek(tp, self.positions[tp])
                else:
                    await consumer.seek_to_beginning(tp)
            ends = await consumer.end_offsets(tps)
            behind = {tp for tp in tps if ends[tp] > self.positions.get(tp, 0)}
            started = time.monotonic()
            if not self.ready.is_set():
                log.info("reference data: reading %d partitions of %d topics up to %d records",
                         len(tps), len(self.kind_of), sum(ends.values()))
            while True:
                if not behind and not self.ready.is_set():
                    self._caught_up(time.monotonic() - started)
                batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
                for tp, records in batches.items():
                    self._apply(tp.topic, records)
                    self.positions[tp] = records[-1].offset + 1
                for tp in list(behind):
                    if await consumer.position(tp) >= ends[tp]:
                        behind.discard(tp)
                if batches:
                    self._gauge_sizes()
        finally:
            await consumer.stop()

    def _caught_up(self, seconds: float) -> None:
        self._gauge_sizes()
        sizes = self.ref.sizes()
        log.info("reference data caught up in %.1f s: %s (%d invalid records refused)",
                 seconds, ", ".join(f"{n:,} {kind}" for kind, n in sizes.items()),
                 sum(n for key, n in self.applied.items() if key.endswith(":invalid")))
        self.metrics.reference_ready.set(1)
        self.ready.set()

    def _apply(self, topic: str, records: list[ConsumerRecord]) -> None:
        kind = self.kind_of[topic]
        for rec in records:
            op, problem = apply_record(self.ref, kind, rec.key, rec.value)
            if problem:
                log.warning("reference %s partition %d offset %d refused: %s", topic,
                            rec.partition, rec.offset, problem)
            self.applied[f"{kind}:{op}"] += 1
            self.metrics.reference_update(kind, op).inc()

    def _gauge_sizes(self) -> None:
        for kind, n in self.ref.sizes().items():
            self.metrics.reference(kind).set(n)


def apply_record(ref: ReferenceData, kind: str, key: bytes | None,
                 value: bytes | None) -> tuple[str, str | None]:
    """Apply one topic record: (``upsert`` | ``tombstone`` | ``invalid``, why refused)."""
    if value is None:
        if key is None:
            return "invalid", "tombstone without a key"
        ref.apply(kind, key.decode("utf-8", "replace"), None)
        return "tombstone", None
    try:
        record = decode_reference(kind, value)
    except InvalidRecord as e:
        return "invalid", f"{e.reason_class}: {e.reason}"
    except Exception as e:  # truncated JSON can escape the decoder as msgspec.DecodeError
        return "invalid", f"decoder raised {type(e).__name__}"
    # Compaction keeps the last value per message key, so the key must name the record.
    own = getattr(record, KEY_FIELDS[kind])
    if key is not None and key.decode("utf-8", "replace") != own:
        return "invalid", f"message key does not match the record's {KEY_FIELDS[kind]}"
    ref.apply(kind, own, record)
    return "upsert", None
