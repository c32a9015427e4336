"""Per-member state: live objects in memory, a compacted changelog topic on the broker.

The state changelog has a partition per events partition; a member's record
goes to the partition their events arrive on, so whoever owns that events
partition recovers it by reading the changelog partition from the start
(``read_changelog``).  Between two checkpoints the live ``Member`` objects
change in place and are only noted as changed; at the checkpoint each changed
member is encoded once, as it goes out (``take_changed``, ``encoded``,
``streams/checkpoint.py``).  A member active in ten batches between two
checkpoints costs one encode and one changelog record, not ten.

A member is held once: a record read back is decoded on first sight and let
go, and a record written is not kept.  The changelog holds the checkpointed
copy: a partition that has to go back to it is read again.  A batch that may
have to be retried event by event keeps its own copies, of its members only
(``rollback_loaders``).

A stored state also says which event it includes up to (``applied``: the
events partition and the offset after the member's last event).  A worker
killed between storing state and committing offsets leaves state that
already includes events the group will deliver again; those are skipped, not
counted twice.  The field is one more map entry, so the core's own decoder
still reads these records, and records without it decode with it unset.

>>> s = StoredState(last_t=5.0, applied=(2, 41))
>>> decode_stored(encode_stored(s)).applied
(2, 41)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from accesswatch.core import Member
from streams.connect import aiokafka_options
from streams.settings import Settings

Records = dict[bytes, bytes]  # changelog key → value
# Keys of records that are not members (the outputs' marks) begin with a byte that never
# occurs in UTF-8, so no user id can collide with one.
NOT_A_MEMBER = b"\xff"


class StoredState(Member):
    # (events partition, offset after the last event applied); the odd name keeps it
    # clear of any field the core's UserState may grow.
    applied: tuple[int, int] | None = msgspec.field(default=None,
                                                    name="__accesswatch_applied__")


_FIELDS = Member.__struct_fields__
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(StoredState)
Loader = Callable[[str, int], StoredState | None]  # (user id, partition) → state


def encode_stored(state: StoredState) -> bytes:
    return _encoder.encode(state)


def decode_stored(raw: bytes) -> StoredState:
    return _decoder.decode(raw)


def stored(state: Member) -> StoredState:
    """``state`` as a ``StoredState`` (the same object when it already is one)."""
    if isinstance(state, StoredState):
        return state
    return StoredState(**{name: getattr(state, name) for name in _FIELDS})


class StateStore:
    """The members of the partitions this worker holds: as read back, and as they are now."""

    def __init__(self) -> None:
        # partition → records read back and not live yet, and the outputs' marks
        self.stored: dict[int, Records] = {}
        self.live: dict[int, dict[str, StoredState]] = {}  # partition → member → state
        self.changed: dict[str, int] = {}  # member → partition, since the last checkpoint
        self.ends: dict[int, int] = {}  # partition → changelog end offset as we left it

    def holds(self, partition: int) -> bool:
        return partition in self.stored

    def restore(self, partition: int, records: Records, end: int) -> None:
        """A partition as read from the changelog; nothing of it live yet."""
        self.stored[partition] = records
        self.live[partition] = {}
        self.ends[partition] = end

    def load(self, user_id: str, partition: int) -> StoredState | None:
        """The member's live state, or the stored one on first sight: decoded, and the
        record let go (the live object is the member from then on)."""
        live = self.live[partition]
        state = live.get(user_id)
        if state is None:
            raw = self.stored[partition].pop(user_id.encode(), None)
            if raw is not None:
                state = live[user_id] = decode_stored(raw)
        return state

    def rollback_loaders(self) -> tuple[Loader, Loader]:
        """``(load, before)`` for a batch that may be retried event by event: ``load`` is
        ``self.load`` that also encodes each member it hands out, before the core changes
        them; ``before`` decodes that copy afresh (``None``: the member is new)."""
        kept: dict[str, bytes] = {}

        def load(user_id: str, partition: int) -> StoredState | None:
            state = self.load(user_id, partition)
            if state is not None:
                kept[user_id] = encode_stored(state)
            return state

        def before(user_id: str, partition: int) -> StoredState | None:
            raw = kept.get(user_id)
            return decode_stored(raw) if raw is not None else None

        return load, before

    def put(self, states: dict[str, tuple[Member, int]],
            applied: dict[str, tuple[int, int]] | None = None) -> None:
        """A batch's members, changed in place: stored at the next checkpoint."""
        for uid, (state, partition) in states.items():
            kept = self.live[partition][uid] = stored(state)
            if applied and uid in applied:
                kept.applied = applied[uid]
            self.changed[uid] = partition

    def take_changed(self) -> dict[int, list[tuple[bytes, StoredState]]]:
        """Each member changed since the last checkpoint, by partition: its key and live
        state, to be ``encoded`` as it goes out (one encoded record at a time in memory)."""
        out: dict[int, list[tuple[bytes, StoredState]]] = {}
        for uid, p in self.changed.items():
            state = self.live.get(p, {}).get(uid)
            if state is None:  # its partition went back since
                continue
            out.setdefault(p, []).append((uid.encode(), state))
        self.changed.clear()
        return out

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions let go, or going back to their last checkpoint: read them again."""
        gone = set(partitions)
        for p in gone:
            self.stored.pop(p, None)
            self.live.pop(p, None)
            self.ends.pop(p, None)
        self.changed = {uid: p for uid, p in self.changed.items() if p not in gone}


def encoded(records: Iterable[tuple[bytes, StoredState]]) -> Iterator[tuple[bytes, bytes]]:
    """``take_changed``'s records as changelog records, each encoded when asked for."""
    for key, state in records:
        yield key, encode_stored(state)


