"""The patches to aiokafka (streams/kafka_compat.py), each on the failure it stops, and
the version check that keeps them off an aiokafka they were not read against.

The metadata wake: the task's periodic update is
under way when a rebalance adds topics and asks for metadata; the update ends,
sees the topic list changed, and goes back to sleep for ``metadata_max_age_ms``
without answering, and the rebalance waits as long.  No broker needed: the
task runs for real, only its request to the broker is stood in for.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from aiokafka import errors
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import AIOKafkaConnection
from aiokafka.consumer.fetcher import Fetcher, PartitionRecords
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import ConsumerRecord, TopicPartition

from streams import kafka_compat as guards

ASLEEP = 300.0  # aiokafka's default metadata_max_age_ms, in seconds


async def rebalance_waits(wake: bool, monkeypatch: pytest.MonkeyPatch) -> float:
    """Seconds the rebalance's wait for metadata took (``ASLEEP`` if it never ended)."""
    if wake:
        monkeypatch.setattr(AIOKafkaClient, "force_metadata_update",
                            guards._force_metadata_update)
        monkeypatch.setattr(AIOKafkaClient, "_maybe_wait_metadata",
                            guards._maybe_wait_metadata)
    else:
        monkeypatch.setattr(AIOKafkaClient, "force_metadata_update", guards._force)
        monkeypatch.setattr(AIOKafkaClient, "_maybe_wait_metadata", guards._wait)
    client = AIOKafkaClient(bootstrap_servers="127.0.0.1:9", metadata_max_age_ms=10)
    client.set_topics(["events"])
    started, release = asyncio.Event(), asyncio.Event()
    updates = 0

    async def update(cluster: object, topics: object) -> bool:
        nonlocal updates
        updates += 1
        if updates == 1:  # the periodic update, still under way when the rebalance comes
            started.set()
            await release.wait()
            return False  # the broker had just gone away
        return True

    client._metadata_update = update  # type: ignore[method-assign]
    client._md_update_waiter = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(client._md_synchronizer())
    try:
        await started.wait()
        client._metadata_max_age_ms = int(ASLEEP * 1000)
        client.set_topics(["events", "changelog"])  # the rebalance: more topics
        release.set()
        t0 = asyncio.get_running_loop().time()
        try:
            await asyncio.wait_for(client._maybe_wait_metadata(), timeout=2.0)
        except TimeoutError:
            return ASLEEP
        return asyncio.get_running_loop().time() - t0
    finally:
        task.cancel()


def test_without_the_wake_a_rebalance_waits_for_the_next_periodic_update(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert asyncio.run(rebalance_waits(False, monkeypatch)) == ASLEEP


def test_with_the_wake_it_gets_its_metadata_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    assert asyncio.run(rebalance_waits(True, monkeypatch)) < 1.0


class ClosedTransport:
    """What uvloop's transport does with a write once the peer has reset it."""

    def write(self, data: bytes) -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>; "
                           "the handler is closed")

    def close(self) -> None:
        pass


class OpenReader:
    def at_eof(self) -> bool:
        return False


def reset_connection() -> AIOKafkaConnection:
    async def make() -> AIOKafkaConnection:
        conn = AIOKafkaConnection("127.0.0.1", 9, max_idle_ms=60_000)
        conn._writer = ClosedTransport()  # type: ignore[assignment]
        conn._reader = OpenReader()  # type: ignore[assignment]
        conn._read_task = asyncio.get_running_loop().create_future()
        conn._version_info = None
        return conn
    return asyncio.run(make())


def test_a_write_on_a_reset_connection_is_a_connection_error() -> None:
    from aiokafka.protocol.metadata import MetadataRequest

    request = MetadataRequest([])
    unguarded = reset_connection()
    with pytest.raises(RuntimeError):  # what aiokafka lets escape
        guards._send(unguarded, request)
    unguarded.close()
    conn = reset_connection()
    with pytest.raises(errors.KafkaConnectionError, match="broken"):
        guards._guarded_send(conn, request)
    assert conn._writer is None  # closed, so the next request opens a new one


