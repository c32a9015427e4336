"""The console's Kafka side: topics read into memory, and decisions written out.

Each topic is read by its own consumer outside any group (manual assignment, no
commits), from the beginning (events: from a lookback), then live.  A feed counts
as caught up once it has read to the end offsets it saw at start; the console is
ready when the alerts, decisions and staff directory are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from accesswatch.contract.events import decode_event
from accesswatch.contract.reference import decode_reference
from accesswatch.core import Alert
from accesswatch.errors import InvalidRecord
from console.config import ConsoleSettings
from console.state import ConsoleState
from console.store import Evidence, StaffInfo
from console.triage import AuditRecord, Decision, Step, decode_decision, encode
from streams import kafka_compat
from streams.connect import aiokafka_options

log = logging.getLogger("accesswatch.console.feeds")
_alert = msgspec.json.Decoder(Alert).decode
Handle = Callable[[ConsumerRecord[bytes, bytes]], None]


class Feeds:
    def __init__(self, s: ConsoleSettings, state: ConsoleState,
                 partitions: dict[str, int]) -> None:
        self.s, self.state, self.partitions = s, state, partitions
        self._tasks: list[asyncio.Task[None]] = []
        self._producer: AIOKafkaProducer | None = None
        self.skipped: dict[str, int] = {}

    async def start(self) -> None:
        kafka_compat.install(self.s.empty_fetch_backoff_ms or 10)
        self._producer = AIOKafkaProducer(**aiokafka_options(self.s), acks="all",
                                          linger_ms=0)
        await self._producer.start()
        s = self.s
        feeds: list[tuple[str, str, Handle, bool]] = [
            ("alerts", s.topic_alerts, self._on_alert, True),
            ("triage", s.triage_topic, self._on_decision, True),
            ("staff", s.topic_ref_staff, self._on_staff, True),
            ("events", s.topic_events, self._on_event, False),
        ]
        for name, topic, handle, gates_ready in feeds:
            parts = self.partitions.get(topic, 0)
            if not parts:
                log.warning("topic %s does not exist: %s not shown", topic, name)
                continue
            if gates_ready:
                self.state.caught_up[name] = False
            self._tasks.append(asyncio.create_task(
                self._follow(name, topic, parts, handle, gates_ready), name=f"feed-{name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._producer is not None:
            await self._producer.stop()

    async def record(self, decision: Decision, step: Step) -> None:
        """Write a decision durably: its audit line first, then the compacted state."""
        assert self._producer is not None, "feeds not started"
        key = decision.alert_id.encode()
        audit = AuditRecord(decision.alert_id, decision.version, step)
        await self._producer.send_and_wait(self.s.triage_audit_topic, encode(audit), key=key)
        await self._producer.send_and_wait(self.s.triage_topic, encode(decision), key=key)

    async def _follow(self, name: str, topic: str, partitions: int, handle: Handle,
                      gates_ready: bool) -> None:
        consumer = AIOKafkaConsumer(**aiokafka_options(self.s), group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            await self._seek_start(consumer, tps, name)
            ends = await consumer.end_offsets(tps)
            pending = set(tps)
            count = 0
            while True:
                if pending:
                    pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
                    if not pending:
                        if gates_ready:
                            self.state.caught_up[name] = True
                        log.info("%s: read %d records from %s; now live", name, count, topic)
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                for records in batches.values():
                    for record in records:
                        handle(record)
                        count += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: reading %s failed", name, topic)
            raise
        finally:
            await consumer.stop()

    async def _seek_start(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition],
                          name: str) -> None:
        """From the beginning; events only from ``CONSOLE_EVENTS_LOOKBACK_HOURS`` ago,
        since the index keeps only the most recent anyway."""
        hours = self.s.console_events_lookback_hours
        if name != "events" or not hours:
            await consumer.seek_to_beginning(*tps)
            return
        since = int((time.time() - hours * 3600) * 1000)
        found = await consumer.offsets_for_times({tp: since for tp in tps})
        for tp in tps:
            at = found.get(tp)
            if at is None:  # nothing written since then
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, at.offset)

    def _skip(self, name: str, record: ConsumerRecord[bytes, bytes], why: str) -> None:
        # Say where, never what: the value may hold personal data.
        self.skipped[name] = self.skipped.get(name, 0) + 1
        log.warning("%s: skipped %s[%d]@%d: %s", name, record.topic, record.partition,
                    record.offset, why)

    def _on_alert(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:
            return
        try:
            self.state.add_alert(_alert(record.value))
        except msgspec.DecodeError:
            self._skip("alerts", record, "not an alert as alert.schema.json says")

    def _on_decision(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:
            self.state.triage.apply_record(record.key, None)
            return
        try:
            self.state.apply_decision(decode_decision(record.value))
        except msgspec.DecodeError:
            self._skip("triage", record, "not a triage decision")

    def _on_staff(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.key is None:
            return
        if record.value is None:
            self.state.staff.remove(record.key.decode())
            return
        try:
            member = decode_reference("staff", record.value)
        except InvalidRecord as e:
            self._skip("staff", record, e.reason)
            return
        self.state.staff.upsert(member.user_id, StaffInfo.of(member))

    def _on_event(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:
            return
        try:
            # Evidence.of drops the query text: it is never held, let alone shown.
            self.state.events.add(Evidence.of(decode_event(record.value)))
        except InvalidRecord:
            self.skipped["events"] = self.skipped.get("events", 0) + 1  # the worker's DLQ has it
