"""Behavioural features for the anomaly model, from per-user state.

The same code runs in the backtest, in training and in the live worker.  A
member gets a feature row when their recent work changes materially: when a
count of doubtful opens, out-of-area opens or prints (in the last ten minutes,
hour or four hours) climbs to the next rung of ``RUNGS``.  The rung reached
depends only on the member's own events in event time, never on a clock or on
where a driver cuts its batches, so neither do the rows nor the verdicts.

Each row carries its evidence (``Row.marks``): the doubtful opens and prints
of the last four hours, up to and including the event that made the row.  A
model alert cites those its explanation counted, never a later event.
"""

from __future__ import annotations

import bisect

import msgspec

from accesswatch.core.context import EventContext

HOUR = 3600.0
LONG = 4 * HOUR  # a slow harvest shows over hours, not in one
RECENT = 600.0  # "rapid succession": the last ten minutes
CASUAL_TYPES = frozenset({"vehicle", "address"})
PRINTS = frozenset({"print", "export"})
# A member is scored when a count reaches the next rung, each about 1.4 times the
# last: a burst of 100 doubtful opens makes about a dozen rows, a steady trickle none.
RUNGS = (2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256)
# A count must fall two rungs below the rung last scored before climbing again
# scores again: a window sliding over steady work does not keep rescoring it.
SETTLE = 2
# Doubtful opens and prints kept from the last four hours, the newest: the
# four-hour counts stop there, and an alert lists at most 100 events anyway.
MAX_NOTED = 256

# Raw values the tracker emits, in this order.  The model derives its own
# columns (ratios, logs) from these.
RAW = (
    "opens_1h",  # records opened in the last hour
    "justified_1h",  # ... people or incidents among them opened on a justifying case
    "doubtful_1h",  # ... people or incidents opened with no justifying case
    "doubtful_10m",  # doubtful opens in the last ten minutes
    "doubtful_4h",  # ... and in the last four hours: a slow, steady harvest
    "out_of_area_1h",  # doubtful opens of records from another area
    "out_of_area_4h",
    "prints_1h",  # prints and exports in the last hour
    "prints_4h",
    "off_duty_minutes",  # minutes outside every rostered duty (0 on duty or no roster)
)

# What ``Behaviour.flags`` records of each open or print, as bits.
DOUBTFUL = 1  # a person or incident opened with no justifying case
AWAY = 2  # ... and from another area than the member's
PRINTED = 4  # printed or exported
BARE = 8  # no record: a print or export of a search or list
JUSTIFIED = 16  # a person or incident opened on a justifying case
BARE_PRINT = PRINTED | BARE
NOTED = DOUBTFUL | PRINTED  # kept four hours, with their event ids, as evidence
_D, _DA, _P, _PD, _PDA = DOUBTFUL, DOUBTFUL | AWAY, PRINTED, PRINTED | DOUBTFUL, NOTED | AWAY


class Behaviour(msgspec.Struct, array_like=True, gc=False):
    """The slice of per-user state the features need.

    The last hour's opens and prints are three parallel columns, oldest first:
    event times, record ids ("" for a print of no record) and flags (the bits
    above, one byte each).  The last four hours' doubtful opens and prints,
    which ordinary work has few of, are four more with their event ids (the
    evidence).  A column of plain values per field, rather than a tuple per
    open, keeps a member's state a few compact objects: this state is touched
    on every event, among thousands of members', and encoded after every
    batch.  Stored as an array, so field names are not written each time.
    """

    last_t: float = 0.0
    times: list[float] = msgspec.field(default_factory=list)
    sids: list[str] = msgspec.field(default_factory=list)
    flags: bytearray = msgspec.field(default_factory=bytearray)
    noted_times: list[float] = msgspec.field(default_factory=list)
    noted_ids: list[str] = msgspec.field(default_factory=list)
    noted_sids: list[str] = msgspec.field(default_factory=list)
    noted_flags: bytearray = msgspec.field(default_factory=bytearray)
    # The rung last scored of each count that makes a row (``_climbed``).
    rungs: bytearray = msgspec.field(default_factory=lambda: bytearray(7))
    # An odd hour counts once towards risk, however many rows it scores.
    odd_until: float = 0.0


# One piece of a row's evidence: (event time, event_id, record id or "", flags).
Mark = tuple[float, str, str, int]


class Row(msgspec.Struct, gc=False):
    """One feature row, tied to the event that triggered it, with its evidence."""

    user_id: str
    event_id: str
    t: float
    peer: str
    values: tuple[float, ...]
    marks: list[Mark] = msgspec.field(default_factory=list)


