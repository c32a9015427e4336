"""The console's Kafka side: topics read into memory, and decisions written out.

Each topic is read by its own consumer outside any group (manual assignment, no
commits), from the beginning, then live.  Events go to the access history (an
embedded store on disk, ``console.history``), which remembers how far it has
read each partition, so a restart reads only what is new.  A feed counts as
caught up once it has read to the end offsets it saw at start; the console is
ready when the alerts, decisions, cases and staff directory are (the history
fills in behind, and says how far it has got).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from accesswatch.contract.events import decode_event
from accesswatch.contract.reference import decode_reference
from accesswatch.errors import InvalidRecord
from console.cases import CaseRecord, audit_step
from console.config import ConsoleSettings
from console.history import HistoryEvent
from console.state import ConsoleState
from console.store import StaffInfo
from console.triage import AuditRecord, Decision, Step, encode
from console.trust import Quarantine, RecordSigner, check_alert
from streams import kafka_compat
from streams.connect import aiokafka_options

log = logging.getLogger("accesswatch.console.feeds")
Handle = Callable[[ConsumerRecord[bytes, bytes]], None]
Batch = list[ConsumerRecord[bytes, bytes]]


class Feeds:
    def __init__(self, s: ConsoleSettings, state: ConsoleState,
                 partitions: dict[str, int], *, signer: RecordSigner | None = None,
                 quarantine: Quarantine | None = None) -> None:
        self.s, self.state, self.partitions = s, state, partitions
        # Without a signer given, a key of this run alone: nothing foreign verifies.
        self.signer = signer or RecordSigner(secrets.token_bytes(32))
        self.quarantine = quarantine or Quarantine()
        self._tasks: list[asyncio.Task[None]] = []
        self._producer: AIOKafkaProducer | None = None
        self.skipped: dict[str, int] = {}
        self.live: dict[str, bool] = {}
        self.history_read = 0

    async def start(self) -> None:
        kafka_compat.install(self.s.empty_fetch_backoff_ms or 10)
        self._producer = AIOKafkaProducer(**aiokafka_options(self.s), acks="all",
                                          linger_ms=0)
        await self._producer.start()
        s = self.s
        feeds: list[tuple[str, str, Handle | None, bool]] = [
            ("alerts", s.topic_alerts, self._on_alert, True),
            ("triage", s.triage_topic, self._on_decision, True),
            ("cases", s.cases_topic, self._on_case, True),
            ("staff", s.topic_ref_staff, self._on_staff, True),
            ("events", s.topic_events, None, False),  # batches: _to_history
        ]
        if self.state.case_facts is not None:
            feeds.append(("ref-cases", s.topic_ref_cases, self._on_ref_case, True))
        if self.state.protected is not None:
            feeds.append(("subjects", s.topic_ref_subjects, self._on_subject, False))
        if self.state.watchlist is not None:
            feeds.append(("watchlist", s.watchlist_topic, self._on_watch, True))
        for name, topic, handle, gates_ready in feeds:
            parts = self.partitions.get(topic, 0)
            if not parts:
                log.warning("topic %s does not exist: %s not shown", topic, name)
                continue
            if gates_ready:
                self.state.caught_up[name] = False
            self._tasks.append(asyncio.create_task(
                self._follow(name, topic, parts, handle, gates_ready), name=f"feed-{name}"))

        if self.state.history is not None and self.s.console_history_days:
            self._tasks.append(asyncio.create_task(self._prune(), name="history-prune"))

    async def _prune(self, every_s: float = 600.0) -> None:
        """Drop accesses older than the retention, counted back from the newest held (a
        replayed or late extract is kept for its own window, not judged by today's clock)."""
        history = self.state.history
        assert history is not None
        while True:
            stats = await asyncio.to_thread(history.stats)
            if stats.get("newest_ms"):
                dropped = await asyncio.to_thread(history.prune, int(stats["newest_ms"]))
                if dropped:
                    log.info("history: dropped %d accesses past the retention", dropped)
            await asyncio.sleep(every_s)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._producer is not None:
            await self._producer.stop()

    async def record_case(self, record: CaseRecord) -> None:
        """A case decision: its audit line first, then the compacted state."""
        assert self._producer is not None, "feeds not started"
        key = record.case_id.encode()
        audit = audit_step(record)
        await self._producer.send_and_wait(self.s.cases_audit_topic, encode(audit), key=key)
        await self._producer.send_and_wait(
            self.s.cases_topic, self.signer.encode("cases", record.case_id, record), key=key)

    async def record_watch(self, subject_id: str, entry: bytes | None) -> None:
        """A watch-list entry (``None`` removes it)."""
        assert self._producer is not None, "feeds not started"
        await self._producer.send_and_wait(self.s.watchlist_topic, entry,
                                           key=subject_id.encode())

    async def record(self, decision: Decision, step: Step) -> None:
        """Write a decision durably: its audit line first, then the compacted state."""
        assert self._producer is not None, "feeds not started"
        key = decision.alert_id.encode()
        audit = AuditRecord(decision.alert_id, decision.version, step)
        await self._producer.send_and_wait(self.s.triage_audit_topic, encode(audit), key=key)
        await self._producer.send_and_wait(
            self.s.triage_topic, self.signer.encode("triage", decision.alert_id, decision),
            key=key)

    async def _follow(self, name: str, topic: str, partitions: int, handle: Handle | None,
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
                        self.live[name] = True
                        log.info("%s: read %d records from %s; now live", name, count, topic)
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                if handle is None:
                    try:
                        count += await self._to_history(batches)
                    except sqlite3.Error as e:  # disk full, file gone: what was not
                        # committed is gone with its offsets; read it again from there
                        log.error("history: could not store events (%s); reading again from "
                                  "the last stored offsets", e)
                        await asyncio.sleep(1.0)
                        await self._seek_start(consumer, tps, name)
                    continue
                for records in batches.values():
                    for record in records:
                        handle(record)
                        count += 1
                if batches:
                    self.state.settle()  # group what this batch changed; announce it
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: reading %s failed", name, topic)
            raise
        finally:
            await consumer.stop()

    async def _seek_start(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition],
                          name: str) -> None:
        """From the beginning; events from where the history stopped, or for a new
        history from ``CONSOLE_HISTORY_DAYS`` ago by the broker's clock (0: all)."""
        history = self.state.history
        if name == "events" and history is not None:
            done = await asyncio.to_thread(history.offsets)
            if done:
                for tp in tps:
                    if tp.partition in done:
                        consumer.seek(tp, done[tp.partition])
                    else:
                        await consumer.seek_to_beginning(tp)
                return
        hours = self.s.console_history_days * 24
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

    def _refuse(self, feed: str, record: ConsumerRecord[bytes, bytes],
                e: InvalidRecord) -> None:
        self.quarantine.refuse(feed, record.topic, record.partition, record.offset, e)

    def _on_alert(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:
            return
        try:
            alert = check_alert(record.value)
        except InvalidRecord as e:
            self._refuse("alerts", record, e)
            return
        self.state.add_alert(alert, settle=False)

    def _on_decision(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            if record.value is None:  # never erased: one tombstone would wipe a history
                raise InvalidRecord("a tombstone", "tombstone")
            fields = self.signer.verify("triage", record.key, record.value)
            decision = msgspec.convert(fields, Decision)
        except msgspec.ValidationError:
            self._refuse("triage", record, InvalidRecord("not a decision", "wrong_type"))
            return
        except InvalidRecord as e:
            self._refuse("triage", record, e)
            return
        self.state.apply_decision(decision)

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

    async def _to_history(self, batches: dict[TopicPartition, Batch]) -> int:
        """A batch of events into the history, with the offsets it reaches, in one go."""
        history = self.state.history
        rows: list[HistoryEvent] = []
        offsets: dict[int, int] = {}
        count = 0
        for tp, records in batches.items():
            for record in records:
                count += 1
                if record.value is None:
                    continue
                try:
                    # HistoryEvent.of drops the query text: it is never held, let alone shown.
                    event = decode_event(record.value)
                except InvalidRecord:
                    self.skipped["events"] = self.skipped.get("events", 0) + 1  # the DLQ has it
                    continue
                rows.append(HistoryEvent.of(event))
            if records:
                offsets[tp.partition] = records[-1].offset + 1
        if history is not None and offsets:
            await asyncio.to_thread(history.add, rows, offsets)
            self.history_read += count
        return count

    def _on_case(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is not None:
            try:
                self.signer.verify("cases", record.key, record.value)
            except InvalidRecord as e:
                self._refuse("cases", record, e)
                return
        if self.state.apply_case_record(record.key, record.value) is None:
            if record.value is None:
                log.warning("cases: ignored a tombstone at %s[%d]@%d: a case is never erased",
                            record.topic, record.partition, record.offset)
                self.quarantine.refuse("cases", record.topic, record.partition,
                                       record.offset, InvalidRecord("a tombstone", "tombstone"))
            else:
                self._refuse("cases", record, InvalidRecord("not a case record", "wrong_type"))

    def _on_ref_case(self, record: ConsumerRecord[bytes, bytes]) -> None:
        facts = self.state.case_facts
        if facts is not None and not facts.apply_record(record.key, record.value) \
                and record.value is not None:
            self._skip("ref-cases", record, "not a case as case.schema.json says")

    def _on_subject(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if self.state.protected is not None:
            self.state.protected.apply_record(record.key, record.value)

    def _on_watch(self, record: ConsumerRecord[bytes, bytes]) -> None:
        watch = self.state.watchlist
        if watch is not None and not watch.apply_record(record.key, record.value) \
                and record.value is not None:
            self._skip("watchlist", record, "not a watch-list entry")
