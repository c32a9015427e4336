"""What the state changelog holds for a member: their state and how far it goes.

A worker killed between writing state and committing offsets leaves state on
the changelog that already includes events the group will deliver again.
Applying them twice would count them twice in every window and score.  So the
stored state also says which event it includes up to (``applied``: the
partition and the offset after the member's last event), and a replayed
event at or below that is skipped.

The extra field is one more map entry: the core's ``decode_state`` still reads
these records (unknown keys are ignored), and records written before it
existed decode with ``applied`` unset.

>>> s = StoredState(last_t=5.0, applied=(2, 41))
>>> decode_stored(encode_stored(s)).applied
(2, 41)
"""

from __future__ import annotations

import msgspec

from accesswatch.core import Member


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
