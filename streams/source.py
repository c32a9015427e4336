"""Where the worker's events come from: batches, offsets, and who owns which partition.

Two sources, one shape.  The checkpoint (``streams/checkpoint.py``) is told of
assignments and revocations, hands each batch to its handler, and asks the
source to commit or to read again from an offset.

- ``KafkaSource`` (the default): a plain aiokafka consumer in the worker's
  group, ``getmany`` up to ``BATCH_SIZE`` records and a rebalance listener.
  The checkpoint commits its offsets, after the state that covers them is
  stored; it can seek back to the last checkpoint.
- ``FaustSource`` (``ACCESSWATCH_FAST_PATH=false``): a Faust agent taking
  ``take_events`` batches, Faust's own consumer and commits (of what the agent
  has finished with).  Slower, about 60-95 µs an event of Faust's delivery, and
  it cannot seek: what would seek restarts the worker instead.

A group's workers must all use the same source: their assignors differ.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError
from aiokafka.structs import OffsetAndMetadata

from streams.batch import Message
from streams.connect import aiokafka_options
from streams.settings import Settings

log = logging.getLogger("accesswatch.worker")
Handler = Callable[[list[Message]], Awaitable[None]]


class Restart(Exception):
    """The worker must read again from its committed offsets and cannot seek: restart."""


class Owner(Protocol):
    """What a source tells of its partitions (the checkpoint)."""

    async def assigned(self, partitions: set[int]) -> None: ...
    async def revoked(self, partitions: set[int]) -> None: ...


class Source(Protocol):
    commits_itself: bool  # True: offsets are committed by the source, not the checkpoint
    joined: asyncio.Event  # set once the group has given this worker its first assignment

    async def run(self, handle: Handler) -> None: ...
    async def committed(self, partitions: Iterable[int]) -> dict[int, int]: ...
    async def ends(self, partitions: Iterable[int]) -> dict[int, int]: ...
    async def commit(self, offsets: dict[int, int]) -> None: ...
    async def stop(self) -> None: ...
    def seek(self, offsets: dict[int, int]) -> None: ...


class KafkaSource(ConsumerRebalanceListener):
    """The events topic through aiokafka's public consumer API."""

    commits_itself = False

    def __init__(self, settings: Settings, owner: Owner) -> None:
        self.settings, self.owner = settings, owner
        self.joined = asyncio.Event()
        self.consumer: Any = None  # made in the app's loop, by ``run``

    def tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self.settings.topic_events, partition)

    async def run(self, handle: Handler) -> None:
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            **aiokafka_options(s), group_id=s.app_id, group_instance_id=s.instance_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=int(s.session_timeout * 1000),
            heartbeat_interval_ms=int(min(3.0, s.session_timeout / 3) * 1000))
        await self.consumer.start()
        try:
            self.consumer.subscribe([self.settings.topic_events], listener=self)
            size, consumer = self.settings.batch_size, self.consumer
            while self.consumer is not None:  # ``stop`` ends it
                got = await consumer.getmany(timeout_ms=1000, max_records=size)
                if got and self.consumer is not None:
                    await handle([r for records in got.values() for r in records])
        except ConsumerStoppedError:
            if self.consumer is not None:
                raise
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Leave the group (after the last checkpoint: see ``Pipeline.stop``)."""
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            await consumer.stop()

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.owner.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.owner.assigned({tp.partition for tp in assigned})
        self.joined.set()

    async def committed(self, partitions: Iterable[int]) -> dict[int, int]:
        return await committed(self.consumer, self.settings.topic_events, partitions)

    async def ends(self, partitions: Iterable[int]) -> dict[int, int]:
        tps = [self.tp(p) for p in partitions]
        if not tps:
            return {}
        return {tp.partition: end for tp, end in (await self.consumer.end_offsets(tps)).items()}

    async def commit(self, offsets: dict[int, int]) -> None:
        await self.consumer.commit({self.tp(p): OffsetAndMetadata(o, "")
                                    for p, o in offsets.items()})

    def seek(self, offsets: dict[int, int]) -> None:
        for p, offset in offsets.items():
            self.consumer.seek(self.tp(p), offset)


class FaustSource:
    """The events topic through a Faust agent (Faust's public API only)."""

    commits_itself = True

    def __init__(self, settings: Settings, owner: Owner, app: Any) -> None:
        self.settings, self.owner, self.app = settings, owner, app
        self.joined = asyncio.Event()
        self.restart_reason: str | None = None
        self._handle: Handler | None = None
        self.topic = app.topic(settings.topic_events, partitions=settings.partitions)
        app.agent(self.topic, name="accesswatch.detect")(self._agent)
        # mode types a receiver with mypy_extensions argument kinds no plain ``def`` matches.
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    def _ours(self, tps: Any) -> set[int]:
        return {tp.partition for tp in tps or () if tp.topic == self.settings.topic_events}

    async def _on_revoked(self, app: Any, revoked: Any = None, **_: Any) -> None:
        await self.owner.revoked(self._ours(revoked))

    async def _on_assigned(self, app: Any, assigned: Any = None, **_: Any) -> None:
        await self.owner.assigned(self._ours(assigned))
        self.joined.set()

    async def run(self, handle: Handler) -> None:
        self._handle = handle  # the agent, started by Faust, calls it

    async def _agent(self, stream: Any) -> None:
        while self._handle is None:  # pragma: no cover - the worker sets it at start
            await asyncio.sleep(0.05)
        async for events in stream.take_events(self.settings.batch_size,
                                               within=self.settings.batch_wait):
            messages = [e.message for e in events]
            try:
                await self._handle(messages)
            except Exception as e:
                # Faust acknowledges a batch even when its handler fails and would commit
                # past it: mark it done so Faust passes it by, and restart (worker.py) to
                # read it again from the committed offset (nothing repeats: marks, applied).
                if not isinstance(e, Restart):
                    log.exception("batch failed; restarting to read it again")
                for m in messages:
                    m.acked = True
                self.restart_reason = str(e) or type(e).__name__
                await self.app.crash(RuntimeError(self.restart_reason))
                return

    async def committed(self, partitions: Iterable[int]) -> dict[int, int]:
        s = self.settings
        # A group id without a subscription: this client reads offsets, it never joins.
        consumer = AIOKafkaConsumer(**aiokafka_options(s), group_id=s.app_id,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            return await committed(consumer, s.topic_events, partitions)
        finally:
            await consumer.stop()

    async def ends(self, partitions: Iterable[int]) -> dict[int, int]:
        out = {}
        for p in partitions:
            end = self.app.consumer.highwater(TopicPartition(self.settings.topic_events, p))
            if end is not None:
                out[p] = end
        return out

    async def commit(self, offsets: dict[int, int]) -> None:
        """Faust commits what the agent has finished with."""

    async def stop(self) -> None:
        """Faust stops its own consumer."""

    def seek(self, offsets: dict[int, int]) -> None:
        raise Restart("reading again from the committed offsets")


async def committed(consumer: Any, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    """The next offset to read: the group's committed one, or the first there is."""
    out = {}
    for p in partitions:
        tp = TopicPartition(topic, p)
        offset = await consumer.committed(tp)
        out[p] = offset if offset is not None else (await consumer.beginning_offsets([tp]))[tp]
    return out
