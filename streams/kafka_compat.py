"""The one place that reaches into aiokafka's private parts: checked against its version.

Everything else under ``streams/`` uses public APIs only (a test greps for it).
What is here fixes what no public setting can, each seen on this machine:

1. **Empty-fetch backoff.**  Kafka holds an empty fetch open for up to
   ``fetch.max.wait.ms``; some Kafka-protocol brokers (noida-db among them)
   answer at once, so an idle consumer re-fetches in a tight loop and burns a
   core.  A few milliseconds' pause after a fetch that brought nothing stops
   the spin; a fetch that brings data is never delayed.
2. **A broker restart must not stall a client for good** (about one restart
   in five, with the machine busy: the worker rejoined and then consumed
   nothing, for as long as anyone waited):

   - under uvloop a write on a connection the broker has just reset raises
     ``RuntimeError``, not the ``OSError`` aiokafka turns into a connection
     error; here it becomes one, and the caller retries;
   - that exception ended the client's metadata task, so no metadata request
     was sent again; the task now survives a failed update (logged, retried);
   - a rebalance waits for a metadata update, and after a failure aiokafka can
     sleep ``metadata_max_age_ms`` with one pending (aio-libs/aiokafka#712):
     asking for metadata, or waiting for it, now always wakes the task.

3. **Records cost less to hand over.**  aiokafka wraps each record it reads in
   a ``ConsumerRecord`` dataclass, whose generated ``__init__`` costs about a
   microsecond: a sixth of a cold read of 6.7 M reference records, and as much
   per event as a rule.  ``Record`` is a named tuple with the same fields in the
   same order, read by name as the dataclass is (Faust's driver and ours only
   read fields), built at a third of the cost.

Written against the versions in ``TESTED``.  Any other aiokafka gets none of
it: ``install`` says so in one line and the worker runs on the public API
alone (correct, but it may spin on such brokers and stall after a restart).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from importlib.metadata import version
from typing import Any, NamedTuple

from aiokafka import errors
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import AIOKafkaConnection, CloseReason
from aiokafka.consumer.fetcher import Fetcher, PartitionRecords

log = logging.getLogger("accesswatch.kafka")
TESTED = {"aiokafka": ("0.12.", "0.13.", "0.14.")}  # version prefixes the patches are read on

_send = AIOKafkaConnection.send
_update = AIOKafkaClient._metadata_update
_force = AIOKafkaClient.force_metadata_update
_wait = AIOKafkaClient._maybe_wait_metadata
_fetch = Fetcher._proc_fetch_request
_consumer_record = PartitionRecords._consumer_record
_backoff_seconds = 0.0


class Record(NamedTuple):
    """``aiokafka.ConsumerRecord``'s fields, in its order (a test checks they agree)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: Any
    value: Any
    checksum: int | None
    serialized_key_size: int
    serialized_value_size: int
    headers: tuple[tuple[str, bytes], ...]


_new = tuple.__new__


def untested() -> str | None:
    """Why the patches cannot apply here (an unknown version), or None."""
    for package, prefixes in TESTED.items():
        found = version(package)
        if not found.startswith(prefixes):
            return (f"{package} {found} is not a version accesswatch was checked with "
                    f"({', '.join(p + 'x' for p in prefixes)})")
    return None


def install(backoff_ms: int) -> bool:
    """Apply the fixes to every aiokafka client in this process; False if refused."""
    global _backoff_seconds
    why = untested()
    if why is not None:
        log.warning("%s: running without the empty-fetch backoff and the broker-restart "
                    "guards (streams/kafka_compat.py)", why)
        return False
    _backoff_seconds = backoff_ms / 1000.0
    if AIOKafkaConnection.send is _send:
        AIOKafkaConnection.send = _guarded_send  # type: ignore[method-assign]
        AIOKafkaClient._metadata_update = _metadata_update  # type: ignore[method-assign]
        AIOKafkaClient.force_metadata_update = _force_metadata_update  # type: ignore[method-assign]
        AIOKafkaClient._maybe_wait_metadata = _maybe_wait_metadata  # type: ignore[method-assign]
        Fetcher._proc_fetch_request = _with_backoff  # type: ignore[method-assign]
        PartitionRecords._consumer_record = _record  # type: ignore[method-assign]
    return True


def hold_back(consumer: Any, backoff_ms: int) -> None:
    """A longer pause for one started consumer (say, of topics that rarely change)."""
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is not None:
        fetcher._accesswatch_backoff = backoff_ms / 1000.0


@functools.wraps(_fetch)
async def _with_backoff(self: Fetcher, *args: Any, **kwargs: Any) -> bool:
    got_data: bool = await _fetch(self, *args, **kwargs)
    pause = getattr(self, "_accesswatch_backoff", _backoff_seconds)
    if not got_data and pause > 0:
        try:
            await asyncio.sleep(pause)
        except asyncio.CancelledError:
            # As the original does: Fetcher.close() cancels and awaits its fetch tasks.
            return False
    return got_data


@functools.wraps(_consumer_record)
def _record(self: PartitionRecords, tp: Any, record: Any) -> Record:
    key, value = record.key, record.value
    return _new(Record, (  # type: ignore[call-overload]
        tp.topic, tp.partition, record.offset, record.timestamp, record.timestamp_type,
        self._key_deserializer(key) if self._key_deserializer else key,
        self._value_deserializer(value) if self._value_deserializer else value,
        record.checksum, len(key) if key is not None else -1,
        len(value) if value is not None else -1, tuple(record.headers)))


@functools.wraps(_send)
def _guarded_send(self: AIOKafkaConnection, request: Any, expect_response: bool = True) -> Any:
    try:
        return _send(self, request, expect_response)
    except RuntimeError as err:  # uvloop's write on a transport that has closed
        self.close(reason=CloseReason.CONNECTION_BROKEN)
        raise errors.KafkaConnectionError(
            f"Connection at {self._host}:{self._port} broken: {err}") from err


@functools.wraps(_update)
async def _metadata_update(self: AIOKafkaClient, cluster: Any, topics: Any) -> bool:
    try:
        return bool(await _update(self, cluster, topics))
    except asyncio.CancelledError:
        raise
    except Exception as e:  # it would end the metadata task for good, and every wait on it
        log.error("metadata update failed, will retry: %s: %s", type(e).__name__, e)
        return False


def _wake(client: Any) -> None:
    waiter = client._md_update_waiter
    if not waiter.done():
        waiter.set_result(None)


@functools.wraps(_force)
def _force_metadata_update(self: AIOKafkaClient) -> Any:
    _wake(self)
    return _force(self)


@functools.wraps(_wait)
async def _maybe_wait_metadata(self: AIOKafkaClient) -> None:
    if self._md_update_fut is not None:
        _wake(self)
        await asyncio.shield(self._md_update_fut)
