"""Per-user state between the detection core and the Faust table.

Two costs dominated a worker that decoded each member's state from the table
and wrote it to the changelog once per batch: a msgpack decode per member per
batch, and a changelog record per member per batch (more bytes than the
events themselves).  So:

- live ``Member`` objects stay in memory between batches;
- after each batch the member's state is encoded into the table (cheap, and
  what the one-by-one fallback reloads from when the core fails mid-batch);
- the changelog write is held until Faust next commits offsets: ``flush``
  runs from the commit sensor, before Faust picks the offsets to commit and
  flushes the producer, so every committed event's state is on the changelog
  first.  A member active in ten batches between two commits costs one
  changelog record, not ten.

>>> states = UserStates(table)                      # doctest: +SKIP
>>> states.load("E1001")                           # doctest: +SKIP
>>> states.store({"E1001": (state, 2)}); states.flush()   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from faust.sensors import Sensor

from accesswatch.core import Member
from streams.stored import decode_stored, encode_stored, stored

# (changelog partition, key, value) records to write after the members' at each flush.
Trailer = Callable[[], list[tuple[int, bytes, bytes]]]


class StateTable(Protocol):
    """What ``UserStates`` needs of a Faust table (``faust.Table`` fits)."""

    @property
    def data(self) -> Any: ...
    def send_changelog(self, partition: int | None, key: Any, value: Any,
                       key_serializer: Any = None, value_serializer: Any = None) -> Any: ...


class UserStates:
    """Live states for the members this worker has seen; changelog writes coalesced."""

    def __init__(self, table: StateTable, trailer: Trailer | None = None) -> None:
        self.table = table
        self.trailer = trailer  # the outputs' marks: they vouch for the records before them
        self._live: dict[str, Member] = {}
        # member → partition their events arrive on; encoded value waits in the table
        self._unsent: dict[str, int] = {}

    def load(self, user_id: str) -> Member | None:
        """The member's live state, or the table's (decoded once) on first sight."""
        state = self._live.get(user_id)
        if state is None:
            raw = self.table.data.get(user_id.encode())
            if raw is not None:
                state = self._live[user_id] = decode_stored(raw)
        return state

    def reload(self, user_id: str) -> Member | None:
        """The state as the table holds it: as it was before the batch now running."""
        raw = self.table.data.get(user_id.encode())
        return decode_stored(raw) if raw is not None else None

    def store(self, states: dict[str, tuple[Member, int]],
              applied: dict[str, tuple[int, int]] | None = None) -> None:
        """A batch's outcome: into the table now, onto the changelog at the next flush.

        ``applied`` says, per member, how far into their partition the state now goes.
        """
        data = self.table.data
        for uid, (state, partition) in states.items():
            kept = self._live[uid] = stored(state)
            if applied and uid in applied:
                kept.applied = applied[uid]
            data[uid.encode()] = encode_stored(kept)
            self._unsent[uid] = partition

    def flush(self) -> int:
        """Write each changed member's latest state to the changelog, once; return how many.

        To the partition the member's events came on, not the one Faust would
        pick from the current event, so the worker that owns that partition
        after a restart or rebalance recovers it.
        """
        data, send = self.table.data, self.table.send_changelog
        for uid, partition in self._unsent.items():
            key = uid.encode()
            send(partition, key, data[key])
        sent = len(self._unsent)
        self._unsent.clear()
        for partition, key, raw in self.trailer() if self.trailer is not None else ():
            data[key] = raw
            send(partition, key, raw)
        return sent

    def forget(self) -> None:
        """After a rebalance the table (recovered from the changelog) is the truth again."""
        self.flush()
        self._live.clear()

    @property
    def unsent(self) -> int:
        return len(self._unsent)


class FlushOnCommit(Sensor):
    """Faust calls ``on_commit_initiated`` before it chooses offsets and flushes the producer."""

    def __init__(self, states: UserStates) -> None:
        super().__init__()
        self.states = states

    def on_commit_initiated(self, consumer: Any) -> Any:
        self.states.flush()
        return None
