"""Reference data from the compacted ``ref.*`` topics, kept live in every worker.

Each worker reads *all* partitions of every reference topic, outside the
events consumer group (manual assignment, no group, no commits), so each one
holds the whole directory, roster and case list, not a partition's share.
``ready`` is set once it has read up to the end offsets seen at start; after
that, upserts and tombstones apply as they come.

A worker starts from its snapshot when it has one: the reference state it
wrote to its data dir (``reference-snapshot/``) with the topic offsets that
state reflects.  It maps the snapshot in and reads only the topics' tail
past those offsets.  A snapshot that is missing, corrupt, written for other
topics, or ahead of a topic (recreated since) is refused in one log line and
the topics are read from the start.  A snapshot is written once caught up,
every ``REFERENCE_SNAPSHOT_INTERVAL`` seconds after if anything changed, and
at a clean stop; the files are written in a thread while updates wait (the
events do not).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from accesswatch.contract.reference import KEY_FIELDS, decode_reference, plain_decoder
from accesswatch.errors import InvalidRecord
from accesswatch.reference import ReferenceData, SnapshotError
from streams import kafka_compat, malloc
from streams.connect import aiokafka_options
from streams.metrics import Metrics
from streams.settings import Settings

log = logging.getLogger("accesswatch.reference")
REFERENCE_BACKOFF_MS = 100  # an update takes effect at most this much later
SNAPSHOT_DIR = "reference-snapshot"


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
        self.snapshot_dir = settings.data_path / SNAPSHOT_DIR
        self.snapshot_used = False  # this start began from a snapshot
        self._changed = 0  # records applied since the last snapshot
        self._snapshot_at = time.monotonic()
        self._writing = asyncio.Lock()  # one snapshot at a time
        for kind in self.kind_of.values():  # every series from the start, at 0
            for op in ("upsert", "tombstone", "invalid"):
                metrics.reference_update(kind, op)

    @property
    def unsaved(self) -> int:
        """Records applied since the last snapshot."""
        return self._changed

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
        consumer = reference_consumer(self.settings)
        await consumer.start()
        # Reference topics are quiet once read: polling them every 10 ms took about 5% of
        # a busy worker's event loop (on brokers that answer an empty fetch at once).
        kafka_compat.hold_back(consumer, REFERENCE_BACKOFF_MS)
        try:
            tps = [TopicPartition(topic, p) for topic in self.kind_of
                   for p in range(self.partitions.get(topic, 0))]
            # Nothing assigned yet: once a partition is assigned the client fetches it in
            # the background, and a broker may answer with all it holds.  Assigning every
            # partition before the cold read fetched them all at once (2.4 GB at the
            # national benchmark's size, against 1.0 GB read one at a time).
            ends = await consumer.end_offsets(tps)
            if not self.ready.is_set():
                if not self.positions:
                    self._start(ends)
                started = time.monotonic()
                log.info("reference data: reading %d partitions of %d topics, %d records",
                         len(tps), len(self.kind_of),
                         sum(max(0, ends[tp] - self.positions.get(tp, 0)) for tp in tps))
                # Runs of decoded records are held while millions of objects come and go.
                with malloc.fewer_collections():
                    await self._cold_read(consumer, tps, ends)
            consumer.assign(tps)
            for tp in tps:
                await self._seek(consumer, tp)
            if not self.ready.is_set():
                await self._caught_up(time.monotonic() - started)
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
                self._apply_batches(batches)
                if self._snapshot_due():
                    await self.snapshot("interval")
        finally:
            await consumer.stop()

    async def _cold_read(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition],
                         ends: dict[TopicPartition, int]) -> None:
        """Every partition up to ``ends``: the subjects in a second process when there
        are enough of them to be worth one (``streams/reference_part.py``)."""
        apart = self._apart(tps, ends)
        part = None
        if apart:
            from streams.reference_part import start_part

            try:
                part = await start_part(self.settings, apart)
            except OSError as e:  # no room in the data dir, say: read them here
                log.warning("could not start a second reader of the subjects (%s); reading "
                            "them here", e)
            else:
                log.info("reference data: %d subject records read by a second process",
                         sum(apart.values()))
        try:
            for tp in tps:
                if tp not in apart:
                    await self.catch_up(consumer, tp, ends[tp])
            if part is not None:
                await self._take_part(part)
        finally:
            if part is not None:
                part.close()
        for tp in apart:  # what the second reader did not do, done here
            await self.catch_up(consumer, tp, ends[tp])

    def _apart(self, tps: list[TopicPartition], ends: dict[TopicPartition, int]
               ) -> dict[TopicPartition, int]:
        """The subject partitions to read in a second process: all of them, when none is
        read yet and they hold at least ``reference_split_records``; else none."""
        least = self.settings.reference_split_records
        subjects = {tp: ends[tp] for tp in tps if self.kind_of[tp.topic] == "subject"}
        fresh = self.ref.tables["subject"].n == 0 and not any(
            self.positions.get(tp, 0) for tp in subjects)
        return subjects if least and fresh and sum(subjects.values()) >= least else {}

    async def _take_part(self, part: Any) -> None:
        from streams.reference_part import PartFailed

        try:
            meta = await part.finish(self.ref)
        except PartFailed as e:
            log.warning("second reader of the subjects failed (%s); reading them here", e)
            return
        for name, offset in meta["positions"].items():
            topic, partition = name.rsplit(":", 1)
            self.positions[TopicPartition(topic, int(partition))] = int(offset)
        for key, n in meta["applied"].items():
            kind, op = key.split(":")
            self.applied[key] += n
            self.metrics.reference_update(kind, op).inc(n)
            self._changed += n
        self._gauge_sizes()
        log.info("reference data: subjects taken from the second reader after %.1f s "
                 "(its peak RSS %.0f MB)", time.monotonic() - part.started,
                 meta["peak_rss_mb"])

    async def _seek(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        if tp in self.positions:
            consumer.seek(tp, self.positions[tp])
        else:
            await consumer.seek_to_beginning(tp)

    async def catch_up(self, consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> None:
        """Read one partition up to ``end``, alone: a broker may answer a fetch with all
        it has of each partition asked for, and one partition at a time bounds that."""
        if self.positions.get(tp, 0) >= end:
            return
        consumer.assign([tp])
        await self._seek(consumer, tp)
        while await consumer.position(tp) < end:
            # 2,000 at a time: each is a ConsumerRecord alive until the batch is applied
            self._apply_batches(await consumer.getmany(tp, timeout_ms=500, max_records=2_000))

    def _apply_batches(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp, records in batches.items():
            self._apply(tp.topic, records)
            self.positions[tp] = records[-1].offset + 1
            self._changed += len(records)
        if batches:
            self._gauge_sizes()

    # ---- snapshots -------------------------------------------------------------
    def _topics(self) -> dict[str, int]:
        """The reference topics with their partition counts: what a snapshot is for."""
        return {t: self.partitions.get(t, 0) for t in sorted(self.kind_of)}

    def _meta(self) -> dict[str, Any]:
        return {"topics": self._topics(),
                "offsets": {f"{tp.topic}:{tp.partition}": off
                            for tp, off in sorted(self.positions.items())},
                "written_at": time.time()}

    def _start(self, ends: dict[TopicPartition, int]) -> None:
        """Begin from the snapshot if it is usable, else read the topics whole."""
        if self.settings.reference_snapshot_interval > 0 and self.snapshot_dir.exists():
            started = time.monotonic()
            try:
                positions = self._restore(ends)
            except SnapshotError as e:
                log.warning("reference snapshot refused: %s; reading the topics from the "
                            "start", e)
            else:
                self.positions = positions
                self.snapshot_used = True
                self._changed = 0
                log.info("reference data: snapshot of %s loaded in %.1f s; reading on from "
                         "its offsets", _sizes(self.ref), time.monotonic() - started)
                return
        self.ref.begin_load()

    def _restore(self, ends: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        meta = self.ref.restore(self.snapshot_dir)
        try:
            expected = self._topics()
            if meta.get("topics") != expected:
                raise SnapshotError(f"written for topics {meta.get('topics')}, not {expected}")
            positions = {}
            for tp, end in ends.items():
                offset = int(meta["offsets"].get(f"{tp.topic}:{tp.partition}", 0))
                if offset > end:
                    raise SnapshotError(f"ahead of {tp.topic} partition {tp.partition} "
                                        f"(offset {offset}, end {end}): the topic was "
                                        "recreated since")
                positions[tp] = offset
        except (SnapshotError, KeyError, TypeError, ValueError, AttributeError) as e:
            self.ref.clear()
            raise SnapshotError(str(e)) from None
        return positions

    def _snapshot_due(self) -> bool:
        interval = self.settings.reference_snapshot_interval
        return bool(interval and self._changed
                    and time.monotonic() - self._snapshot_at >= interval)

    async def snapshot(self, why: str) -> None:
        """Write the reference state with its offsets; updates wait, events do not."""
        if not self.settings.reference_snapshot_interval or not self.ready.is_set():
            return
        async with self._writing:
            started = time.monotonic()
            self.ref.freeze()  # in the loop: it changes the tables
            meta = self._meta()
            try:
                size = await asyncio.get_running_loop().run_in_executor(
                    None, self.ref.save_frozen, self.snapshot_dir, meta)
            except OSError as e:
                log.error("reference snapshot not written to %s (%s); the next start reads "
                          "the topics from %s", self.snapshot_dir, e,
                          "the last snapshot" if self.snapshot_dir.exists() else "the start")
                return
            finally:
                self._snapshot_at = time.monotonic()
            self._changed = 0
            malloc.trim()  # the fold and the write leave free pages behind
            log.info("reference snapshot written (%s): %s, %.0f MB in %.1f s", why,
                     _sizes(self.ref), size / 1e6, time.monotonic() - started)
            self.metrics.reference_snapshot_seconds.set(meta["written_at"])

    async def _caught_up(self, seconds: float) -> None:
        self.ref.freeze()
        self._gauge_sizes()
        log.info("reference data caught up in %.1f s%s: %s (%d invalid records refused)",
                 seconds, " from a snapshot" if self.snapshot_used else "", _sizes(self.ref),
                 sum(n for key, n in self.applied.items() if key.endswith(":invalid")))
        self.metrics.reference_ready.set(1)
        self.ready.set()
        if not self.snapshot_used or self._changed:
            await self.snapshot("caught up")

    def _apply(self, topic: str, records: list[ConsumerRecord]) -> None:
        kind = self.kind_of[topic]
        ops: Counter[str] = Counter()
        if self.ref.tables[kind].loading:  # a cold read: millions of records, most of them fine
            self._load(topic, kind, records, ops)
        else:
            for rec in records:
                self._apply_one(topic, kind, rec, ops)
        for op, n in ops.items():  # counted per batch: a cold read is millions of records
            self.applied[f"{kind}:{op}"] += n
            self.metrics.reference_update(kind, op).inc(n)

    def _apply_one(self, topic: str, kind: str, rec: ConsumerRecord, ops: Counter[str]) -> None:
        op, problem = apply_record(self.ref, kind, rec.key, rec.value)
        if problem:
            log.warning("reference %s partition %d offset %d refused: %s", topic,
                        rec.partition, rec.offset, problem)
        ops[op] += 1

    def _load(self, topic: str, kind: str, records: list[ConsumerRecord],
              ops: Counter[str]) -> None:
        """``_apply_one`` for each record, in order, with ``apply_record``'s checks
        inlined for speed (``plain_decoder``) and the plainly valid ones handed over a
        run at a time (``load_many``); a record not plainly valid (or a tombstone)
        takes the full path, which applies it or refuses it saying why."""
        key_field = KEY_FIELDS[kind]
        decode = plain_decoder(kind)
        keys: list[str] = []
        good: list[Any] = []
        for rec in records:
            try:
                record = decode(rec.value)  # None (a tombstone) raises too
                own = getattr(record, key_field)
                if rec.key is not None and rec.key != own.encode("utf-8", "surrogatepass"):
                    raise ValueError("key mismatch")
            except Exception:
                self.ref.load_many(kind, keys, good)  # what came before it, first
                ops["upsert"] += len(good)
                keys, good = [], []
                self._apply_one(topic, kind, rec, ops)
                continue
            keys.append(own)
            good.append(record)
        self.ref.load_many(kind, keys, good)
        ops["upsert"] += len(good)

    def _gauge_sizes(self) -> None:
        for kind, n in self.ref.sizes().items():
            self.metrics.reference(kind).set(n)


def reference_consumer(settings: Settings) -> AIOKafkaConsumer:
    """A consumer of the reference topics: no group, no commits (not started)."""
    return AIOKafkaConsumer(**aiokafka_options(settings), group_id=None,
                            enable_auto_commit=False, auto_offset_reset="earliest",
                            # a cold read takes one partition at a time
                            max_partition_fetch_bytes=8 * 1024 * 1024,
                            fetch_max_bytes=16 * 1024 * 1024)


def _sizes(ref: ReferenceData) -> str:
    return ", ".join(f"{n:,} {kind}" for kind, n in ref.sizes().items())


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
