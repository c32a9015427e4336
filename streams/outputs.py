"""Alerts and dead letters: each on its topic once, across crashes and rebalances.

An alert is a living record (contract v1.1): the core reports an alert whenever
its content differs from what was last published, and this module publishes it
as the next version.  An alert waits at least ``alert_update_interval`` seconds
between two versions (a long harvest must not flood the topic); what waits is
held here, its newest content replacing older, and goes out when its time
comes, so the newest version always goes out.

Under at-least-once a worker that dies replays the events after its group's
last commit, and the core reports the same alerts again.  Without care those
versions, and the dead letters of replayed invalid events, would appear twice.
So:

- a batch's alerts and dead letters go to the partition its events came on
  (one writer per partition), and the batch waits until the broker has them
  before its states are stored;
- each checkpoint (``streams/checkpoint.py``) ends, per partition, with a *mark*
  on the changelog: the
  alert and dead-letter offsets up to which that state accounts for what was
  published, and the events offset below which every event's outputs are out
  (invalid events have no state to say so);
- a worker that takes a partition (start, restart, rebalance) reads the alert
  and dead-letter partitions from the recovered mark to their end, and
  publishes nothing it finds there again: a version whose content is already
  there is taken as published, any other goes out above the highest found;
- the mark also names the members with versions held back; the worker that
  takes the partition publishes them, and those of any member stored after the
  last mark (a checkpoint cut short between its members and its mark).

The mark follows the members' records on the same changelog partition, so a
mark that arrived vouches for every record before it.  A zombie (a worker cut
off but still running) is not fenced; the session timeout bounds how long it writes.

>>> outputs = Outputs(settings, producer, metrics)   # doctest: +SKIP
>>> await outputs.prime({0, 1}, store.stored)  # once per partition after an assignment
>>> await outputs.publish(outcome)            # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from accesswatch.contract.timestamps import format_ts
from accesswatch.core import Alert, Member
from accesswatch.core.alerts import digest
from streams.batch import BatchOutcome, Message
from streams.connect import aiokafka_options
from streams.metrics import Metrics
from streams.settings import Settings
from streams.store import NOT_A_MEMBER

log = logging.getLogger("accesswatch.outputs")
_encode = msgspec.json.Encoder().encode

# Not a member's key (0xff never occurs in UTF-8): no user id can collide with a mark.
MARK_PREFIX = NOT_A_MEMBER + b"accesswatch-outputs:"


class Mark(msgspec.Struct, array_like=True):
    """How far one partition's outputs go: the next offset on the alert and dead-letter
    partitions, the events offset before which every event's outputs are out, and the
    members with alert versions held back (not yet published)."""

    alerts: int = 0
    dead_letters: int = 0
    events: int = 0
    held: list[str] = msgspec.field(default_factory=list)


@dataclass(slots=True)
class Held:
    """An alert's newest content, waiting for its next version to be due."""

    alert: Alert
    partition: int
    due: float  # monotonic time


@dataclass(slots=True)
class Sent:
    """What a publish produced: for metrics."""

    new: list[Alert]
    updates: list[Alert]


_mark_decoder = msgspec.msgpack.Decoder(Mark)


def mark_key(partition: int) -> bytes:
    return MARK_PREFIX + str(partition).encode()


_alert = msgspec.json.Decoder(Alert)


