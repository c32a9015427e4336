"""Alerts and dead letters: each on its topic once, across crashes and rebalances.

Under at-least-once a worker that dies replays the events after its group's
last commit, and the core raises the same alert ids again (an id is a hash of
rule, member and triggering event).  Without care those alerts, and the dead
letters of replayed invalid events, would appear twice.  So:

- a batch's alerts and dead letters go to the partition its events came on
  (one writer per partition), and the batch waits until the broker has them
  before its states are stored;
- each state flush ends, per partition, with a *mark* on the changelog: the
  alert and dead-letter offsets up to which that state accounts for what was
  published, and the events offset below which every event's outputs are out
  (invalid events have no state to say so);
- a worker that takes a partition (start, restart, rebalance) reads the alert
  and dead-letter partitions from the recovered mark to their end, and
  publishes nothing it finds there again.

The mark follows the members' records on the same changelog partition, so a
mark that arrived vouches for every record before it.  A zombie (a worker cut
off but still running) is not fenced: only ``exactly_once`` can do that.

>>> outputs = Outputs(settings, alerts_topic, dlq_topic, metrics)   # doctest: +SKIP
>>> await outputs.prime({0, 1}, table.data)   # once per partition after an assignment
>>> await outputs.publish(outcome)            # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.batch import BatchOutcome, Message
from streams.connect import aiokafka_options
from streams.metrics import Metrics
from streams.settings import Settings

log = logging.getLogger("accesswatch.outputs")
_encode = msgspec.json.Encoder().encode

# 0xff never occurs in UTF-8, so no user id (a changelog key) can collide with a mark.
MARK_PREFIX = b"\xffaccesswatch-outputs:"


class Mark(msgspec.Struct, array_like=True):
    """How far one partition's outputs go: the next offset on the alert and dead-letter
    partitions, and the events offset before which every event's outputs are out."""

    alerts: int = 0
    dead_letters: int = 0
    events: int = 0


_mark_decoder = msgspec.msgpack.Decoder(Mark)


def mark_key(partition: int) -> bytes:
    return MARK_PREFIX + str(partition).encode()


class _AlertId(msgspec.Struct):
    alert_id: str


_alert_id = msgspec.json.Decoder(_AlertId)


