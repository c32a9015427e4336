"""Behavioural features for the anomaly model, from per-user state.

The same code runs in the backtest, in training and in the live worker.  A
member gets a feature row at most once per ``SCORE_EVERY`` seconds of event
time (on an event that opened a record), so the rows, and so the model's
verdicts, do not depend on how a driver cuts the stream into batches.
"""

from __future__ import annotations

import bisect
from operator import sub

import msgspec

from accesswatch.core.context import EventContext

SCORE_EVERY = 300.0
HOUR = 3600.0
RECENT = 600.0  # "rapid succession": the last ten minutes
KNOWN_TERMINALS = 24
CASUAL_TYPES = frozenset({"vehicle", "address"})
PRINTS = frozenset({"print", "export"})

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


# What ``Behaviour.flags`` records of each open or print, as bits.
DOUBTFUL = 1  # a person or incident opened with no justifying case
AWAY = 2  # ... and from another area than the member's
PRINTED = 4  # printed or exported
BARE = 8  # no record: a print or export of a search or list
BARE_PRINT = PRINTED | BARE
# The member's first events teach their terminals; a new one after these is news.
LEARNING = 20


class Behaviour(msgspec.Struct, array_like=True, gc=False):
    """The slice of per-user state the features need.

    The last hour's opens and prints are three parallel columns, oldest first:
    event times, record ids ("" for a print of no record) and flags (the bits
    above, one byte each).  A column of plain values per field, rather than a
    tuple per open, keeps a member's state a few compact objects: this state
    is touched on every event, among thousands of members', and encoded after
    every batch.  Stored as an array, so field names are not written each time.
    """

    # The fields every event reads come first.
    last_t: float = 0.0
    next_score: float = 0.0
    hour_end: float = 0.0  # end of the clock hour being counted (0 before the first event)
    hour_count: int = 0
    seen: int = 0  # events seen, counted up to LEARNING + 1
    terminal: str = ""  # the terminal of the member's latest event
    times: list[float] = msgspec.field(default_factory=list)
    sids: list[str] = msgspec.field(default_factory=list)
    flags: bytearray = msgspec.field(default_factory=bytearray)
    usual: float = 0.0
    active_hours: float = 0.0
    terminals: list[str] = msgspec.field(default_factory=list)  # known, newest last
    # An odd hour counts once towards risk, however many rows it scores.
    odd_until: float = 0.0


class Row(msgspec.Struct, gc=False):
    """One feature row, tied to the event that triggered it."""

    user_id: str
    event_id: str
    t: float
    peer: str
    values: tuple[float, ...]


def observe(b: Behaviour, ctx: EventContext) -> Row | None:
    """Fold one event into ``b``; return a row when this member is due a score.

    This runs for every event, so the common case (an open in time order, from
    the member's usual terminal, not yet due a score) is a few appends, and
    the hour is trimmed and counted only when a score is considered: a row
    always sees exactly the last hour, however late the trim.
    """
    ev, t = ctx.event, ctx.t
    last = b.last_t
    if t > last:
        b.last_t = t
    if b.seen <= LEARNING:
        b.seen += 1
    terminal = ev.terminal_id
    # Most events come from the terminal of the member's event before.
    new_terminal = terminal != b.terminal and _terminal(b, terminal)
    sid = ctx.sid
    printed = ev.action in PRINTS
    if sid is None:
        if not printed:
            return None
        sid, flag = "", BARE_PRINT
    elif ctx.subject_type in CASUAL_TYPES or ctx.justified:
        flag = PRINTED if printed else 0
    else:
        flag = PRINTED | DOUBTFUL if printed else DOUBTFUL
        staff, subject = ctx.staff, ctx.subject
        if (
            staff is not None
            and subject is not None
            and subject.area
            and subject.area != staff.area
            and ctx.ref.is_area(staff.area)
        ):
            flag |= AWAY
    if t >= b.hour_end:
        _next_hour(b, t)
    b.hour_count += 1
    times = b.times
    if t >= last:  # in order: nothing kept is later than the member's latest event
        times.append(t)
        b.sids.append(sid)
        b.flags.append(flag)
    else:  # a late arrival, in its place
        i = bisect.bisect_right(times, t)
        times.insert(i, t)
        b.sids.insert(i, sid)
        b.flags.insert(i, flag)
    if t < b.next_score:
        return None
    horizon = b.last_t - HOUR
    if times[0] < horizon:
        cut = bisect.bisect_left(times, horizon)
        del times[:cut], b.sids[:cut], b.flags[:cut]
    if not flag and not _busy(b, t):
        return None
    b.next_score = t + SCORE_EVERY
    staff = ctx.staff
    idle = (t - last) / HOUR if last else 0.0
    return Row(ev.user_id, ev.event_id, t, staff.peer if staff is not None else "unknown",
               _values(b, ctx, t, new_terminal, idle))


