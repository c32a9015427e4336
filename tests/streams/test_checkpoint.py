"""The checkpoint's going back, without a broker: a core failure mid-stream.

A fake source, producer and changelog stand in for Kafka; the detection core
trips on one event.  The partition must go back to what the last checkpoint
wrote (not to the live members, changed since), read its events again from the
committed offset, and retry the failed batch event by event from each member as
it was before that batch: every other event counted once, the one that trips
the core dead-lettered.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from accesswatch.core import Detector
from accesswatch.core.timeline import _decode_chunk
from accesswatch.rules import load_rules
from streams import checkpoint as checkpoint_module
from streams.checkpoint import Checkpoint
from streams.metrics import Metrics
from streams.outputs import mark_key
from streams.store import Changelog, decode_stored, fold
from tests.core.force import HOUR, T0, build_force
from tests.streams.test_batch import Msg, wire
from tests.streams.test_outputs import (
    ALERTS,
    FakeProducer,
    Meta,
    _versions,
    leaver,
    no_tails,
    settings,
)
from tests.streams.test_store import FailsMidBatch

S = settings()


@dataclass
class Batch:
    """An aiokafka-like produce batch: as many records as it is given."""

    records: list[tuple[bytes, bytes]] = field(default_factory=list)

    def append(self, key: bytes, value: bytes, timestamp: Any) -> Any:
        self.records.append((key, value))
        return len(self.records)

    def record_count(self) -> int:
        return len(self.records)


@dataclass
class Producer(FakeProducer):
    """``FakeProducer`` with batches: the state changelog, kept compacted per partition."""

    changelog: dict[int, dict[bytes, bytes]] = field(default_factory=lambda: defaultdict(dict))
    log: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=lambda: defaultdict(list))

    def create_batch(self) -> Batch:
        return Batch()

    async def send_batch(self, batch: Batch, topic: str, partition: int) -> asyncio.Future[Meta]:
        assert topic == S.state_changelog
        offset = self.ends.get((topic, partition), 0)
        self.ends[topic, partition] = offset + len(batch.records)
        self.changelog[partition].update(batch.records)
        self.log[partition] += batch.records
        fut: asyncio.Future[Meta] = asyncio.get_running_loop().create_future()
        fut.set_result(Meta(topic, partition, offset))
        return fut


@dataclass
class Source:
    """A source that can seek: it records where the checkpoint sends it and what it commits."""

    committed_offsets: dict[int, int] = field(default_factory=dict)
    seeks: list[dict[int, int]] = field(default_factory=list)
    commits_itself = False

    async def committed(self, partitions: Any) -> dict[int, int]:
        return {p: self.committed_offsets.get(p, 0) for p in partitions}

    def seek(self, offsets: dict[int, int]) -> None:
        self.seeks.append(dict(offsets))

    async def commit(self, offsets: dict[int, int]) -> None:
        self.committed_offsets.update(offsets)

    async def ends(self, partitions: Any) -> dict[int, int]:
        return {p: 0 for p in partitions}


def logged_ids(state: Any) -> list[str]:
    return [row[1] for chunk in state.log for row in _decode_chunk(chunk)]


def test_a_core_failure_goes_back_to_the_checkpoint_and_counts_each_event_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    producer, source = Producer(), Source()
    reads: list[set[int]] = []

    async def read_changelog(_: Any, partitions: Any) -> Changelog:
        reads.append(set(partitions))
        return Changelog({p: dict(producer.changelog[p]) for p in partitions},
                         {p: producer.ends.get((S.state_changelog, p), 0) for p in partitions},
                         {p: set() for p in partitions})

    async def changelog_ends(_: Any, partitions: Any) -> dict[int, int]:
        return {p: producer.ends.get((S.state_changelog, p), 0) for p in partitions}

    monkeypatch.setattr(checkpoint_module, "read_changelog", read_changelog)
    monkeypatch.setattr(checkpoint_module, "changelog_ends", changelog_ends)
    no_tails(monkeypatch)
    cp = Checkpoint(S, FailsMidBatch(load_rules(), build_force()), Metrics(CollectorRegistry()))
    cp.source = source  # type: ignore[assignment]
    cp.use(producer)
    e = {i: Msg(wire(f"e{i}", "u3" if i == 2 else "u1", T0 + (i + 1) * HOUR),
                partition=2, offset=i) for i in range(4)}

    async def run() -> list[Any]:
        await cp.assigned({2})
        outs = [await cp.handle([e[0]])]
        await cp._commit()  # the checkpoint: u1 holds e0; offset 1 committed
        outs.append(await cp.handle([e[1]]))  # u1 changes live; not checkpointed
        outs.append(await cp.handle([e[2], e[3]]))  # the core trips on e2: back we go
        assert source.seeks[-1] == {2: 1} and not cp.store.holds(2)
        # Read again from the committed offset, a batch at a time until past e3.
        outs.append(await cp.handle([e[1], e[2], e[3]]))
        return outs

    first, second, failed, again = asyncio.run(run())
    assert first is not None and second is not None
    assert failed is None  # nothing of the failed batch went out or was kept
    assert reads == [{2}, {2}]  # at the assignment, and again after going back
    assert again is not None and again.fallbacks == 1
    assert again.repeats == 0  # the retry began before e1: it did not find e1 already there
    assert [(r.message.offset, r.error.reason_class) for r in again.rejected] == \
        [(2, "processing_error")]
    # From the checkpoint (e0), then e1 and e3 once each: not e1 twice from the live u1.
    assert logged_ids(cp.store.load("u1", 2)) == ["e0", "e1", "e3"]
    assert source.committed_offsets == {2: 4}  # the careful batch was checkpointed
    written = decode_stored(producer.changelog[2][b"u1"])
    assert logged_ids(written) == ["e0", "e1", "e3"] and written.applied == (2, 4)


def test_a_version_held_by_a_checkpoint_cut_before_its_mark_still_goes_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The kill lands between a checkpoint's members and its mark: the member's record
    (its alert grown, the new version held back) is on the changelog, and no mark names
    it.  The next owner still publishes that version, though the member has no more
    events to report it."""
    s = settings(alert_update_interval=60)
    producer, source = Producer(), Source()

    async def read_changelog(_: Any, partitions: Any) -> Changelog:
        records: dict[int, dict[bytes, bytes]] = {p: {} for p in partitions}
        after: dict[int, set[bytes]] = {p: set() for p in partitions}
        for p in partitions:
            for key, value in producer.log[p]:
                fold(records[p], after[p], key, value)
        return Changelog(records, {p: len(producer.log[p]) for p in partitions}, after)

    async def changelog_ends(_: Any, partitions: Any) -> dict[int, int]:
        return {p: len(producer.log[p]) for p in partitions}

    monkeypatch.setattr(checkpoint_module, "read_changelog", read_changelog)
    monkeypatch.setattr(checkpoint_module, "changelog_ends", changelog_ends)
    no_tails(monkeypatch)  # nothing past the first mark: v1 is below it

    def worker() -> Checkpoint:
        cp = Checkpoint(s, Detector(load_rules(), build_force()), Metrics(CollectorRegistry()))
        cp.source = source  # type: ignore[assignment]
        cp.use(producer)
        return cp

    async def run() -> None:
        first = worker()
        await first.assigned({2})
        await first.handle([leaver(0, 0)])  # u3, a leaver: AW-011 v1 goes out
        await first._commit()  # a whole checkpoint: u3, then the mark
        await first.handle([leaver(1, 1)])  # the alert grows; v2 waits out the interval
        assert first.outputs.held
        await first._commit()
        [*members, mark] = producer.log[2][-2:]
        assert mark[0] == mark_key(2) and members[0][0] == b"u3"
        producer.log[2].pop()  # ... killed before the mark reached the broker
        second = worker()
        await second.assigned({2})
        await second.tick()  # the held version is due at once

    asyncio.run(run())
    assert [(v, count) for _, v, count in _versions(producer.sent[ALERTS])] == [(1, 1), (2, 2)]
