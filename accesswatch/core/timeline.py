"""A member's events in event time, however they arrive.

Feeds deliver late, out of order and more than once (contract v1.1).  The rules
and features are written for events in time order, so the core keeps them that
way, per member:

- the member's recent events (the *log*, back to the horizon and a little
  more), the state before the log's first event (the *base*), and, in the
  worker's memory only, *snapshots* of the state along the log;
- an event at or past the member's newest runs on the state as it is;
- an event behind it rewinds the state to the latest snapshot before it (the
  base if none) and the log runs again from there with the newcomer in its
  place: by construction, what time order would have given;
- an event more than the horizon behind the member's newest is refused
  (``too_late``), and an event_id already in the log is a repeat and changes
  nothing.

Memory per member: the log holds the events of the horizon (24 h by default)
plus up to one snapshot interval, each encoded without its query text (about
150 bytes); the worker keeps at most ``MAX_SNAPSHOTS`` snapshots of the rules'
state beside it.  After a restart the snapshots are gone and the first late
event of a member runs their whole log again.

>>> timeline = Timeline(horizon=86400.0)
>>> admitted = timeline.admit(events, members)   # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import NamedTuple

import msgspec

from accesswatch.contract.events import AccessEvent
from accesswatch.core.state import STATE_FIELDS, Member, UserState, decode_state, encode_state

SNAPSHOT_EVERY = 600.0  # event-time seconds between a member's snapshots
RECENT = 7200.0  # snapshots this close to the newest are all kept ...
SPACING = 7200.0  # ... older ones one per this many seconds
MAX_SNAPSHOTS = 32
MAX_MEMBERS = 200_000  # members whose snapshots a worker keeps at once

Key = tuple[float, str]
_encode_event = msgspec.msgpack.Encoder().encode
_decode_event = msgspec.msgpack.Decoder(AccessEvent).decode


class Snapshot(NamedTuple):
    key: Key  # the last event the state includes
    state: bytes


class _Memory:
    """What a worker keeps of a member beside the stored record (never stored)."""

    __slots__ = ("member", "seen", "snapshots")

    def __init__(self, member: Member) -> None:
        self.member = member
        self.seen: set[str] = set(member.log_ids)
        self.snapshots: list[Snapshot] = []


@dataclass(slots=True)
class Run:
    """One member's events to judge now, in event time, from ``member``'s state."""

    user_id: str
    member: Member
    events: list[AccessEvent]
    rewound_to: float | None = None  # event time the state went back to, when late


@dataclass(slots=True)
class Admitted:
    runs: list[Run] = field(default_factory=list)
    too_late: list[int] = field(default_factory=list)  # positions in the batch
    repeats: list[int] = field(default_factory=list)


def _key(event: AccessEvent) -> Key:
    return (event.t, event.event_id)


class Timeline:
    """Admits each member's new events and puts them in event time for the detector."""

    def __init__(self, horizon: float) -> None:
        self.horizon = horizon
        self._memory: dict[str, _Memory] = {}

    def _of(self, user_id: str, member: Member) -> _Memory:
        memory = self._memory.get(user_id)
        if memory is None or memory.member is not member:
            if len(self._memory) >= MAX_MEMBERS:
                self._memory.clear()
            memory = self._memory[user_id] = _Memory(member)
        return memory

    def admit(self, events: Iterable[AccessEvent], members: MutableMapping[str, Member]) -> Admitted:
        """Refuse the too late and the repeats (in arrival order); order the rest."""
        out = Admitted()
        accepted: dict[str, list[AccessEvent]] = {}
        newest: dict[str, float] = {}
        horizon = self.horizon
        for i, event in enumerate(events):
            uid = event.user_id
            top = newest.get(uid)
            if top is None:
                member = members.get(uid)
                if member is None:
                    member = members[uid] = Member()
                top = member.newest
            t = event.t
            if t < top - horizon:
                out.too_late.append(i)
                continue
            seen = self._of(uid, members[uid]).seen
            if event.event_id in seen:
                out.repeats.append(i)
                continue
            seen.add(event.event_id)
            newest[uid] = t if t > top else top
            run = accepted.get(uid)
            if run is None:
                accepted[uid] = [event]
            else:
                run.append(event)
        for uid, run in accepted.items():
            out.runs.append(self._order(uid, members[uid], run))
        return out

    def _order(self, uid: str, member: Member, events: list[AccessEvent]) -> Run:
        if len(events) > 1:
            events.sort(key=_key)
        raws = [_encode_event(msgspec.structs.replace(e, query=None)) for e in events]
        log_t, log_ids = member.log_t, member.log_ids
        first = _key(events[0])
        if not log_t or first > (log_t[-1], log_ids[-1]):
            log_t.extend(e.t for e in events)
            log_ids.extend(e.event_id for e in events)
            member.log_raw.extend(raws)
            return Run(uid, member, events)
        # Late: back to the latest snapshot before it, then the log again from there.
        snapshots = self._of(uid, member).snapshots
        j = bisect.bisect_left(snapshots, first, key=lambda s: s.key) - 1
        if j >= 0:
            start: Key | None = snapshots[j].key
            state = decode_state(snapshots[j].state)
        else:
            start = member.base_key
            state = decode_state(member.base) if member.base else UserState()
        del snapshots[j + 1 :]
        p = 0 if start is None else _after(log_t, log_ids, start)
        raw_log = member.log_raw
        old = [(log_t[k], log_ids[k], raw_log[k], None) for k in range(p, len(log_t))]
        new = [(e.t, e.event_id, raw, e) for e, raw in zip(events, raws, strict=True)]
        merged = list(heapq.merge(old, new, key=lambda x: (x[0], x[1])))
        log_t[p:] = [m[0] for m in merged]
        log_ids[p:] = [m[1] for m in merged]
        raw_log[p:] = [m[2] for m in merged]
        ordered = [m[3] if m[3] is not None else _decode_event(m[2]) for m in merged]
        for name in STATE_FIELDS:
            setattr(member, name, getattr(state, name))
        return Run(uid, member, ordered, rewound_to=first[0])

    def settle(self, run: Run) -> None:
        """After a run: snapshot the state if due; let go of what fell past the horizon."""
        member = run.member
        memory = self._of(run.user_id, member)
        snapshots = memory.snapshots
        log_t, log_ids = member.log_t, member.log_ids
        newest = log_t[-1]
        last = snapshots[-1].key[0] if snapshots else (
            member.base_key[0] if member.base_key is not None else float("-inf"))
        if newest - last >= SNAPSHOT_EVERY:
            snapshots.append(Snapshot((newest, log_ids[-1]), encode_state(member)))
            _thin(snapshots, newest)
        cutoff = newest - self.horizon
        j = bisect.bisect_left(snapshots, cutoff, key=lambda s: s.key[0]) - 1
        if j >= 0:
            snap = snapshots[j]
            p = _after(log_t, log_ids, snap.key)
            memory.seen.difference_update(log_ids[:p])
            del log_t[:p], log_ids[:p], member.log_raw[:p]
            member.base, member.base_key = snap.state, snap.key
            del snapshots[: j + 1]


def _after(log_t: list[float], log_ids: list[str], key: Key) -> int:
    """Position in the log of the first event after ``key``."""
    i = bisect.bisect_right(log_t, key[0])
    while i > 0 and log_t[i - 1] == key[0] and log_ids[i - 1] > key[1]:
        i -= 1
    return i


def _thin(snapshots: list[Snapshot], newest: float) -> None:
    """Keep recent snapshots all, older ones one per ``SPACING``, at most ``MAX_SNAPSHOTS``."""
    kept: list[Snapshot] = []
    for s in snapshots:
        if not kept or newest - s.key[0] <= RECENT or s.key[0] - kept[-1].key[0] >= SPACING:
            kept.append(s)
    snapshots[:] = kept[-MAX_SNAPSHOTS:]
