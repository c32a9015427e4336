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
90 bytes); the worker keeps at most ``MAX_SNAPSHOTS`` snapshots of the rules'
state beside it: one every ten minutes of event time for a member whose events
came late in the last horizon, one every two hours for the rest (a snapshot
costs an encode of the member's state; their log is trimmed to the snapshot
before the horizon, so it holds up to two hours more).  After a restart the
snapshots are gone and the first late event of a member runs their whole log
again.

>>> timeline = Timeline(horizon=86400.0)
>>> admitted = timeline.admit(events, members)   # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec

from accesswatch.contract.events import AccessEvent
from accesswatch.core.state import STATE_FIELDS, Member, UserState, decode_state, encode_state

# Event-time seconds between a member's snapshots: often for a member whose events came
# late within the horizon (the next late one replays little), seldom for the rest.
SNAPSHOT_EVERY = 600.0
SNAPSHOT_SELDOM = 7200.0
RECENT = 7200.0  # snapshots this close to the newest are all kept ...
SPACING = 7200.0  # ... older ones one per this many seconds
MAX_SNAPSHOTS = 32
MAX_MEMBERS = 200_000  # members whose snapshots a worker keeps at once
# Events a member's log holds at most, whatever the horizon: their state record must
# stay well inside a Kafka message (1 MB by default).  A member busier than this keeps
# the newest half, and an event older than that is refused as too late.
MAX_LOG = 5000

Key = tuple[float, str]
# An event in the log: its fields as an array, without the member (the log's own), the
# query text (personal data, and no rule reads it) or ``ts`` (``t`` says it).  The log
# is stored in chunks, a run of events each, so a member's record stays a few items.
Logged = tuple[float, str, str, str, str, str | None, str | None, str | None, int | None]
_encode_chunk = msgspec.msgpack.Encoder().encode
_decode_chunk = msgspec.msgpack.Decoder(list[Logged]).decode


def _logged(e: AccessEvent) -> Logged:
    return (e.t, e.event_id, e.terminal_id, e.system, e.action,  # type: ignore[return-value]
            e.subject_type, e.subject_id, e.case_ref, e.result_count)


def _event(row: Logged, user_id: str) -> AccessEvent:
    """An event from the log, to judge again: ``ts`` is left empty (``t`` holds it; no
    rule reads the text, and formatting it for every event run again costs)."""
    t, event_id, terminal, system, action, subject_type, subject_id, case_ref, count = row
    event = AccessEvent(event_id, "", user_id, terminal, system,
                        action, subject_type, subject_id, None, case_ref,  # type: ignore[arg-type]
                        count)
    event.t = t
    return event


class Snapshot(NamedTuple):
    key: Key  # the last event the state includes
    state: bytes


class _Memory:
    """What a worker keeps of a member beside the stored record (never stored): the
    log's times and ids (to place and recognise events) and where its chunks end, and
    the snapshots."""

    __slots__ = ("ends", "ids", "late_until", "member", "seen", "snapshots", "times")

    def __init__(self, member: Member) -> None:
        self.member = member
        self.times: list[float] = []
        self.ids: list[str] = []
        self.ends: list[int] = []  # position after each chunk's last event
        for chunk in member.log:
            for row in _decode_chunk(chunk):
                self.times.append(row[0])
                self.ids.append(row[1])
            self.ends.append(len(self.times))
        self.seen: set[str] = set(self.ids)
        self.snapshots: list[Snapshot] = []
        self.late_until = 0.0  # event time until which the member counts as sent late

    def cut(self, p: int) -> int:
        """Make a chunk end at log position ``p``; return how many chunks hold the
        events before it.  Only a chunk that holds both sides of ``p`` is decoded."""
        ends, log = self.ends, self.member.log
        c = bisect.bisect_left(ends, p)
        if c == len(ends) or ends[c] == p:
            return c + 1 if c < len(ends) else c
        first = ends[c - 1] if c else 0
        if p == first:
            return c
        rows = _decode_chunk(log[c])
        k = p - first
        log[c : c + 1] = [_encode_chunk(rows[:k]), _encode_chunk(rows[k:])]
        ends.insert(c, p)
        return c + 1