def observe(b: Behaviour, ctx: EventContext) -> Row | None:
    """Fold one event into ``b``; return a row when this member's work changed materially.

    This runs for every event, so the common case (a plain open in time order)
    is a few appends.  Only a doubtful open or a print can make a row, and only
    then are the windows counted: a row always sees exactly its hour and four hours.
    """
    ev, t = ctx.event, ctx.t
    if t > b.last_t:
        b.last_t = t
    sid = ctx.sid
    printed = ev.action in PRINTS
    if sid is None:
        if not printed:
            return None
        sid, flag = "", BARE_PRINT
    elif ctx.subject_type in CASUAL_TYPES:
        flag = PRINTED if printed else 0
    elif ctx.justified:
        flag = PRINTED | JUSTIFIED if printed else JUSTIFIED
    else:
        flag = PRINTED | DOUBTFUL if printed else DOUBTFUL
        if _away(ctx):
            flag |= AWAY
    times = b.times
    _keep(times, b.sids, b.flags, None, t, sid, flag, "")
    if times[0] < b.last_t - HOUR:
        cut = bisect.bisect_left(times, b.last_t - HOUR)
        del times[:cut], b.sids[:cut], b.flags[:cut]
    if not flag & NOTED:
        return None
    _keep(b.noted_times, b.noted_sids, b.noted_flags, b.noted_ids, t, sid, flag, ev.event_id)
    _trim_noted(b)
    lo, hi = _since(b.times, t - HOUR, t)
    counts = _counts(b.flags, lo, hi)
    n_lo, n_hi = _since(b.noted_times, t - LONG, t)
    longer = _noted_counts(b, n_lo, n_hi, t - RECENT)
    if not _climbed(b.rungs, (counts[2], longer[0], longer[1], counts[3], longer[2], counts[4],
                              longer[3])):
        return None
    staff = ctx.staff
    marks = [(b.noted_times[i], b.noted_ids[i], b.noted_sids[i], b.noted_flags[i])
             for i in range(n_lo, n_hi)]
    return Row(
        ev.user_id,
        ev.event_id,
        t,
        staff.peer if staff is not None else "unknown",
        _values(ctx, t, counts, longer),
        marks,
    )


def _keep(times: list[float], sids: list[str], flags: bytearray, ids: list[str] | None,
          t: float, sid: str, flag: int, eid: str) -> None:
    """Add one entry to parallel columns kept in time order."""
    if not times or t >= times[-1]:  # in order, the usual case
        times.append(t)
        sids.append(sid)
        flags.append(flag)
        if ids is not None:
            ids.append(eid)
        return
    i = bisect.bisect_right(times, t)  # a late arrival, in its place
    times.insert(i, t)
    sids.insert(i, sid)
    flags.insert(i, flag)
    if ids is not None:
        ids.insert(i, eid)


def _trim_noted(b: Behaviour) -> None:
    """Drop noted entries past four hours before the member's latest, or past ``MAX_NOTED``."""
    noted = b.noted_times
    cut = bisect.bisect_left(noted, b.last_t - LONG) if noted[0] < b.last_t - LONG else 0
    cut = max(cut, len(noted) - MAX_NOTED)
    if cut > 0:
        del noted[:cut], b.noted_ids[:cut], b.noted_sids[:cut], b.noted_flags[:cut]


def _away(ctx: EventContext) -> bool:
    staff, subject = ctx.staff, ctx.subject
    return (
        staff is not None
        and subject is not None
        and bool(subject.area)
        and subject.area != staff.area
        and ctx.ref.is_area(staff.area)
    )


def _since(times: list[float], start: float, t: float) -> tuple[int, int]:
    """The slice of ``times`` from ``start`` to ``t`` (all of it, in time order)."""
    end = len(times)
    hi = end if times[-1] <= t else bisect.bisect_right(times, t)
    lo = 0 if times[0] >= start else bisect.bisect_left(times, start)
    return lo, hi


def _counts(flags: bytearray, lo: int, hi: int) -> tuple[int, int, int, int, int]:
    """(opens, justified, doubtful, away, prints) among ``flags[lo:hi]``."""
    if lo or hi != len(flags):
        flags = flags[lo:hi]
    count = flags.count
    bare = count(BARE_PRINT)
    doubtful = count(_D) + count(_DA) + count(_PD) + count(_PDA)
    away = count(_DA) + count(_PDA)
    justified = count(JUSTIFIED) + count(PRINTED | JUSTIFIED)
    prints = bare + count(_P) + count(PRINTED | JUSTIFIED) + count(_PD) + count(_PDA)
    return hi - lo - bare, justified, doubtful, away, prints


def _noted_counts(b: Behaviour, lo: int, hi: int, recent: float) -> tuple[int, int, int, int]:
    """(doubtful in ten minutes, doubtful, away, prints) among the noted ``[lo:hi]``."""
    times, flags = b.noted_times, b.noted_flags
    soon = doubtful = away = prints = 0
    for i in range(lo, hi):
        f = flags[i]
        if f & DOUBTFUL:
            doubtful += 1
            soon += times[i] >= recent
            away += f & AWAY != 0
        prints += f & PRINTED != 0
    return soon, doubtful, away, prints


def _climbed(rungs: bytearray, counts: tuple[int, ...]) -> bool:
    """True when a count reached a rung above the one last scored; note the rungs.

    A count that fell ``SETTLE`` rungs below its mark (the window slid past a
    burst) lowers the mark, so the next burst scores afresh.
    """
    climbed = False
    for k, c in enumerate(counts):
        rung = bisect.bisect_right(RUNGS, c)
        mark = rungs[k]
        if rung > mark:
            rungs[k] = rung
            climbed = True
        elif rung + SETTLE <= mark:
            rungs[k] = rung
    return climbed


def _values(
    ctx: EventContext,
    t: float,
    counts: tuple[int, int, int, int, int],
    longer: tuple[int, int, int, int],
) -> tuple[float, ...]:
    opens, justified, doubtful, away, prints = counts
    recent, doubtful_4h, away_4h, prints_4h = longer
    roster = ctx.ref.roster(ctx.event.user_id)
    off = 0.0
    if roster is not None and not roster.covers(t, 0.0):
        off = min(600.0, (roster.nearest_gap(t) or 0.0) / 60)
    return (
        float(opens),
        float(justified),
        float(doubtful),
        float(recent),
        float(doubtful_4h),
        float(away),
        float(away_4h),
        float(prints),
        float(prints_4h),
        off,
    )
