"""Stop rather than skip: a partition must start where the group committed.

``recovery_order`` closes the race in which Faust could hand over a new
partition's events from past a hole (faust-streaming/faust#596).  This is
the check that it stays closed, with any Faust: the first events of each
partition after an assignment must begin at the group's committed offset.
If they begin past it, events in between would never be processed and the
partition would never commit again, so the worker logs it, counts it
(``accesswatch_consumer_gaps_total``) and restarts itself (``worker.py``).  It
then reads again from the committed offset; what it had already done it skips
(stored state, alert and dead-letter marks), so nothing is lost or repeated.
Seen after a broker restart: Faust's rebalance found no committed offsets (the
coordinator was still loading) and carried on from where it was.

>>> check = HeadCheck()
>>> check.expect({0: 1758})
>>> check.holes([Msg(0, 1865)])      # doctest: +SKIP
[(0, 1758, 1865)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.connect import aiokafka_options
from streams.settings import Settings


class HeadCheck:
    """Per partition new to this worker: the offset its first event should have."""

    def __init__(self) -> None:
        self._expected: dict[int, int] = {}

    def expect(self, committed: Mapping[int, int]) -> None:
        self._expected.update(committed)

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._expected.pop(p, None)

    def holes(self, messages: Iterable[Any]) -> list[tuple[int, int, int]]:
        """(partition, committed offset, first offset delivered) where they differ."""
        if not self._expected:
            return []
        out = []
        for m in messages:
            expected = self._expected.pop(m.partition, None)
            # Past it by more than one: a single missing offset can be a transaction marker.
            if expected is not None and m.offset > expected + 1:
                out.append((m.partition, expected, m.offset))
        return out


async def committed_offsets(s: Settings, partitions: Iterable[int]) -> dict[int, int]:
    """The group's committed offset of each events partition that has one."""
    tps = [TopicPartition(s.topic_events, p) for p in partitions]
    # A group id without a subscription: this client reads offsets, it never joins.
    consumer = AIOKafkaConsumer(**aiokafka_options(s), group_id=s.app_id,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        offsets = {tp.partition: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()
    # None: never committed, or not known just now (a coordinator still starting): no check.
    return {p: offset for p, offset in offsets.items() if offset is not None}
