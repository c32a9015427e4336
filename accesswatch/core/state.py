"""Per-user state: a plain value the core reads and returns.

Faust keeps it in a changelogged table, the backtest in a dict; both encode it
with msgspec (``encode_state`` / ``decode_state``).
"""

from __future__ import annotations

import msgspec

from accesswatch.core.features import Behaviour


class Fold(msgspec.Struct, array_like=True, gc=False):
    """An alert still open for folding further firings of its rule."""

    alert_id: str
    first: float
    last: float
    count: int


# (event time, event_id, subject_id, unjustified)
Entry = tuple[float, str, str | None, bool]


class UserState(msgspec.Struct):
    last_t: float = 0.0
    windows: dict[str, list[Entry]] = msgspec.field(default_factory=dict)
    # rule id -> subject id -> [(local day ordinal, event_id)]
    days_seen: dict[str, dict[str, list[tuple[int, str]]]] = msgspec.field(default_factory=dict)
    # rule id -> [hour index, opens that hour, usual opens per active hour, active hours]
    baselines: dict[str, list[float]] = msgspec.field(default_factory=dict)
    folds: dict[str, Fold] = msgspec.field(default_factory=dict)
    risk: float = 0.0
    risk_t: float = 0.0
    risk_armed: bool = True
    risk_evidence: list[str] = msgspec.field(default_factory=list)
    risk_reasons: list[str] = msgspec.field(default_factory=list)
    # Behavioural features for the anomaly model (tracked only when a model is loaded).
    # Stored under a new key since the compact layout: a state stored before it
    # carries a "behaviour" map that decoding ignores, and that member's tracking
    # starts afresh (their usual rate is relearnt within hours).
    behaviour: Behaviour = msgspec.field(default_factory=Behaviour, name="behaviour_v2")


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(UserState)


def encode_state(state: UserState) -> bytes:
    return _encoder.encode(state)


def decode_state(raw: bytes) -> UserState:
    return _decoder.decode(raw)
