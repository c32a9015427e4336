"""Alerts out to a SIEM: the webhook loop (live) and the ECS export (a file, once).

The webhook loop is its own consumer group (``<app_id>-console-webhook``) and
commits an offset only after the receiver took the alert: at-least-once, as
the worker is.  Its first start sends the topic's history once; ``event.id``
(the alert id) lets the SIEM drop a repeat, and a later version overwrite the one
before.

An alert is re-published with a higher ``version`` as its evidence grows
(contract v1.1).  The loop sends a version only when it is higher than the last
one it sent for that alert, so a replayed or late older version never
overwrites a newer one in the SIEM; on start it recalls what it sent from the
records before its committed offsets.  The export writes each alert once, at
its highest version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TextIO

import msgspec
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AioTopicPartition
from kafka import KafkaConsumer, TopicPartition

from accesswatch.contract.reference import decode_reference
from accesswatch.core import Alert
from accesswatch.errors import InvalidRecord
from console.config import ConsoleSettings
from console.ecs import to_ecs
from console.state import ConsoleState
from console.store import StaffInfo
from console.triage import TriageBook
from console.trust import check_alert
from console.versions import LatestVersions
from console.webhook import WebhookSink
from streams.connect import aiokafka_options, kafka_python_options

log = logging.getLogger("accesswatch.console.siem")
_alert = msgspec.json.Decoder(Alert).decode


async def run_webhook(s: ConsoleSettings, state: ConsoleState, sink: WebhookSink,
                      partitions: int) -> None:
    consumer = AIOKafkaConsumer(s.topic_alerts, **aiokafka_options(s),
                                group_id=s.webhook_group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    # Bounded as the console's own store is: the ids forgotten are the longest idle.
    sent = LatestVersions(s.console_max_alerts)
    try:
        recalled = await recall_sent(s, consumer, partitions, sent)
        log.info("webhook: %d alerts already sent, recalled from %s", recalled, s.topic_alerts)
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=200)
            for tp, records in batches.items():
                for record in records:
                    try:  # one malformed alert must not stop the loop (to_ecs reads it)
                        alert = check_alert(record.value or b"")
                    except InvalidRecord as e:
                        log.warning("webhook: skipped %s[%d]@%d: %s", record.topic,
                                    record.partition, record.offset, e.reason_class)
                        continue
                    if not sent.offer(alert.alert_id, alert.version):
                        continue  # the receiver has this version or a newer one
                    await sink.deliver(to_ecs(alert, member=state.staff.members.get(
                        alert.user_id)))
                await consumer.commit({tp: records[-1].offset + 1})
    finally:
        await consumer.stop()
        await sink.close()


async def recall_sent(s: ConsoleSettings, group: AIOKafkaConsumer, partitions: int,
                      sent: LatestVersions) -> int:
    """Offer ``sent`` every alert before ``group``'s committed offsets: what a previous
    run of the loop already handed to the receiver.  Returns how many alert ids."""
    tps = [AioTopicPartition(s.topic_alerts, p) for p in range(partitions)]
    upto: dict[AioTopicPartition, int] = {}
    for tp in tps:
        committed = await group.committed(tp)
        if committed:
            upto[tp] = committed
    if not upto:
        return 0
    reader = AIOKafkaConsumer(**aiokafka_options(s), group_id=None, enable_auto_commit=False,
                              auto_offset_reset="earliest")
    await reader.start()
    try:
        reader.assign(list(upto))
        ends = await reader.end_offsets(list(upto))
        upto = {tp: min(at, ends[tp]) for tp, at in upto.items()}  # a topic made anew
        await reader.seek_to_beginning(*upto)
        pending = {tp for tp in upto if await reader.position(tp) < upto[tp]}
        while pending:
            batches = await reader.getmany(*pending, timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= upto[tp]:
                        break
                    try:
                        alert = _alert(record.value or b"")
                    except msgspec.DecodeError:
                        continue
                    sent.offer(alert.alert_id, alert.version)
            pending = {tp for tp in pending if await reader.position(tp) < upto[tp]}
    finally:
        await reader.stop()
    return len(sent)


def export_ecs(s: ConsoleSettings, out: TextIO) -> int:
    """Write every alert now on the topic as ECS NDJSON, once, at its highest version,
    with the member's area and the triage decision where known; returns how many."""
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
    alerts = newest(value for _, value in read_to_end(s, s.topic_alerts))
    for alert in alerts.values():
        doc = to_ecs(alert, member=staff.get(alert.user_id), decision=book.get(alert.alert_id))
        out.write(msgspec.json.encode(doc).decode() + "\n")
    return len(alerts)


def newest(values: Iterable[bytes | None]) -> dict[str, Alert]:
    """The highest version of each alert among ``values``, in order of first arrival;
    what does not decode as an alert is left out."""
    held: dict[str, Alert] = {}
    for value in values:
        try:
            alert = check_alert(value or b"")
        except InvalidRecord:
            continue
        mine = held.get(alert.alert_id)
        if mine is None or alert.version > mine.version:
            held[alert.alert_id] = alert
    return held


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