class Outputs:
    """Publishes a batch's alerts and dead letters, skipping what a replay finds done."""

    def __init__(self, settings: Settings, producer: Any, metrics: Metrics) -> None:
        # ``producer.send(topic, value, key=, partition=, headers=)`` as aiokafka's: a
        # coroutine that returns a future of the record's metadata.
        self.settings, self.producer, self.metrics = settings, producer, metrics
        # Dead letters keep their source partition only when the counts agree; otherwise
        # they are spread by key and a partition's dead letters cannot be read back alone.
        self.dlq_by_partition = settings.dlq_partition_count == settings.partitions
        self.covered: dict[int, Mark] = {}  # partition → mark as of the last stored batch
        self._changed: set[int] = set()  # partitions whose mark has not gone out yet
        # Per partition, alert id → (highest version, its content's digest) past the mark.
        self._done_alerts: dict[int, dict[str, tuple[int, int]]] = {}
        self._done_dead: dict[int, set[int]] = {}  # source offsets found past the mark
        self._primed: set[int] = set()
        self.held: dict[str, Held] = {}  # alert id → newest content held back
        self._last_sent: dict[str, float] = {}  # alert id → monotonic time of its last version
        self.clock: Callable[[], float] = time.monotonic

    def unprimed(self, partitions: Iterable[int]) -> set[int]:
        return set(partitions) - self._primed

    async def prime(self, partitions: Iterable[int],
                    stored: Mapping[int, Mapping[bytes, bytes]]) -> None:
        """Learn what was published past each new partition's mark (``stored``: the
        recovered changelog, by partition)."""
        todo = sorted(set(partitions) - self._primed)
        if not todo:
            return
        marks = {}
        for p in todo:
            raw = stored.get(p, {}).get(mark_key(p))
            marks[p] = _mark_decoder.decode(raw) if raw is not None else Mark()
        alerts, dead = await read_tails(self.settings, marks, self.dlq_by_partition)
        for p in todo:
            self.covered[p] = marks[p]
            self._done_alerts[p] = alerts.get(p, {})
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
        gone = set(partitions)
        for aid in [a for a, h in self.held.items() if h.partition in gone]:
            del self.held[aid]  # the mark names their members: the next owner sends them

    async def publish(self, out: BatchOutcome, messages: Iterable[Message]) -> Sent:
        """Send the batch's dead letters and alert versions; return once the broker has them.

        ``out.alerts`` becomes what went out (new, then updates); versions held back
        wait in ``held``.  What a previous owner already published is skipped (counted).
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
        sent = Sent([], [])
        for alert in out.alerts:
            member, p = out.states[alert.user_id]
            fut = await self._version(alert, member, p, sent)
            if fut is not None:
                pending.append(("alerts", p, fut))
        for aid in out.withdrawn:
            self.held.pop(aid, None)
        out.alerts = sent.new + sent.updates
        await self._settle(pending)
        for m in messages:  # every event of the batch now has its outputs out
            mark = self.covered.setdefault(m.partition, Mark())
            if m.offset >= mark.events:
                mark.events = m.offset + 1
                self._changed.add(m.partition)
        self._note_held()
        return sent

    async def release(self, members: Callable[[str, int], Member | None],
                      everything: bool = False) -> tuple[Sent, dict[str, tuple[Member, int]]]:
        """Publish the held versions now due (all of them with ``everything``).

        Returns what went out and the members whose published versions moved (to store).
        """
        now = self.clock()
        sent = Sent([], [])
        touched: dict[str, tuple[Member, int]] = {}
        pending: list[tuple[str, int, Any]] = []
        for aid, held in list(self.held.items()):
            if not everything and held.due > now:
                continue
            del self.held[aid]
            member = members(held.alert.user_id, held.partition)
            if member is None:
                continue
            fut = await self._version(held.alert, member, held.partition, sent, force=True)
            if fut is not None:
                pending.append(("alerts", held.partition, fut))
            touched[held.alert.user_id] = (member, held.partition)
        if pending:
            await self._settle(pending)
        self._note_held()
        return sent, touched

    async def recover_held(self, partition: int, members: Callable[[str, int], Member | None],
                           unvouched: Iterable[str] = ()) -> dict[str, tuple[Member, int]]:
        """Hold again what the partition's previous owner held back: the next release
        publishes it.  The mark names its members; ``unvouched`` are members stored after
        the last mark, by a checkpoint cut short (a kill between its members and its mark),
        whose held versions no mark names."""
        touched: dict[str, tuple[Member, int]] = {}
        mark = self.covered.get(partition)
        for uid in sorted({*(mark.held if mark is not None else ()), *unvouched}):
            member = members(uid, partition)
            if member is None:
                continue
            for opened in member.alerts.values():
                pub = member.published.get(opened.alert.alert_id)
                if pub is not None and pub.digest != digest(opened.alert):
                    alert = msgspec.structs.replace(opened.alert, created_at=pub.created_at)
                    self.held[alert.alert_id] = Held(alert, partition, 0.0)
                    touched[uid] = (member, partition)
        return touched

    async def _version(self, alert: Alert, member: Member, partition: int, sent: Sent,
                       force: bool = False) -> Any:
        """Send ``alert`` as its member's next version of it, or hold it; the future."""
        aid = alert.alert_id
        pub = member.published.get(aid)
        if pub is None:  # reported by the core, so it has one; a stale hold otherwise
            return None
        content = digest(msgspec.structs.replace(alert, created_at=""))
        if content == pub.digest:
            self.held.pop(aid, None)
            return None
        done = self._done_alerts.get(partition, {}).get(aid)
        if done is not None and done[0] >= pub.version:
            if done[1] == content:  # a previous owner published exactly this
                pub.version, pub.digest = done[0], content
                self.metrics.replay_skipped("alert").inc()
                return None
            pub.version = done[0]
        now = self.clock()
        if pub.version and not force:
            due = self._last_sent.get(aid, 0.0) + self.settings.alert_update_interval
            if due > now:
                self.held[aid] = Held(alert, partition, due)
                return None
        self.held.pop(aid, None)
        pub.version += 1
        pub.digest = content
        self._last_sent[aid] = now
        if len(self._last_sent) > 100_000:
            self._last_sent.clear()
        if pub.version > 1:
            alert = msgspec.structs.replace(alert, version=pub.version,
                                            updated_at=format_ts(time.time()))
            sent.updates.append(alert)
        else:
            sent.new.append(alert)
        return await self.producer.send(self.settings.topic_alerts, _encode(alert),
                                        key=alert.user_id.encode(), partition=partition)

    def _note_held(self) -> None:
        """Name the members with held versions in their partitions' marks."""
        by_partition: dict[int, set[str]] = {}
        for held in self.held.values():
            by_partition.setdefault(held.partition, set()).add(held.alert.user_id)
        for p, mark in self.covered.items():
            now_held = sorted(by_partition.get(p, ()))
            if now_held != mark.held:
                mark.held = now_held
                self._changed.add(p)

    async def _settle(self, pending: list[tuple[str, int, Any]]) -> None:
        # Wait for the broker: only then may the state that covers these events be stored.
        sent = await asyncio.gather(*(fut for _, _, fut in pending))
        for (kind, p, _), meta in zip(pending, sent, strict=True):
            if kind == "dead_letters" and not self.dlq_by_partition:
                continue
            mark = self.covered.setdefault(p, Mark())
            setattr(mark, kind, max(getattr(mark, kind), meta.offset + 1))
            self._changed.add(p)

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
        # Same partition as the source: per-partition order is kept, and a restarted worker
        # can read back what it already dead-lettered.
        return await self.producer.send(self.settings.topic_dlq, value, key=msg.key,
                                        headers=headers, partition=msg.partition
                                        if self.dlq_by_partition else None)


