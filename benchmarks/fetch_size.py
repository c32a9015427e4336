"""How much a bare consumer holds when it reads a backlog from this broker.

A worker draining a large backlog on noida-db peaks well above its RSS once it
has caught up (``docs/BENCHMARKS.md``).  This isolates why: a raw aiokafka
consumer, no accesswatch code at all, asks for at most ``--partition-bytes``
per partition per fetch and reads a pre-loaded topic.  Apache Kafka answers
within that limit; noida-db 0.2.3 answers with everything the partition holds
past the offset, so the first fetch alone brings the whole backlog into memory.

    python -m benchmarks.fetch_size                      # 200,000 × 600 B, 64 KiB asked
    python -m benchmarks.fetch_size --events 500000 --partition-bytes 1048576
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from benchmarks.broker import broker

TOPIC = "fetch-size"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(address: str, events: int, size: int, partition_bytes: int) -> dict[str, float]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=address)
    admin.create_topics([NewTopic(TOPIC, 4, 1)])
    admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=address, linger_ms=50, max_batch_size=1 << 20)
    await producer.start()
    value = b"x" * size
    for i in range(events):
        await producer.send(TOPIC, value, partition=i % 4)
    await producer.flush()
    await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=address, enable_auto_commit=False,
                                max_partition_fetch_bytes=partition_bytes,
                                fetch_max_bytes=4 * partition_bytes)
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(4)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        before = rss_mb()
        first = await consumer.getmany(timeout_ms=10_000, max_records=1)
        await asyncio.sleep(1.0)  # let the fetcher finish the fetches it started
        after_first = rss_mb()
        got, peak = sum(len(r) for r in first.values()), after_first
        while got < events:
            batch = await consumer.getmany(timeout_ms=2_000, max_records=10_000)
            if not batch:
                break
            got += sum(len(r) for r in batch.values())
            peak = max(peak, rss_mb())
    finally:
        await consumer.stop()
    return {"events": events, "backlog_mb": round(events * size / 2**20, 1),
            "partition_bytes_asked": partition_bytes, "rss_before_mb": round(before, 1),
            "rss_after_first_fetch_mb": round(after_first, 1), "peak_rss_mb": round(peak, 1),
            "read": got}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=600, help="bytes per record value")
    parser.add_argument("--partition-bytes", type=int, default=64 * 1024)
    args = parser.parse_args()
    with (tempfile.TemporaryDirectory(prefix="accesswatch-fetch-") as tmp,
          broker(Path(tmp)) as address):
        result = asyncio.run(measure(address, args.events, args.size, args.partition_bytes))
    for key, value in result.items():
        print(f"{key}: {value:,}" if isinstance(value, int) else f"{key}: {value}")


if __name__ == "__main__":
    main()