def _busy(b: Behaviour, t: float) -> bool:
    """Worth a score though this open is plain: a burst, or more than usual.

    (A print or export, or a doubtful open, is always worth one.)  A member
    opening a justified record every quarter of an hour, as usual, tells the
    model nothing it has not seen; skipping them keeps scoring cheap.
    """
    times = b.times
    n = len(times)
    return (n >= 3 and times[n - 3] >= t - RECENT) or n > b.usual + 2


def _values(
    b: Behaviour, ctx: EventContext, t: float, new_terminal: bool, idle: float
) -> tuple[float, ...]:
    times = b.times
    end = len(times)
    # In order (the usual case) the member's last hour is everything kept.
    hi = end if times[-1] <= t else bisect.bisect_right(times, t)
    lo = 0 if times[0] >= t - HOUR else bisect.bisect_left(times, t - HOUR)
    flags = b.flags if lo == 0 and hi == end else b.flags[lo:hi]
    count = flags.count
    plain = count(0)
    if plain == hi - lo:  # most hours: plain opens only
        n, bare, doubtful, away, prints = plain, 0, 0, 0, 0
    else:
        bare = count(BARE_PRINT)
        n = hi - lo - bare  # opens
        doubtful = n - plain - count(PRINTED)
        away = count(DOUBTFUL | AWAY) + count(PRINTED | DOUBTFUL | AWAY)
        prints = (bare + count(PRINTED) + count(PRINTED | DOUBTFUL)
                  + count(PRINTED | DOUBTFUL | AWAY))
    # The last ten minutes' opens: the end of the hour.
    since = t - RECENT
    start = lo if times[lo] >= since else bisect.bisect_left(times, since, lo, hi)
    recent, sids = times[start:hi], b.sids[start:hi]
    if bare and b.flags.find(BARE_PRINT, start, hi) >= 0:  # a print of no record is no open
        opened = [i for i, sid in enumerate(sids) if sid]
        recent, sids = [recent[i] for i in opened], [sids[i] for i in opened]
    k = len(recent)
    if k < 2:
        median_gap = RECENT
    elif k == 2:
        median_gap = recent[1] - recent[0]
    else:
        gaps = sorted(map(sub, recent[1:], recent))
        median_gap = gaps[len(gaps) // 2]
    roster = ctx.ref.roster(ctx.event.user_id)
    off = 0.0
    if roster is not None and not roster.covers(t, 0.0):
        off = min(600.0, (roster.nearest_gap(t) or 0.0) / 60)
    return (
        float(n),
        b.usual,
        float(len(set(sids))),
        median_gap,
        doubtful / n if n else 0.0,
        float(away),
        float(prints),
        off,
        1.0 if new_terminal else 0.0,
        min(idle, 24 * 90.0),
    )


def _next_hour(b: Behaviour, t: float) -> None:
    """Close the member's hour: their usual opens per active hour, winsorised
    like the volume rule's."""
    if b.hour_end and b.hour_count > 0:
        capped = min(b.hour_count, 3 * b.usual + 5)
        b.usual = float(b.hour_count) if b.active_hours == 0 else b.usual + 0.1 * (capped - b.usual)
        b.active_hours += 1
    b.hour_end = (t // HOUR + 1) * HOUR
    b.hour_count = 0


def _terminal(b: Behaviour, terminal: str) -> bool:
    """True when ``terminal`` is new to the member (``b.seen`` counts this event)."""
    b.terminal = terminal
    if terminal in b.terminals:
        return False
    b.terminals = [*b.terminals, terminal][-KNOWN_TERMINALS:]
    # The first few terminals are learning, not news.
    return b.seen > LEARNING
