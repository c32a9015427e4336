"""The fast path's bookkeeping is Faust's: what it acknowledges is what Faust commits.

End to end (a real broker, both delivery paths) it is tests/streams/test_live_pipeline.py
and the reliability suite, which run with the fast path on.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from weakref import WeakSet

from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree
from mode.utils.locks import Event

from streams.fast_path import FastPath, Run, _put

TP0 = TP("events", 0)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes = b"{}"


def run(tp: TP, first: int, last: int) -> Run:
    return Run(tp, [Record(tp.topic, tp.partition, o) for o in range(first, last + 1)])


class FakeConsumer:
    """The attributes ``Consumer.ack`` and ``Consumer._new_offset`` work on."""

    def __init__(self, committed: int | None = None) -> None:
        self._committed_offset: dict[TP, int | None] = defaultdict(lambda: committed)
        self._acked_index: dict[TP, set[int]] = defaultdict(set)
        self._acked: dict[TP, list[int]] = defaultdict(list)
        self._gap: dict[TP, IntervalTree] = defaultdict(IntervalTree)
        self._n_acked = 0
        self._unacked_messages: WeakSet[Any] = WeakSet()
        self._waiting_for_ack = None

    def commit_offset(self, tp: TP) -> int | None:
        """The offset Faust would commit for ``tp`` now (its own code)."""
        return Consumer._new_offset(self, tp)  # type: ignore[arg-type]


def test_an_acknowledged_run_is_committed_as_faust_would_commit_its_messages() -> None:
    consumer = FakeConsumer()
    first, second = run(TP0, 0, 4), run(TP0, 5, 9)
    consumer._unacked_messages.update([first, second])
    FastPath.ack(consumer, [first, second])
    assert consumer._acked[TP0] == list(range(10))
    assert consumer._n_acked == 10
    assert consumer.commit_offset(TP0) == 10
    assert not consumer._unacked_messages  # a rebalance no longer waits for them
    assert first.acked and second.acked


def test_a_run_is_acknowledged_once_and_nothing_below_the_commit_counts() -> None:
    consumer = FakeConsumer(committed=7)
    again = run(TP0, 5, 9)
    FastPath.ack(consumer, [again])
    FastPath.ack(consumer, [again])  # twice: counted once
    FastPath.ack(consumer, [run(TP0, 8, 9)])  # the same offsets in another run
    assert consumer._acked[TP0] == [7, 8, 9]
    assert consumer._n_acked == 3


def test_a_hole_stops_the_commit_where_faust_would() -> None:
    consumer = FakeConsumer()
    FastPath.ack(consumer, [run(TP0, 0, 4), run(TP0, 8, 9)])
    assert consumer.commit_offset(TP0) == 5


def test_dropped_runs_are_let_go_without_committing_anything() -> None:
    consumer = FakeConsumer()
    dropped = run(TP0, 0, 4)
    consumer._unacked_messages.add(dropped)
    FastPath.drop(consumer, [dropped])
    assert dropped.acked and not consumer._unacked_messages
    assert consumer._acked[TP0] == [] and consumer._n_acked == 0
    assert consumer.commit_offset(TP0) is None


def test_batches_take_what_is_queued_up_to_the_size_without_waiting() -> None:
    async def go() -> list[list[int]]:
        fast = FastPath("events")
        for first, last in [(0, 299), (300, 599), (600, 1099), (1100, 1100)]:
            fast.queue.put_nowait(run(TP0, first, last))
        batches = fast.batches(500)
        # first run 300: below 500, so the second joins; 600 ≥ 500: out it goes
        return [[len(r.records) for r in await anext(batches)] for _ in range(3)]

    assert asyncio.run(go()) == [[300, 300], [500], [1]]


def test_a_full_queue_holds_the_fetcher_until_room_or_a_rebalance() -> None:
    @dataclass
    class Flow:
        suspend_flow: Event

    async def go() -> tuple[bool, bool, int]:
        fast = FastPath("events", max_runs=1)
        fast.queue.put_nowait(run(TP0, 0, 0))
        flow = Flow(Event())
        waiting = asyncio.ensure_future(_put(flow, fast.queue, run(TP0, 1, 1)))
        await asyncio.sleep(0)
        assert not waiting.done()  # held: the queue is full
        fast.queue.get_nowait()  # the handler takes a run: room
        room = await waiting
        suspended = asyncio.ensure_future(_put(flow, fast.queue, run(TP0, 2, 2)))
        await asyncio.sleep(0)
        flow.suspend_flow.set()  # a rebalance: the run is abandoned, fetched again later
        return room, await suspended, fast.queue.qsize()

    assert asyncio.run(go()) == (True, False, 1)