async def read_tails(s: Settings, marks: Mapping[int, Mark], dlq_by_partition: bool
                     ) -> tuple[dict[int, dict[str, tuple[int, int]]], dict[int, set[int]]]:
    """Alert versions and dead-lettered source offsets on each partition from its mark to
    the end: per alert id, its highest version and that version's content digest."""
    alerts: dict[int, dict[str, tuple[int, int]]] = {}
    dead: dict[int, set[int]] = {}
    starts = {TopicPartition(s.topic_alerts, p): m.alerts for p, m in marks.items()}
    if dlq_by_partition:
        starts.update({TopicPartition(s.topic_dlq, p): m.dead_letters for p, m in marks.items()})
    consumer = AIOKafkaConsumer(**aiokafka_options(s), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
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
                        found = _read_version(r.value)
                        if found is not None:
                            seen = alerts.setdefault(tp.partition, {})
                            if found[0] not in seen or seen[found[0]][0] < found[1]:
                                seen[found[0]] = (found[1], found[2])
                    else:
                        offset = dict(r.headers or ()).get("accesswatch-source-offset")
                        if offset is not None:
                            dead.setdefault(tp.partition, set()).add(int(offset))
            todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return alerts, dead


def _read_version(raw: bytes | None) -> tuple[str, int, int] | None:
    """(alert id, version, content digest) of a published alert; None if not ours."""
    try:
        alert = _alert.decode(raw or b"")
    except msgspec.DecodeError:
        return None
    version = alert.version
    content = digest(msgspec.structs.replace(alert, created_at="", version=1, updated_at=None))
    return alert.alert_id, version, content
