"""Alerts out to a SIEM: the webhook loop (live) and the ECS export (a file, once).

The webhook loop is its own consumer group (``<app_id>-console-webhook``) and
commits an offset only after the receiver took the alert: at-least-once, as
the worker is.  Its first start sends the topic's history once; ``event.id``
(the alert id) lets the SIEM drop a repeat.
"""

from __future__ import annotations

import logging
import time
from typing import TextIO

import msgspec
from aiokafka import AIOKafkaConsumer
from kafka import KafkaConsumer, TopicPartition

from accesswatch.contract.reference import decode_reference
from accesswatch.core import Alert
from accesswatch.errors import InvalidRecord
from console.config import ConsoleSettings
from console.ecs import to_ecs
from console.state import ConsoleState
from console.store import StaffInfo
from console.triage import TriageBook
from console.webhook import WebhookSink
from streams.connect import aiokafka_options, kafka_python_options

log = logging.getLogger("accesswatch.console.siem")
_alert = msgspec.json.Decoder(Alert).decode


async def run_webhook(s: ConsoleSettings, state: ConsoleState, sink: WebhookSink) -> None:
    consumer = AIOKafkaConsumer(s.topic_alerts, **aiokafka_options(s),
                                group_id=s.webhook_group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=200)
            for tp, records in batches.items():
                for record in records:
                    try:
                        alert = _alert(record.value or b"")
                    except msgspec.DecodeError:
                        continue
                    await sink.deliver(to_ecs(alert, member=state.staff.members.get(
                        alert.user_id)))
                await consumer.commit({tp: records[-1].offset + 1})
    finally:
        await consumer.stop()
        await sink.close()


def export_ecs(s: ConsoleSettings, out: TextIO) -> int:
    """Write every alert now on the topic as ECS NDJSON, with the member's area and the
    triage decision where known; returns how many."""
    staff: dict[str, StaffInfo] = {}
    for key, value in read_to_end(s, s.topic_ref_staff):
        if key is None:
            continue
        if value is None:
            staff.pop(key.decode(), None)
        else:
            try:
                member = decode_reference("staff", value)
            except InvalidRecord:
                continue
            staff[member.user_id] = StaffInfo.of(member)
    book = TriageBook()
    for key, value in read_to_end(s, s.triage_topic):
        book.apply_record(key, value)
    written = 0
    for _, value in read_to_end(s, s.topic_alerts):
        try:
            alert = _alert(value or b"")
        except msgspec.DecodeError:
            continue
        doc = to_ecs(alert, member=staff.get(alert.user_id), decision=book.get(alert.alert_id))
        out.write(msgspec.json.encode(doc).decode() + "\n")
        written += 1
    return written


def read_to_end(s: ConsoleSettings, topic: str,
                timeout: float = 300.0) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record now on ``topic``, partition by partition."""
    consumer = KafkaConsumer(**kafka_python_options(s), group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=1000)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} to its end took over {timeout:.0f} s")
            for records in consumer.poll(timeout_ms=500).values():
                out.extend((r.key, r.value) for r in records)
        return out
    finally:
        consumer.close()

