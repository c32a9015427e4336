"""Fill an events topic fast, for workers that are already running.

``accesswatch replay --rate 0`` sends about 17,000 events/s, less than one
worker takes, so a topic it fills while workers read measures the producer.
This sends whole record batches (aiokafka ``create_batch`` / ``send_batch``),
each event keyed by its ``user_id`` and placed by the same murmur2 partitioner
Kafka clients use by default, so a member's events stay on one partition in
file order, as with ``replay``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from accesswatch.ops.produce import event_key


async def fill(address: str, topic: str, events: Path, partitions: int) -> dict[str, float]:
    """Send every line of ``events`` to ``topic``: {"events": n, "seconds": s}."""

    def lines() -> Iterator[tuple[bytes, bytes]]:
        with events.open("rb") as f:
            for line in f:
                value = line.rstrip(b"\r\n")
                if value:
                    yield event_key(value), value

    sent, seconds = await send_records(address, topic, lines(), partitions)
    return {"events": sent, "seconds": round(seconds, 2)}


async def send_records(address: str, topic: str, records: Iterable[tuple[bytes, bytes]],
                       partitions: int) -> tuple[int, float]:
    """Send (key, value) ``records`` in whole record batches, each on its key's
    partition; (records sent, seconds it took)."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    producer = AIOKafkaProducer(bootstrap_servers=address, acks=1, max_batch_size=1 << 20,
                                request_timeout_ms=120_000)
    await producer.start()
    place, every = DefaultPartitioner(), list(range(partitions))
    where: dict[bytes, int] = {}  # members repeat: hash each key once
    started, sent = time.perf_counter(), 0
    try:
        batches = {p: producer.create_batch() for p in every}
        pending = []
        for key, value in records:
            p = where.get(key)
            if p is None:
                p = where[key] = place(key, every, every)
            if batches[p].append(key=key, value=value, timestamp=None) is None:
                pending.append(await producer.send_batch(batches[p], topic, partition=p))
                batches[p] = producer.create_batch()
                batches[p].append(key=key, value=value, timestamp=None)
            sent += 1
        for p, batch in batches.items():
            if batch.record_count():
                pending.append(await producer.send_batch(batch, topic, partition=p))
        for fut in pending:
            await fut
    finally:
        await producer.stop()
    return sent, time.perf_counter() - started
