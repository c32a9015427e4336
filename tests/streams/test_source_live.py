"""The Kafka source on a real broker: batches at most BATCH_SIZE, keys checked (issue 16).

A force's events go in by kcat, keyed by ``user_id`` as the contract says,
plus three keyed wrongly: one under another member's id, one with no key, one
carrying ``user_id`` twice keyed by the first (the decoder takes the last).  The
worker must dead-letter exactly those three as ``key_mismatch`` (original
bytes, reason header), handle the rest, and never take a batch larger than
``ACCESSWATCH_BATCH_SIZE`` (its ``accesswatch_batch_size`` histogram).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from accesswatch.ops.produce import event_key
from tests.streams.conftest import wait_until
from tests.streams.live import WorkerProcess, kcat_produce, live_force, read_topic, total

pytestmark = pytest.mark.broker
BATCH = 50  # a bucket of accesswatch_batch_size


def test_batches_respect_batch_size_and_miskeyed_events_are_dead_lettered(
        broker: str, tmp_path: Path) -> None:
    env, s, force = live_force(broker, tmp_path, staff=40, seed=4, batch_size=str(BATCH))
    lines = [ln for ln in (force / "events.jsonl").read_bytes().splitlines()
             if ln.strip()]
    users = sorted({msgspec.json.decode(ln)["user_id"] for ln in lines})
    first = msgspec.json.decode(lines[0])
    other = next(u for u in users if u != first["user_id"]).encode()
    # user_id twice: keyed by the first by a producer, decoded with the last by the worker.
    twice = msgspec.json.encode({**first, "event_id": "twice-1"})[:-1] + \
        b',"user_id":' + msgspec.json.encode(first["user_id"]) + b"}"
    twice = twice.replace(b'"user_id":' + msgspec.json.encode(first["user_id"]),
                          b'"user_id":"' + other + b'"', 1)
    miskeyed = [msgspec.json.encode({**first, "event_id": "miskeyed-1"}),
                msgspec.json.encode({**first, "event_id": "unkeyed-1"}), twice]
    kcat_produce(broker, s.topic_events, [(event_key(ln), ln) for ln in lines]
                 + [(other, miskeyed[0]), (None, miskeyed[1]), (other, twice)])
    worker = WorkerProcess(env, tmp_path)
    try:
        worker.wait_ready()
        n = len(lines) + len(miskeyed)
        wait_until(lambda: total(worker.metrics(), "accesswatch_events_consumed_total") >= n,
                   120, f"{n} events consumed")
        m = worker.metrics()
    finally:
        assert worker.stop() == 0, worker.tail()
    assert m["accesswatch_events_rejected_total{reason=key_mismatch}"] == len(miskeyed)
    assert m["accesswatch_batch_size_count"] >= n / BATCH
    assert m[f"accesswatch_batch_size_bucket{{le={float(BATCH)}}}"] == \
        m["accesswatch_batch_size_count"]  # not one batch above BATCH_SIZE
    dead = {r.value: dict(r.headers) for r in read_topic(s, s.topic_dlq)}
    assert set(dead) == set(miskeyed)
    assert {h["accesswatch-reason-class"] for h in dead.values()} == {b"key_mismatch"}
