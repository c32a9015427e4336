"""Per-user state: a plain value the core reads and returns.

``UserState`` is what the rules and features keep: everything they know of a
member, as of the member's events so far, taken in event time.  ``Member``
adds what judging late events in event time needs (``core/timeline.py``): the
member's recent events, the state as it was before them, and which versions of
their alerts have gone out.  Faust keeps a ``Member`` in a table, the backtest
in a dict; both encode it with msgspec (``encode_member`` / ``decode_member``).

Stored layouts change under new field names: a record written by an older
release decodes, the renamed parts start afresh and the rest carries on.
"""

from __future__ import annotations

from operator import attrgetter

import msgspec

from accesswatch.core.alerts import Alert
from accesswatch.core.features import Behaviour

# (event time, event_id, subject_id, flag) in a rule's window, in event-time order
Entry = tuple[float, str, str | None, bool]


class Open(msgspec.Struct, gc=False):
    """An alert whose period may still gain evidence: its content so far."""

    alert: Alert
    end: float  # end of its period, event time: later firings go to another alert
    last: tuple[float, str]  # the latest evidence counted, so none counts twice
    firings: int = 1
    # The alert's own rule's latest reasons, and each other rule's whose firings
    # joined it because they were about the same events (``core/detector.py``).
    own: list[str] = msgspec.field(default_factory=list)
    also: dict[str, str] = msgspec.field(default_factory=dict)


class UserState(msgspec.Struct):
    last_t: float = 0.0
    windows: dict[str, list[Entry]] = msgspec.field(default_factory=dict)
    # rule id -> subject id -> [(local day ordinal, event time, event_id)], the
    # first open of the subject on each day
    days_seen: dict[str, dict[str, list[tuple[int, float, str]]]] = msgspec.field(
        default_factory=dict, name="days_seen_v2"
    )
    # rule id -> [first open's time, then (UTC day, opens that left the window) pairs
    # within the lookback]: the history a usual rate per duty hour is taken from
    baselines: dict[str, list[float]] = msgspec.field(default_factory=dict, name="baselines_v2")
    # alert id -> the alert, while its period is within the horizon
    alerts: dict[str, Open] = msgspec.field(default_factory=dict)
    # the id a rule's alert would have had -> the alert its firings joined instead
    joined: dict[str, str] = msgspec.field(default_factory=dict)
    risk: float = 0.0
    risk_t: float = 0.0
    risk_armed: bool = True
    # (event time, event_id, subject_id) of the accesses behind the risk score
    risk_evidence: list[tuple[float, str, str | None]] = msgspec.field(
        default_factory=list, name="risk_evidence_v3"
    )
    risk_reasons: list[str] = msgspec.field(default_factory=list)
    # Behavioural features for the anomaly model (tracked only when a model is loaded).
    behaviour: Behaviour = msgspec.field(default_factory=Behaviour, name="behaviour_v3")


class Published(msgspec.Struct, array_like=True, gc=False):
    """What the core reported and a driver published of one alert: never rewound."""

    version: int  # the last version published; 0 until first published
    digest: int  # of the content last published (0: none)
    created_at: str
    end: float  # the alert's period end: forgotten once past the horizon
    reported: int = 0  # digest of the content the core last reported


class Member(UserState):
    """A member's state with their recent events (``core/timeline.py``)."""

    # The accepted events after ``base``, in (time, event_id) order, each encoded
    # (``core/timeline.py``: no query text) to be judged again after a late one.
    log: list[bytes] = msgspec.field(default_factory=list, name="log_v1")
    # The state before the log's first event (a UserState, encoded; empty: fresh),
    # and the (time, event_id) of the last event it includes.
    base: bytes = b""
    base_key: tuple[float, str] | None = None
    newest: float = 0.0  # the newest event time accepted: the horizon counts from here
    published: dict[str, Published] = msgspec.field(default_factory=dict)


STATE_FIELDS = UserState.__struct_fields__
_encoder = msgspec.msgpack.Encoder()
_state_decoder = msgspec.msgpack.Decoder(UserState)
_member_decoder = msgspec.msgpack.Decoder(Member)


_state_values = attrgetter(*STATE_FIELDS)


def state_of(member: UserState) -> UserState:
    """The rules' part of ``member`` (a shallow copy when it is a ``Member``)."""
    if type(member) is UserState:
        return member
    return UserState(*_state_values(member))


def encode_state(state: UserState) -> bytes:
    return _encoder.encode(state_of(state))


def decode_state(raw: bytes) -> UserState:
    return _state_decoder.decode(raw)


def encode_member(member: Member) -> bytes:
    return _encoder.encode(member)


def decode_member(raw: bytes) -> Member:
    return _member_decoder.decode(raw)