class Outputs:
    """Publishes a batch's alerts and dead letters, skipping what a replay finds done."""

    def __init__(self, settings: Settings, alerts: Any, dlq: Any, metrics: Metrics) -> None:
        self.settings, self.alerts, self.dlq, self.metrics = settings, alerts, dlq, metrics
        # Dead letters keep their source partition only when the counts agree; otherwise
        # they are spread by key and a partition's dead letters cannot be read back alone.
        self.dlq_by_partition = settings.dlq_partition_count == settings.partitions
        self.covered: dict[int, Mark] = {}  # partition → mark as of the last stored batch
        self._changed: set[int] = set()  # partitions whose mark has not gone out yet
        self._done_alerts: dict[int, set[str]] = {}  # ids found past the mark at priming
        self._done_dead: dict[int, set[int]] = {}  # source offsets found past the mark
        self._primed: set[int] = set()

    def unprimed(self, partitions: Iterable[int]) -> set[int]:
        return set(partitions) - self._primed

    async def prime(self, partitions: Iterable[int], table: Mapping[bytes, bytes]) -> None:
        """Learn what was published past each new partition's mark (the table is recovered)."""
        todo = sorted(set(partitions) - self._primed)
        if not todo:
            return
        marks = {}
        for p in todo:
            raw = table.get(mark_key(p))
            marks[p] = _mark_decoder.decode(raw) if raw is not None else Mark()
        alerts, dead = await read_tails(self.settings, marks, self.dlq_by_partition)
        for p in todo:
            self.covered[p] = marks[p]
            self._done_alerts[p] = alerts.get(p, set())
            self._done_dead[p] = dead.get(p, set())
            self._primed.add(p)
            if self._done_alerts[p] or self._done_dead[p]:
                log.info("partition %d: %d alerts and %d dead letters already published past "
                         "the last commit will not be repeated", p, len(self._done_alerts[p]),
                         len(self._done_dead[p]))

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions revoked: whoever owns them next primes them afresh."""
        for p in partitions:
            self._primed.discard(p)
            self._done_alerts.pop(p, None)
            self._done_dead.pop(p, None)
            self.covered.pop(p, None)
            self._changed.discard(p)

    async def publish(self, out: BatchOutcome, messages: Iterable[Message]) -> None:
        """Send the batch's dead letters and new alerts; return once the broker has them.

        Alerts and dead letters found at priming are dropped from ``out`` (counted
        as skipped), so the metrics count what this worker published.
        """
        pending: list[tuple[str, int, Any]] = []
        for r in out.rejected:
            m = r.message
            mark = self.covered.get(m.partition)
            if (mark is not None and m.offset < mark.events) or \
                    m.offset in self._done_dead.get(m.partition, ()):
                self.metrics.replay_skipped("dead_letter").inc()
                continue
            fut = await self._dead_letter(m, r.error.reason, r.error.reason_class)
            pending.append(("dead_letters", m.partition, fut))
        alerts = []
        for alert in out.alerts:
            p = out.states[alert.user_id][1]
            if alert.alert_id in self._done_alerts.get(p, ()):
                self.metrics.replay_skipped("alert").inc()
                continue
            alerts.append(alert)
            fut = await self.alerts.send(key=alert.user_id.encode(), value=_encode(alert),
                                         partition=p)
            pending.append(("alerts", p, fut))
        out.alerts = alerts
        # Wait for the broker: only then may the state that covers these events be stored.
        sent = await asyncio.gather(*(fut for _, _, fut in pending))
        for (kind, p, _), meta in zip(pending, sent, strict=True):
            if kind == "dead_letters" and not self.dlq_by_partition:
                continue
            mark = self.covered.setdefault(p, Mark())
            setattr(mark, kind, max(getattr(mark, kind), meta.offset + 1))
        for m in messages:  # every event of the batch now has its outputs out
            mark = self.covered.setdefault(m.partition, Mark())
            if m.offset >= mark.events:
                mark.events = m.offset + 1
                self._changed.add(m.partition)

    def pending_marks(self) -> list[tuple[int, bytes, bytes]]:
        """(changelog partition, key, value) of each mark moved since the last call."""
        out = [(p, mark_key(p), msgspec.msgpack.encode(self.covered[p]))
               for p in sorted(self._changed) if p in self.covered]
        self._changed.clear()
        return out

    async def _dead_letter(self, msg: Message, reason: str, reason_class: str) -> Any:
        headers = [
            ("accesswatch-reason", reason.encode()),
            ("accesswatch-reason-class", reason_class.encode()),
            ("accesswatch-source-topic", msg.topic.encode()),
            ("accesswatch-source-partition", str(msg.partition).encode()),
            ("accesswatch-source-offset", str(msg.offset).encode()),
        ]
        value = msg.value
        if value is not None and len(value) > self.settings.dlq_max_bytes:
            # A hostile multi-megabyte message must not wedge the dead-letter path on the
            # broker's message limit: keep its head, say how big it was.
            headers.append(("accesswatch-original-bytes", str(len(value)).encode()))
            value = value[: self.settings.dlq_max_bytes]
        # Same partition as the source: per-partition order is kept, a restarted worker can
        # read back what it already dead-lettered, and under exactly-once the dead letter
        # joins its source partition's transaction.
        return await self.dlq.send(key=msg.key, value=value, headers=headers,
                                   partition=msg.partition if self.dlq_by_partition else None)


async def read_tails(s: Settings, marks: Mapping[int, Mark], dlq_by_partition: bool
                     ) -> tuple[dict[int, set[str]], dict[int, set[int]]]:
    """Alert ids and dead-lettered source offsets on each partition from its mark to the end."""
    alerts: dict[int, set[str]] = {}
    dead: dict[int, set[int]] = {}
    starts = {TopicPartition(s.topic_alerts, p): m.alerts for p, m in marks.items()}
    if dlq_by_partition:
        starts.update({TopicPartition(s.topic_dlq, p): m.dead_letters for p, m in marks.items()})
    isolation = "read_committed" if s.processing_guarantee == "exactly_once" else \
        "read_uncommitted"
    consumer = AIOKafkaConsumer(**aiokafka_options(s), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level=isolation)
    await consumer.start()
    try:
        consumer.assign(list(starts))
        ends = await consumer.end_offsets(list(starts))
        todo = {tp for tp, start in starts.items() if start < ends[tp]}
        for tp in todo:
            consumer.seek(tp, starts[tp])
        while todo:
            for tp, records in (await consumer.getmany(*todo, timeout_ms=500)).items():
                for r in records:
                    if tp.topic == s.topic_alerts:
                        alerts.setdefault(tp.partition, set()).add(_read_alert_id(r.value))
                    else:
                        offset = dict(r.headers or ()).get("accesswatch-source-offset")
                        if offset is not None:
                            dead.setdefault(tp.partition, set()).add(int(offset))
            todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return alerts, dead


def _read_alert_id(raw: bytes | None) -> str:
    try:
        return _alert_id.decode(raw or b"").alert_id
    except msgspec.DecodeError:
        return ""  # not ours: nothing to skip
