"""Reading a benchmark's topics back: record counts, alerts, event timestamps.

Each reader assigns every partition by hand (no group) and reads from the
beginning to the end offsets taken when it starts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import msgspec


class _EventId(msgspec.Struct):
    event_id: str


_event_id = msgspec.json.Decoder(_EventId)


async def record_count(address: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=address, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        begin, end = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        return sum(end[tp] - begin[tp] for tp in tps)
    finally:
        await consumer.stop()


async def _records(address: str, topic: str) -> AsyncIterator[Any]:
    """Every record of ``topic`` up to its end when the read starts."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=address, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000,
                                                   max_records=10_000)).values():
                for r in records:
                    yield r
    finally:
        await consumer.stop()


async def alert_rules(address: str, topic: str) -> dict[str, str]:
    """Each alert id on ``topic`` → its rule id."""
    return {a["alert_id"]: a["rule_id"]
            async for a in (json.loads(r.value) async for r in _records(address, topic))}


def compare(got: dict[str, str], expected: dict[str, str]) -> dict[str, object]:
    """Alert ids published against the backtest's; any difference counted by rule id."""
    extra, missing = Counter(), Counter()
    extra.update(got[i] for i in got.keys() - expected.keys())
    missing.update(expected[i] for i in expected.keys() - got.keys())
    return {"alerts_equal_backtest": not extra and not missing,
            **({"extra_by_rule": dict(extra), "missing_by_rule": dict(missing)}
               if extra or missing else {})}


async def alerts_with_times(address: str, topic: str) -> list[tuple[dict[str, Any], int]]:
    """Each alert record's JSON and its Kafka timestamp (ms): the worker's publish time."""
    return [(json.loads(r.value), r.timestamp) async for r in _records(address, topic)]


async def event_times(address: str, topic: str, wanted: set[str]) -> dict[str, int]:
    """``event_id`` → Kafka timestamp (ms; the producer's CreateTime) for the ids in ``wanted``."""
    out: dict[str, int] = {}
    async for r in _records(address, topic):
        try:
            eid = _event_id.decode(r.value or b"").event_id
        except (msgspec.DecodeError, UnicodeError):
            continue
        if eid in wanted:
            out[eid] = r.timestamp
    return out


def agreement(r: dict[str, object]) -> str:
    """``compare``'s verdict in words: "yes", or "**no**" and what differed, by rule id."""
    if r.get("alerts_equal_backtest"):
        return "yes"

    def by_rule(counts: object) -> str:
        return ", ".join(f"{rule} ×{n}" for rule, n in sorted(dict(counts or {}).items())) or "none"

    return (f"**no** (published but not in the backtest: {by_rule(r.get('extra_by_rule'))}; "
            f"in the backtest but not published: {by_rule(r.get('missing_by_rule'))})")