def test_a_failing_update_does_not_end_the_metadata_task(
        caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> bool:
        client = AIOKafkaClient(bootstrap_servers="127.0.0.1:9")

        async def broken(self: object, cluster: object, topics: object) -> bool:
            raise RuntimeError("the handler is closed")

        real, guards._update = guards._update, broken  # type: ignore[assignment]
        try:
            return await guards._metadata_update(client, client.cluster, set())
        finally:
            guards._update = real
    assert asyncio.run(run()) is False
    assert "metadata update failed, will retry: RuntimeError" in caplog.text


def originals(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiokafka as it comes; recorded first, so whatever a test installs is undone after."""
    monkeypatch.setattr(AIOKafkaConnection, "send", guards._send)
    monkeypatch.setattr(AIOKafkaClient, "_metadata_update", guards._update)
    monkeypatch.setattr(AIOKafkaClient, "force_metadata_update", guards._force)
    monkeypatch.setattr(AIOKafkaClient, "_maybe_wait_metadata", guards._wait)
    monkeypatch.setattr(Fetcher, "_proc_fetch_request", guards._fetch)
    monkeypatch.setattr(PartitionRecords, "_consumer_record", guards._consumer_record)
    monkeypatch.setattr(guards, "_backoff_seconds", guards._backoff_seconds)


def test_install_patches_every_client_once(monkeypatch: pytest.MonkeyPatch) -> None:
    originals(monkeypatch)
    assert guards.untested() is None  # the aiokafka installed here is one they were read on
    assert guards.install(25) is True
    assert guards.install(25) is True
    assert AIOKafkaConnection.send is guards._guarded_send
    assert AIOKafkaClient._metadata_update is guards._metadata_update
    assert AIOKafkaClient.force_metadata_update is guards._force_metadata_update
    assert AIOKafkaClient._maybe_wait_metadata is guards._maybe_wait_metadata
    assert Fetcher._proc_fetch_request is guards._with_backoff
    assert PartitionRecords._consumer_record is guards._record
    assert guards._backoff_seconds == 0.025


def test_install_refuses_an_aiokafka_it_was_not_checked_with(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    originals(monkeypatch)
    monkeypatch.setattr(guards, "version", lambda package: "9.9.9")
    monkeypatch.setattr(guards, "_backoff_seconds", 0.5)
    why = guards.untested()
    assert why is not None and "aiokafka 9.9.9" in why
    assert guards.install(25) is False
    assert AIOKafkaConnection.send is guards._send
    assert AIOKafkaClient._metadata_update is guards._update
    assert AIOKafkaClient.force_metadata_update is guards._force
    assert AIOKafkaClient._maybe_wait_metadata is guards._wait
    assert Fetcher._proc_fetch_request is guards._fetch
    assert PartitionRecords._consumer_record is guards._consumer_record
    assert guards._backoff_seconds == 0.5  # untouched
    assert "running without the empty-fetch backoff" in caplog.text


def _read_back(patched: bool, monkeypatch: pytest.MonkeyPatch,
               deserialize: bool = False) -> list:  # type: ignore[type-arg]
    """Records as aiokafka's fetcher hands them over, from one record batch."""
    monkeypatch.setattr(PartitionRecords, "_consumer_record",
                        guards._record if patched else guards._consumer_record)
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)
    builder.append(0, timestamp=1_700_000_000_000, key=b"u1", value=b'{"a":1}', headers=[])
    builder.append(1, timestamp=1_700_000_000_001, key=None, value=None,
                   headers=[("accesswatch-reason", b"x")])
    builder.append(2, timestamp=1_700_000_000_002, key=b"", value=b"", headers=[])
    records = MemoryRecords(bytes(builder.build()))
    decode = (lambda b: b.decode() if b is not None else None) if deserialize else None
    return list(PartitionRecords(TopicPartition("ref.staff", 3), records, [], 0, decode,
                                 decode, True, 0))


@pytest.mark.parametrize("deserialize", [False, True])
def test_records_are_consumer_records_field_for_field(
        monkeypatch: pytest.MonkeyPatch, deserialize: bool) -> None:
    """Every field aiokafka's ``ConsumerRecord`` has, by name and in order, with the
    value aiokafka gives it: whoever reads a record by field cannot tell them apart."""
    assert guards.Record._fields == tuple(f.name for f in dataclasses.fields(ConsumerRecord))
    theirs = _read_back(False, monkeypatch, deserialize)
    ours = _read_back(True, monkeypatch, deserialize)
    assert [type(r) for r in ours] == [guards.Record] * 3
    assert [dataclasses.astuple(r) for r in theirs] == [tuple(r) for r in ours]
    assert ours[1].headers == (("accesswatch-reason", b"x"),) and ours[1].key is None
    assert (ours[0].serialized_key_size, ours[1].serialized_value_size) == (2, -1)
