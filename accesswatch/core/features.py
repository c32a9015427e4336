"""Behavioural features for the anomaly model, from per-user state.

The same code runs in the backtest, in training and in the live worker.  A
member gets a feature row at most once per ``SCORE_EVERY`` seconds of event
time (on an event that opened a record), so the rows, and so the model's
verdicts, do not depend on how a driver cuts the stream into batches.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from itertools import pairwise
from operator import itemgetter

import msgspec

from accesswatch.core.context import EventContext

SCORE_EVERY = 300.0
HOUR = 3600.0
RECENT = 600.0  # "rapid succession": the last ten minutes
KNOWN_TERMINALS = 24
CASUAL_TYPES = frozenset({"vehicle", "address"})
PRINTS = frozenset({"print", "export"})
_time = itemgetter(0)  # an entry's event time, the sort key

# Raw values the tracker emits, in this order.  The model derives its own
# columns (ratios to the member's and the peer group's usual) from these.
RAW = (
    "opens_1h",  # records opened in the last hour
    "usual_per_hour",  # the member's usual opens per active hour (EWMA)
    "distinct_10m",  # distinct records opened in the last ten minutes
    "median_gap_10m",  # median seconds between those opens (600 if fewer than 2)
    "unjustified_share_1h",  # share of the hour's opens: people/incidents, no justifying case
    "out_of_area_1h",  # opens of records from another area, no justifying case
    "prints_1h",  # prints and exports in the last hour
    "off_duty_minutes",  # minutes outside every rostered duty (0 on duty or no roster)
    "new_terminal",  # 1 when this terminal is new to the member
    "idle_hours",  # hours since the member's previous event
)


class Behaviour(msgspec.Struct, gc=False):
    """The slice of per-user state the features need."""

    # (t, subject_id, flags) for opens in the last hour; flags: 1 suspect, 2 out of area, 4 print
    recent: list[tuple[float, str, int]] = msgspec.field(default_factory=list)
    hour: float = -1.0
    hour_count: float = 0.0
    usual: float = 0.0
    active_hours: float = 0.0
    last_t: float = 0.0
    next_score: float = 0.0
    terminals: list[str] = msgspec.field(default_factory=list)
    seen: int = 0
    # An odd hour counts once towards risk, however many rows it scores.
    odd_until: float = 0.0
    # Running counts over ``recent``: [opens, doubtful opens, out-of-area opens, prints].
    # None (a state stored before they existed) until a row next needs them.
    tally: list[int] | None = None


@dataclass(slots=True)
class Row:
    """One feature row, tied to the event that triggered it."""

    user_id: str
    event_id: str
    t: float
    peer: str
    values: tuple[float, ...]


def observe(b: Behaviour, ctx: EventContext) -> Row | None:
    """Fold one event into ``b``; return a row when this member is due a score.

    This runs for every event, so the common case (an open in time order, from
    the member's usual terminal, not yet due a score) does its bookkeeping with
    few calls, and the hour window is trimmed only when a score is considered:
    a row always sees exactly the last hour, however late the trim.
    """
    ev, t = ctx.event, ctx.t
    last = b.last_t
    if t > last:
        b.last_t = t
    b.seen += 1
    terminal, terminals = ev.terminal_id, b.terminals
    # Most events come from the terminal the member last started using.
    new_terminal = (not terminals or terminals[-1] != terminal) and _terminal(b, terminal)
    sid = ctx.sid
    printed = ev.action in PRINTS
    if sid is None:
        if not printed:
            return None
        flags = 4
    elif ctx.subject_type in CASUAL_TYPES or ctx.justified:
        flags = 4 if printed else 0
    else:
        flags = 5 if printed else 1
        staff, subject = ctx.staff, ctx.subject
        if (
            staff is not None
            and subject is not None
            and subject.area
            and subject.area != staff.area
            and ctx.ref.is_area(staff.area)
        ):
            flags |= 2
    if t // HOUR > b.hour:  # b.hour is -1 before the first
        _next_hour(b, t)
    b.hour_count += 1
    entry = (t, sid or "", flags)
    recent, tally = b.recent, b.tally
    if not recent or recent[-1][0] <= t:
        recent.append(entry)
    else:
        bisect.insort(recent, entry, key=_time)
    if tally is not None:
        if flags:
            _count(tally, entry, 1)
        else:  # an open (flags 0 always has a record)
            tally[0] += 1
    if t < b.next_score:
        return None
    horizon = b.last_t - HOUR
    if recent[0][0] < horizon:
        cut = bisect.bisect_left(recent, horizon, key=_time)
        if tally is not None:
            for gone in recent[:cut]:
                _count(tally, gone, -1)
        del recent[:cut]
    if not _busy(b, t, flags):
        return None
    b.next_score = t + SCORE_EVERY
    staff = ctx.staff
    peer = f"{staff.role}/{staff.unit}" if staff is not None else "unknown"
    idle = (t - last) / HOUR if last else 0.0
    return Row(ev.user_id, ev.event_id, t, peer, _values(b, ctx, t, new_terminal, idle))


def _busy(b: Behaviour, t: float, flags: int) -> bool:
    """Worth a score: a burst, a print or export, or a doubtful open.

    A member opening a justified record every quarter of an hour, as usual,
    tells the model nothing it has not seen; skipping them keeps scoring cheap.
    """
    if flags:
        return True
    recent = b.recent
    n = len(recent)
    return (n >= 3 and recent[n - 3][0] >= t - RECENT) or n > b.usual + 2


def _values(
    b: Behaviour, ctx: EventContext, t: float, new_terminal: bool, idle: float
) -> tuple[float, ...]:
    recent_all = b.recent
    # In order (the usual case) the member's last hour is everything kept.
    if recent_all[-1][0] <= t:
        hi = len(recent_all)
    else:
        hi = bisect.bisect_right(recent_all, t, key=_time)
    lo = 0
    if recent_all[0][0] < t - HOUR:
        lo = bisect.bisect_left(recent_all, t - HOUR, key=_time)
    # The hour's opens, doubtful and out-of-area opens and prints: in order (the usual
    # case) the hour is everything kept, and the running counts cover it.
    if lo == 0 and hi == len(recent_all):
        if b.tally is None:
            b.tally = _tally(recent_all)
        n, suspect, away, prints = b.tally
    else:
        n, suspect, away, prints = _tally(recent_all[lo:hi])
    # The last ten minutes' opens: the end of the hour.
    since = t - RECENT
    if recent_all[lo][0] >= since:
        start = lo
    else:
        start = bisect.bisect_left(recent_all, since, lo, hi, key=_time)
    window = recent_all[start:hi]
    times = [e[0] for e in window if e[1]]
    distinct = len({e[1] for e in window if e[1]})
    if len(times) < 2:
        median_gap = RECENT
    elif len(times) == 2:
        median_gap = times[1] - times[0]
    else:
        gaps = sorted([b2 - a for a, b2 in pairwise(times)])
        median_gap = gaps[len(gaps) // 2]
    roster = ctx.ref.roster(ctx.event.user_id)
    off = 0.0
    if roster is not None and not roster.covers(t, 0.0):
        off = min(600.0, (roster.nearest_gap(t) or 0.0) / 60)
    return (
        float(n),
        b.usual,
        float(distinct),
        median_gap,
        suspect / n if n else 0.0,
        float(away),
        float(prints),
        off,
        1.0 if new_terminal else 0.0,
        min(idle, 24 * 90.0),
    )


def _tally(entries: list[tuple[float, str, int]]) -> list[int]:
    """Running counts for ``entries`` counted afresh."""
    tally = [0, 0, 0, 0]
    for entry in entries:
        _count(tally, entry, 1)
    return tally


def _count(tally: list[int], entry: tuple[float, str, int], step: int) -> None:
    """Add (``step`` 1) or take away (-1) one ``recent`` entry from the running counts."""
    _, sid, flags = entry
    if flags & 4:
        tally[3] += step
    if sid:
        tally[0] += step
        if flags & 1:
            tally[1] += step
        if flags & 2:
            tally[2] += step


def _next_hour(b: Behaviour, t: float) -> None:
    """Close the member's hour: their usual opens per active hour, winsorised
    like the volume rule's."""
    hour = t // HOUR
    if b.hour < 0:
        b.hour = hour
    if hour > b.hour:
        if b.hour_count > 0:
            capped = min(b.hour_count, 3 * b.usual + 5)
            b.usual = b.hour_count if b.active_hours == 0 else b.usual + 0.1 * (capped - b.usual)
            b.active_hours += 1
        b.hour, b.hour_count = hour, 0.0


def _terminal(b: Behaviour, terminal: str) -> bool:
    """True when ``terminal`` is new to the member (``b.seen`` counts this event)."""
    if terminal in b.terminals:
        return False
    b.terminals = [*b.terminals, terminal][-KNOWN_TERMINALS:]
    # The first few terminals are learning, not news.
    return b.seen > 20
