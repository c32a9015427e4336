"""Per-member state: live objects in memory, a compacted changelog topic on the broker.

The state changelog has a partition per events partition; a member's record
goes to the partition their events arrive on, so whoever owns that events
partition recovers it by reading the changelog partition from the start
(``read_changelog``).  Between two checkpoints the live ``Member`` objects
change in place and are only noted as changed; ``take_changed`` encodes each
changed member once, at the checkpoint (``streams/checkpoint.py``).  A member
active in ten batches between two checkpoints costs one encode and one
changelog record, not ten.

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

from collections.abc import Iterable

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from accesswatch.core import Member
from streams.connect import aiokafka_options
from streams.settings import Settings

Records = dict[bytes, bytes]  # changelog key → value


class StoredState(Member):
    # (events partition, offset after the last event applied); the odd name keeps it
    # clear of any field the core's UserState may grow.
    applied: tuple[int, int] | None = msgspec.field(default=None,
                                                    name="__accesswatch_applied__")


_FIELDS = Member.__struct_fields__
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(StoredState)


def encode_stored(state: StoredState) -> bytes:
    return _encoder.encode(state)


def decode_stored(raw: bytes) -> StoredState:
    return _decoder.decode(raw)


def stored(state: Member) -> StoredState:
    """``state`` as a ``StoredState`` (the same object when it already is one)."""
    if isinstance(state, StoredState):
        return state
    return StoredState(**{name: getattr(state, name) for name in _FIELDS})


def already_applied(state: Member | None, partition: int, offset: int) -> bool:
    """True when ``state`` already includes the event at ``partition``/``offset``."""
    applied = getattr(state, "applied", None)
    return applied is not None and applied[0] == partition and offset < applied[1]


class StateStore:
    """The members of the partitions this worker holds: as stored, and as they are now."""

    def __init__(self) -> None:
        self.stored: dict[int, Records] = {}  # partition → records as last written or read
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
        """The member's live state, or the stored one (decoded once) on first sight."""
        live = self.live[partition]
        state = live.get(user_id)
        if state is None:
            raw = self.stored[partition].get(user_id.encode())
            if raw is not None:
                state = live[user_id] = decode_stored(raw)
        return state

    def as_stored(self, user_id: str, partition: int) -> StoredState | None:
        """The member as the last checkpoint stored them (a fresh object)."""
        raw = self.stored[partition].get(user_id.encode())
        return decode_stored(raw) if raw is not None else None

    def put(self, states: dict[str, tuple[Member, int]],
            applied: dict[str, tuple[int, int]] | None = None) -> None:
        """A batch's members, changed in place: stored at the next checkpoint."""
        for uid, (state, partition) in states.items():
            kept = self.live[partition][uid] = stored(state)
            if applied and uid in applied:
                kept.applied = applied[uid]
            self.changed[uid] = partition

    def take_changed(self) -> dict[int, list[tuple[bytes, bytes]]]:
        """Each changed member encoded once, by partition; the store now holds these."""
        out: dict[int, list[tuple[bytes, bytes]]] = {}
        for uid, p in self.changed.items():
            state = self.live.get(p, {}).get(uid)
            if state is None:  # its partition went back since
                continue
            key, value = uid.encode(), encode_stored(state)
            self.stored[p][key] = value
            out.setdefault(p, []).append((key, value))
        self.changed.clear()
        return out

    def back_to_stored(self, partitions: Iterable[int]) -> None:
        """Drop what changed since the last checkpoint on ``partitions``."""
        gone = set(partitions)
        for p in gone:
            if p in self.live:
                self.live[p] = {}
        self.changed = {uid: p for uid, p in self.changed.items() if p not in gone}

    def forget(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        self.back_to_stored(gone)
        for p in gone:
            self.stored.pop(p, None)
            self.live.pop(p, None)
            self.ends.pop(p, None)


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


async def read_changelog(s: Settings, partitions: Iterable[int]
                         ) -> tuple[dict[int, Records], dict[int, int]]:
    """Each changelog partition from its start to its end: the last value of each key
    (a tombstone deletes it), and the end offset read up to."""
    tps = [TopicPartition(s.state_changelog, p) for p in sorted(set(partitions))]
    records: dict[int, Records] = {tp.partition: {} for tp in tps}
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
                into = records[tp.partition]
                for r in batch:
                    if r.key is None:
                        continue
                    if r.value is None:
                        into.pop(r.key, None)
                    else:
                        into[r.key] = r.value
            todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return records, {tp.partition: ends[tp] for tp in tps}
