"""The checkpoint: the one order in which a worker makes its work durable.

Read this file and you have the worker's whole promise: under at-least-once
delivery, nothing lost and nothing published twice.  Its rules, in order:

1. **A batch** (``handle``): decode and detect (``streams/batch.py``); send its
   alerts and dead letters and wait until the broker has them
   (``streams/outputs.py``); note its members as changed in the store
   (``streams/store.py``).  Nothing is committed yet.
2. **A checkpoint** (``commit``, every ``COMMIT_INTERVAL`` seconds, at a
   revocation and at shutdown): each changed member's state, then per
   partition the outputs' *mark* (how far its alerts and dead letters go, and
   which members hold versions back), go to the state changelog, and the
   worker waits until the broker has them all; only then are the events
   offsets committed.  So a committed offset never runs ahead of stored state,
   and stored state never runs ahead of published outputs.
3. **Recovery** (``assigned``, or the first batch of a partition): read the
   partition's state changelog to its end (``read_changelog``); read the alert
   and dead-letter partitions from the mark to their end, so nothing found
   there goes out again (``Outputs.prime``); hold again the versions the mark
   says were held back, and those of members stored after the last mark (a
   checkpoint killed before its mark).  Events come from the committed offset;
   those a stored state already includes (``applied``) are skipped.
4. **Going back** (``rewind``): when the core fails on a batch, or a partition
   does not start at its committed offset, the partitions concerned go back to
   the last checkpoint: their state and marks are read again from the changelog,
   their events from the committed offset.  The batch that failed is then taken
   with a checkpoint after every batch, each batch keeping a copy of its members
   as they were before it, from which the one-by-one retry starts.  A source
   that cannot seek restarts the worker instead, which comes to the same.

Under the Faust source, Faust commits the offsets of every batch the agent
has finished with, so each batch is its own checkpoint: its state and marks
are stored before the agent moves on.

A partition revoked is checkpointed first; kept in memory, it is used again
if the next assignment gives it back and nobody wrote its changelog since.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from itertools import chain
from typing import Any

from accesswatch.core import Detector
from streams.batch import BatchOutcome, CoreFailed, Message, run_batch
from streams.metrics import Metrics
from streams.outputs import Outputs
from streams.settings import Settings
from streams.source import Restart, Source
from streams.store import StateStore, changelog_ends, encoded, read_changelog

log = logging.getLogger("accesswatch.worker")
RECOVERY_TIMEOUT = 120.0  # seconds to read back a partition's state and outputs


class Checkpoint:
    """Owns the order above for every events partition this worker holds."""

    def __init__(self, settings: Settings, detector: Detector, metrics: Metrics) -> None:
        self.settings, self.detector, self.metrics = settings, detector, metrics
        self.source: Source | None = None  # set by the app, once built
        self.producer: Any = None  # set by ``use`` once the app's loop runs
        self.store = StateStore()
        self.outputs = Outputs(settings, None, metrics)
        self.lock = asyncio.Lock()  # a batch, a checkpoint or a rebalance at a time
        self.owned: set[int] = set()
        self.recovered: set[int] = set()
        self.start: dict[int, int] = {}  # partition → where its events must begin
        self.next: dict[int, int] = {}  # partition → offset after the last event handled
        self.committed: dict[int, int] = {}
        self.careful: dict[int, int] = {}  # partition → last offset to take a batch at a time
        self.last_commit = time.monotonic()
        self.totals = {"events": 0, "dead-lettered": 0, "alerts": 0, "updates": 0}

    def use(self, producer: Any) -> None:
        """The producer of alerts, dead letters and state (aiokafka's ``AIOKafkaProducer``)."""
        self.producer = self.outputs.producer = producer

    # --- assignment ------------------------------------------------------------

    async def assigned(self, partitions: set[int]) -> None:
        assert self.source is not None
        async with self.lock:
            for p in set(self.store.stored) - partitions:
                self._let_go(p)
            offsets = await self.source.committed(partitions)
            ends = await changelog_ends(self.settings, partitions)
            # Still ours from before the rebalance, and nobody wrote their changelog since:
            # go on from where the last checkpoint left them (its offset commit can have
            # failed in the rebalance; the stored state has it all).
            kept = {p for p in partitions & self.recovered if self.store.ends.get(p) == ends[p]}
            self._let_go(*(partitions - kept))
            self.committed.update(offsets)  # as the group holds them
            if not self.source.commits_itself:  # (Faust's source reads from the committed)
                ahead = {p: self.next[p] for p in kept if self.next.get(p, -1) > offsets[p]}
                self.source.seek(ahead)
                offsets.update(ahead)  # the next checkpoint commits them
            self.start.update(offsets)
            self.next.update(offsets)
            self.owned |= partitions
            self.metrics.partitions.set(len(self.owned))
            for p in partitions:
                self.metrics.lag(p)  # from now on, even before a first event
            log.info("assigned events partitions %s%s", sorted(partitions) or "none",
                     f" ({len(kept)} kept in memory)" if kept else "")
            await self._recover(partitions - kept)
        await self.measure_lag()

    async def revoked(self, partitions: set[int]) -> None:
        async with self.lock:
            if not partitions:
                return
            try:
                await self._release(everything=True)
                await self._commit()
            except Exception as e:  # whoever takes them replays from the last commit
                log.warning("could not checkpoint before a rebalance: %s", type(e).__name__)
                self._let_go(*partitions)
            self.owned -= partitions
            self.metrics.forget_lag(partitions)
            self.metrics.partitions.set(len(self.owned))

    def _let_go(self, *partitions: int) -> None:
        self.store.forget(partitions)
        self.outputs.forget(partitions)
        self.recovered.difference_update(partitions)
        for p in partitions:
            self.start.pop(p, None)
            self.careful.pop(p, None)

    async def _recover(self, partitions: set[int]) -> None:
        """Rule 3: the partitions' state and outputs as their last checkpoint left them."""
        if not partitions:
            return
        started = time.monotonic()
        self.store.forget(partitions)
        self.outputs.forget(partitions)
        back = await asyncio.wait_for(read_changelog(self.settings, partitions),
                                      RECOVERY_TIMEOUT)
        for p in partitions:
            self.store.restore(p, back.records[p], back.ends[p])
        await asyncio.wait_for(self.outputs.prime(partitions, self.store.stored),
                               RECOVERY_TIMEOUT)
        for p in partitions:  # versions the previous owner held back go out with the next batch
            await self.outputs.recover_held(p, self.store.load,
                                            [key.decode() for key in back.after_mark[p]])
        self.recovered |= partitions
        cut_short = sum(len(back.after_mark[p]) for p in partitions)
        log.info("partitions %s read back in %.1f s: %d members%s", sorted(partitions),
                 time.monotonic() - started, sum(len(back.records[p]) for p in partitions),
                 f" ({cut_short} stored by a checkpoint cut short)" if cut_short else "")

    # --- batches ---------------------------------------------------------------

    async def handle(self, messages: list[Message]) -> BatchOutcome | None:
        """Rule 1 for one batch (and rule 2 when one is due)."""
        async with self.lock:
            started = time.perf_counter()
            messages = [m for m in messages if m.partition in self.owned]  # not revoked since
            if not messages:
                return None
            await self._recover({m.partition for m in messages} - self.recovered)
            holes = self._holes(messages)
            if holes:
                for p, expected, first in holes:
                    log.error("partition %d: the consumer skipped events %d to %d; reading "
                              "them again from the committed offset", p, expected, first - 1)
                    self.metrics.consumer_gaps.inc()
                self._rewind({m.partition for m in messages}, {})  # all: none is handled
                return None
            careful = bool(self.careful) and any(
                m.offset <= self.careful.get(m.partition, -1) for m in messages)
            each_batch = careful or self._source_commits
            # A batch that may be retried event by event keeps its members as they were.
            load, before = self.store.rollback_loaders() if each_batch else (self.store.load,
                                                                             None)
            try:
                out = run_batch(self.detector, messages, load, before)
            except CoreFailed:
                last: dict[int, int] = {}
                for m in messages:
                    last[m.partition] = max(last.get(m.partition, -1), m.offset)
                log.error("detection core failed on a batch; reading partitions %s again from "
                          "the last checkpoint, a batch at a time", sorted(last))
                self._rewind(set(last), last)
                return None
            sent = await self.outputs.publish(out, messages)  # the broker has them
            if out.withdrawn:  # rare, and the contract cannot retract: say so (ids are hashes)
                log.warning("%d published alerts are not raised in time order after late "
                            "events (a firing moved to another period): %s",
                            len(out.withdrawn), ", ".join(out.withdrawn[:5]))
            self.store.put(out.states, out.applied)
            for m in messages:
                if m.offset >= self.next.get(m.partition, 0):
                    self.next[m.partition] = m.offset + 1
            await self._release()
            self.metrics.record(out, sent, len(messages), time.perf_counter() - started,
                                time.time())
            for what, n in (("events", len(messages)), ("dead-lettered", len(out.rejected)),
                            ("alerts", len(sent.new)), ("updates", len(sent.updates))):
                self.totals[what] += n
            if each_batch or self._due():
                await self._commit()
            return out

    def _holes(self, messages: list[Message]) -> list[tuple[int, int, int]]:
        """(partition, expected offset, first delivered) where a partition's first events
        after an assignment begin past where it should (a single offset may be a marker)."""
        out: list[tuple[int, int, int]] = []
        if not self.start:  # every partition has begun: nothing to check
            return out
        for m in messages:
            expected = self.start.pop(m.partition, None)
            if expected is not None and m.offset > expected + 1:
                out.append((m.partition, expected, m.offset))
        return out

    def _rewind(self, partitions: set[int], careful: dict[int, int]) -> None:
        """Rule 4: back to the last checkpoint on ``partitions`` and read them again."""
        assert self.source is not None
        self.store.forget(partitions)  # the changelog has them as the checkpoint left them
        self.outputs.forget(partitions)
        self.recovered -= partitions
        offsets = {p: self.committed[p] for p in partitions if p in self.committed}
        for p, offset in offsets.items():
            self.next[p] = self.start[p] = offset
        self.careful.update(careful)
        try:
            self.source.seek(offsets)
        except Restart:
            raise Restart(f"partitions {sorted(partitions)} must be read again") from None

    # --- checkpoints -----------------------------------------------------------

    @property
    def _source_commits(self) -> bool:
        """Faust's source commits what the agent finished: each batch is a checkpoint."""
        return self.source is None or self.source.commits_itself

    def _due(self) -> bool:
        return time.monotonic() - self.last_commit >= self.settings.commit_interval

    async def tick(self) -> None:
        """Idle work: held versions now due go out; a checkpoint when one is due."""
        if self.lock.locked():
            return
        async with self.lock:
            await self._release()
            if (self.store.changed or self._uncommitted()) and \
                    (self._due() or self._source_commits):
                await self._commit()

    async def close(self) -> None:
        """At shutdown: everything held goes out, then a last checkpoint."""
        async with self.lock:
            await self._release(everything=True)
            await self._commit()

    def _uncommitted(self) -> dict[int, int]:
        return {p: n for p, n in self.next.items()
                if p in self.owned and n != self.committed.get(p)}

    async def _commit(self) -> None:
        """Rule 2: state and marks on the changelog, acknowledged; then the offsets."""
        changed = self.store.take_changed()
        marks: dict[int, list[tuple[bytes, bytes]]] = {}
        for p, key, value in self.outputs.pending_marks():
            if self.store.holds(p):
                self.store.stored[p][key] = value
                marks.setdefault(p, []).append((key, value))
        sends: list[tuple[Any, int]] = []
        for p in [*changed, *(p for p in marks if p not in changed)]:
            # A mark goes after the members it vouches for; each member is encoded as it
            # joins a produce batch, so one encoded state at a time is held here.
            records = chain(encoded(changed.get(p, ())), marks.get(p, ()))
            sends += await self._send(p, records)
        metas = await asyncio.gather(*(future for future, _ in sends))
        for meta, (_, count) in zip(metas, sends, strict=True):  # a batch's base offset
            self.store.ends[meta.partition] = max(self.store.ends.get(meta.partition, 0),
                                                  meta.offset + count)
        offsets = self._uncommitted()
        self.last_commit = time.monotonic()
        if offsets and self.source is not None:
            try:
                await self.source.commit(offsets)
            except Exception as e:  # a rebalance under way: the next owner reads from before
                log.warning("offset commit failed (%s); the next owner replays past it, "
                            "skipping what stored state holds", type(e).__name__)
                return
            self.committed.update(offsets)

    async def _send(self, partition: int, records: Iterable[tuple[bytes, bytes]]
                    ) -> list[tuple[Any, int]]:
        """The records in as few produce batches as fit: (future of its metadata, records)."""
        producer, topic = self.producer, self.settings.state_changelog
        out, batch = [], producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                count = batch.record_count()
                out.append((await producer.send_batch(batch, topic, partition=partition), count))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        if batch.record_count():
            count = batch.record_count()
            out.append((await producer.send_batch(batch, topic, partition=partition), count))
        return out

    async def _release(self, everything: bool = False) -> None:
        """Publish the alert versions now due (``Outputs.held``); note their members."""
        if self.outputs.held:
            sent, touched = await self.outputs.release(self._member, everything)
            self.store.put(touched)
            self.metrics.count_sent(sent, time.time())
        self.metrics.updates_held.set(len(self.outputs.held))

    def _member(self, uid: str, partition: int) -> Any:
        return self.store.load(uid, partition) if self.store.holds(partition) else None

    # --- lag -------------------------------------------------------------------

    async def measure_lag(self) -> None:
        """Every owned partition's lag: from its assignment on, busy, idle or stalled."""
        if self.source is None or not self.owned:
            return
        owned = sorted(self.owned)
        ends = await self.source.ends(owned)
        for p in owned:
            if p in ends and p in self.next:
                self.metrics.lag(p).set(max(0, ends[p] - self.next[p]))