async def changelog_ends(s: Settings, partitions: Iterable[int]) -> dict[int, int]:
    """The end offset of each changelog partition."""
    tps = [TopicPartition(s.state_changelog, p) for p in partitions]
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(**aiokafka_options(s), group_id=None)
    await consumer.start()
    try:
        return {tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


class Changelog(NamedTuple):
    """Changelog partitions as read back (``read_changelog``), each by partition."""

    records: dict[int, Records]  # the last value of each key
    ends: dict[int, int]  # the end offset read up to
    after_mark: dict[int, set[bytes]]  # member keys last written after the last mark


def fold(into: Records, after_mark: set[bytes], key: bytes | None, value: bytes | None
         ) -> None:
    """One changelog record onto ``into``, a tombstone (``value`` None) deleting its key.

    ``after_mark`` gathers the members written since the last mark: a checkpoint writes its
    members, then its marks, so these are what a checkpoint cut short left.  Compaction
    keeps each key's last record in place, so it does not change the answer."""
    if key is None:
        return
    if key.startswith(NOT_A_MEMBER):
        after_mark.clear()
    elif value is None:
        after_mark.discard(key)
    else:
        after_mark.add(key)
    if value is None:
        into.pop(key, None)
    else:
        into[key] = value


async def read_changelog(s: Settings, partitions: Iterable[int]) -> Changelog:
    """Each changelog partition from its start to its end (``Changelog``)."""
    tps = [TopicPartition(s.state_changelog, p) for p in sorted(set(partitions))]
    records: dict[int, Records] = {tp.partition: {} for tp in tps}
    after_mark: dict[int, set[bytes]] = {tp.partition: set() for tp in tps}
    consumer = AIOKafkaConsumer(**aiokafka_options(s), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest",
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        todo = set()
        for tp in tps:
            await consumer.seek_to_beginning(tp)
            if await consumer.position(tp) < ends[tp]:
                todo.add(tp)
        while todo:
            for tp, batch in (await consumer.getmany(*todo, timeout_ms=500)).items():
                into, unvouched = records[tp.partition], after_mark[tp.partition]
                for r in batch:
                    fold(into, unvouched, r.key, r.value)
            todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return Changelog(records, {tp.partition: ends[tp] for tp in tps}, after_mark)