@dataclass(slots=True)
class Run:
    """One member's events to judge now, in event time, from ``member``'s state."""

    user_id: str
    member: Member
    memory: _Memory
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

    def admit(
        self, events: Iterable[AccessEvent], members: MutableMapping[str, Member]
    ) -> Admitted:
        """Refuse the too late and the repeats (in arrival order); order the rest."""
        out = Admitted()
        # Per member: [their newest event time, event ids seen, events accepted, memory].
        slots: dict[str, list[Any]] = {}
        horizon = self.horizon
        for i, event in enumerate(events):
            uid = event.user_id
            slot = slots.get(uid)
            if slot is None:
                member = members.get(uid)
                if member is None:
                    member = members[uid] = Member()
                memory = self._of(uid, member)
                newest = member.newest if member.newest > member.last_t else member.last_t
                slot = slots[uid] = [newest, memory.seen, [], memory, member.base_key]
            t = event.t
            if t < slot[0] - horizon or (slot[4] is not None and (t, event.event_id) <= slot[4]):
                out.too_late.append(i)
                continue
            seen = slot[1]
            if event.event_id in seen:
                out.repeats.append(i)
                continue
            seen.add(event.event_id)
            if t > slot[0]:
                slot[0] = t
            slot[2].append(event)
        for uid, slot in slots.items():
            if slot[2]:
                member = members[uid]
                member.newest = slot[0]
                out.runs.append(self._order(uid, member, slot[3], slot[2]))
        return out

    def _order(self, uid: str, member: Member, memory: _Memory, events: list[AccessEvent]
               ) -> Run:
        if len(events) > 1:
            events.sort(key=_key)
        if not member.log and not member.base and member.last_t:
            # A state stored by a release before the log: it is the base the log starts on.
            member.base = encode_state(member)
        times, ids = memory.times, memory.ids
        first = _key(events[0])
        if not times or first > (times[-1], ids[-1]):
            times.extend(e.t for e in events)
            ids.extend(e.event_id for e in events)
            member.log.append(_encode_chunk([_logged(e) for e in events]))
            memory.ends.append(len(times))
            return Run(uid, member, memory, events)
        # Late: back to the latest snapshot before it, then the log again from there.
        snapshots = memory.snapshots
        j = bisect.bisect_left(snapshots, first, key=lambda s: s.key) - 1
        if j >= 0:
            start: Key | None = snapshots[j].key
            state = decode_state(snapshots[j].state)
        else:
            start = member.base_key
            state = decode_state(member.base) if member.base else UserState()
        del snapshots[j + 1 :]
        p = 0 if start is None else _after(times, ids, start)
        c = memory.cut(p)
        old = [row for chunk in member.log[c:] for row in _decode_chunk(chunk)]
        del member.log[c:], memory.ends[c:]
        merged = list(heapq.merge(
            ((row[0], row[1], row, None) for row in old),
            ((e.t, e.event_id, _logged(e), e) for e in events),
            key=lambda x: (x[0], x[1])))
        times[p:] = [m[0] for m in merged]
        ids[p:] = [m[1] for m in merged]
        member.log.append(_encode_chunk([m[2] for m in merged]))
        memory.ends.append(len(times))
        ordered = [m[3] if m[3] is not None else _event(m[2], uid) for m in merged]
        for name in STATE_FIELDS:
            setattr(member, name, getattr(state, name))
        memory.late_until = times[-1] + self.horizon
        return Run(uid, member, memory, ordered, rewound_to=first[0])

    def settle(self, run: Run) -> None:
        """After a run: snapshot the state if due; let go of what fell past the horizon."""
        member, memory = run.member, run.memory
        snapshots = memory.snapshots
        times, ids = memory.times, memory.ids
        newest = times[-1]
        last = snapshots[-1].key[0] if snapshots else (
            member.base_key[0] if member.base_key is not None else float("-inf"))
        every = SNAPSHOT_EVERY if newest < memory.late_until else SNAPSHOT_SELDOM
        if newest - last >= every:
            snapshots.append(Snapshot((newest, ids[-1]), encode_state(member)))
            if len(snapshots) > 8:
                _thin(snapshots, newest)
        cutoff = newest - self.horizon
        if len(times) > MAX_LOG:  # busier than the log holds: keep the newest half
            cutoff = max(cutoff, times[-(MAX_LOG // 2)])
            if not snapshots or snapshots[0].key[0] >= cutoff:
                # No snapshot that old: the base moves up to now.
                if not snapshots or snapshots[-1].key != (newest, ids[-1]):
                    snapshots.append(Snapshot((newest, ids[-1]), encode_state(member)))
                cutoff = math.inf
        if times[0] >= cutoff or not snapshots or snapshots[0].key[0] >= cutoff:
            return
        j = bisect.bisect_left(snapshots, cutoff, key=lambda s: s.key[0]) - 1
        snap = snapshots[j]
        p = _after(times, ids, snap.key)
        c = memory.cut(p)  # a snapshot's key ends a run, and so a chunk: no decode
        memory.seen.difference_update(ids[:p])
        del times[:p], ids[:p], member.log[:c]
        memory.ends[:] = [end - p for end in memory.ends[c:]]
        member.base, member.base_key = snap.state, snap.key
        del snapshots[: j + 1]


def _after(times: list[float], ids: list[str], key: Key) -> int:
    """Position in the log of the first event after ``key``."""
    i = bisect.bisect_right(times, key[0])
    while i > 0 and times[i - 1] == key[0] and ids[i - 1] > key[1]:
        i -= 1
    return i


def _thin(snapshots: list[Snapshot], newest: float) -> None:
    """Keep recent snapshots all, older ones one per ``SPACING``, at most ``MAX_SNAPSHOTS``."""
    kept: list[Snapshot] = []
    for s in snapshots:
        if not kept or newest - s.key[0] <= RECENT or s.key[0] - kept[-1].key[0] >= SPACING:
            kept.append(s)
    snapshots[:] = kept[-MAX_SNAPSHOTS:]
