"""Rule kinds over a member's recent events, on event time.

Each rule keeps only the entries it needs, in event time: the core hands a
member's events over in time order, however they arrived
(``core/timeline.py``), so a window is the entries kept, ending at this event.
"""

from __future__ import annotations

import bisect
from datetime import datetime
from functools import cache
from operator import itemgetter
from zoneinfo import ZoneInfo

from accesswatch.core.alerts import MAX_EVIDENCE
from accesswatch.core.context import EventContext
from accesswatch.core.firing import Firing
from accesswatch.core.state import Entry, UserState
from accesswatch.rules import types as r
from accesswatch.rules.types import seconds

_time = itemgetter(0)  # an entry's event time, the sort key


def _insert(st: UserState, rule_id: str, entry: Entry, keep: float) -> list[Entry]:
    """Add ``entry`` (the member's newest: the core runs events in time order) and
    drop what fell out of ``keep`` seconds."""
    entries = st.windows.get(rule_id)
    if entries is None:
        entries = st.windows[rule_id] = []
    entries.append(entry)
    horizon = entry[0] - keep
    if entries[0][0] < horizon:
        del entries[: bisect.bisect_left(entries, horizon, key=_time)]
    return entries


def _size(span: list[Entry], distinct: bool) -> int:
    return len({e[2] for e in span}) if distinct else len(span)


def _evidence(entries: list[Entry]) -> tuple[list[Entry], list[str]]:
    """The window as evidence (an entry starts with its time and event_id: the
    alert counts only those past what it counted before, without a copy)."""
    recent = entries[-MAX_EVIDENCE:]
    subjects = list(dict.fromkeys(e[2] for e in recent if e[2]))
    return entries, subjects


def window_count(rule: r.WindowCount, ctx: EventContext, st: UserState) -> Firing | None:
    ev = ctx.event
    if ev.action not in rule.actions or (rule.opens_only and ctx.sid is None):
        return None
    if rule.only_unjustified and ctx.justified:
        return None
    window = seconds(rule.window)
    current = _insert(st, rule.id, (ctx.t, ev.event_id, ctx.sid, False), window)
    if len(current) < rule.threshold:
        return None
    n = _size(current, rule.distinct_subjects)
    if n < rule.threshold:
        return None
    ids, subjects = _evidence(current)
    noun = "distinct records" if rule.distinct_subjects else f"{'/'.join(rule.actions)} actions"
    span = current[-1][0] - current[0][0]
    what = f"{n} {noun} in {_minutes(span)} (threshold {rule.threshold} within {rule.window})"
    if rule.only_unjustified:
        what += ", none with a justifying case"
    return Firing(ids, [what], subjects)


def out_of_area(rule: r.OutOfArea, ctx: EventContext, st: UserState) -> Firing | None:
    staff, subject = ctx.staff, ctx.subject
    if staff is None or subject is None or not subject.area or subject.area == staff.area:
        return None
    if subject.subject_type not in rule.subject_types or not ctx.ref.is_area(staff.area):
        return None
    if rule.unless_justified and ctx.justified:
        return None
    window = seconds(rule.window)
    current = _insert(st, rule.id, (ctx.t, ctx.event.event_id, ctx.sid, True), window)
    lookup = ctx.ref.subjects.lookup
    areas = sorted(
        {s.area or "?" for e in current if e[2] and (s := lookup(e[2])) is not None}
    )
    distinct = len({e[2] for e in current})
    if distinct < rule.min_distinct:
        return None
    ids, subjects = _evidence(current)
    what = (
        f"opened {distinct} records from outside their area ({staff.area}) within "
        f"{rule.window}, in {', '.join(areas[:5])}, with no justifying case"
    )
    return Firing(ids, [what], subjects)


def volume(rule: r.Volume, ctx: EventContext, st: UserState) -> Firing | None:
    if ctx.sid is None:
        return None
    t = ctx.t
    spans = _spans(rule)
    longest = spans[-1][0]
    # Vehicle and address checks need no case: they never count as unjustified here.
    suspect = ctx.subject_type not in rule.casual_types and not ctx.justified
    entries = st.windows.get(rule.id)
    if entries is None:
        entries = st.windows[rule.id] = []
    entries.append((t, ctx.event.event_id, ctx.sid, suspect))
    history = st.baselines.get(rule.id)
    if history is None:
        history = st.baselines[rule.id] = [t, -1.0]
    # Opens leave the window for the history in tens of minutes, not one by one: the
    # counts below are bounds that only ever rule a firing out, and the window is
    # cut exactly before it is judged.
    if entries[0][0] < t - longest - _SLACK:
        _leave(entries, history, ctx, t - longest, rule)
    least = min(rule.min_count, rule.cold_min_count)
    if len(entries) < least:
        return None
    # Either test needs at least this many unjustified opens: most busy members'
    # work is justified, and is done with here.
    if sum(1 for e in entries if e[3]) < rule.min_unjustified_share * least:
        return None
    if entries[0][0] < t - longest:
        _leave(entries, history, ctx, t - longest, rule)
    usual: tuple[float, float, float] | None = None
    for span, text in spans:
        start = bisect.bisect_left(entries, t - span, key=_time)
        if len(entries) - start < least:
            continue
        current = entries[start:]
        n = len(current)
        if usual is None:
            usual = _usual(history, ctx, t - longest, seconds(rule.lookback))
        rate, doubtful_rate, hours = usual
        warm = hours >= rule.warmup_hours
        if warm:
            need = max(rule.min_count, rule.ratio * rate * span / 3600)
            need_doubtful = max(rule.min_count, rule.ratio * doubtful_rate * span / 3600)
        else:
            need = need_doubtful = rule.cold_min_count
        unjustified = sum(1 for e in current if e[3])
        # Many times the usual, mostly unjustified; or, beside real work, many
        # times the usual of unjustified opens alone.
        mostly = n >= need and unjustified >= rule.min_unjustified_share * n
        if not mostly and unjustified < need_doubtful:
            continue
        ids, subjects = _evidence(current)
        elapsed = current[-1][0] - current[0][0]
        if warm:
            usual_text = (
                f"{n / max(rate * span / 3600, 1e-9):.1f} times their usual of "
                f"{rate:.1f} an hour at work (over {hours:.0f} hours) for {text}"
            )
        else:
            usual_text = "they have too few hours at work on record to know their usual"
        what = (
            f"opened {n} records in {_minutes(elapsed)}, {usual_text}; "
            f"{unjustified} of them people or incidents with no justifying case"
        )
        return Firing(ids, [what], subjects)
    return None


_SLACK = 600.0
_SPANS: dict[int, tuple[r.Volume, list[tuple[float, str]]]] = {}


def _spans(rule: r.Volume) -> list[tuple[float, str]]:
    """(seconds, as written) of each of the rule's windows, shortest first."""
    hit = _SPANS.get(id(rule))
    if hit is None or hit[0] is not rule:
        hit = _SPANS[id(rule)] = (rule, sorted((seconds(w), w) for w in rule.windows))
    return hit[1]


def _leave(
    entries: list[Entry], history: list[float], ctx: EventContext, edge: float, rule: r.Volume
) -> None:
    """Move the opens before ``edge`` from the window into the history."""
    cut = bisect.bisect_left(entries, edge, key=_time)
    _age(history, entries[:cut], ctx, seconds(rule.lookback))
    del entries[:cut]


# A member's volume history: [time of their first open, the clock hour of the latest
# open counted, then for each UTC day within the lookback: (day, opens, of those
# unjustified, hours worked off the roster)].  Opens join it as they leave the
# longest window; a clock hour whose first open fell outside every rostered duty
# counts as an hour worked off the roster.
_FIRST, _OFF_HOUR, _DAYS, _STRIDE = 0, 1, 2, 4


def _age(history: list[float], gone: list[Entry], ctx: EventContext, lookback: float) -> None:
    """Count opens that left the window into their day; forget days past the lookback.

    A clock hour whose first open is outside every rostered duty counts as an
    hour at work (overtime, a call-in): it joins the duty hours the rate divides by.
    """
    roster = ctx.ref.roster(ctx.event.user_id)
    for e in gone:
        when = e[0]
        day = when // 86400
        if len(history) == _DAYS or history[-_STRIDE] != day:
            history += (day, 0.0, 0.0, 0.0)
        history[-3] += 1
        if e[3]:
            history[-2] += 1
        hour = when // 3600
        if hour != history[_OFF_HOUR]:  # an hour is judged by its first open
            history[_OFF_HOUR] = hour
            if roster is not None and not roster.covers(when, 0.0):
                history[-1] += 1
    oldest = (ctx.t - lookback) // 86400
    k = _DAYS
    while k < len(history) and history[k] < oldest:
        k += _STRIDE
    if k > _DAYS:
        del history[_DAYS:k]


def _usual(
    history: list[float], ctx: EventContext, before: float, lookback: float
) -> tuple[float, float, float]:
    """(opens and unjustified opens per hour at work, hours at work) before ``before``.

    Hours at work are the rostered duty since the member's first open, plus
    the clock hours they worked off the roster: a feed that began mid-history
    does not dilute the rate, and overtime does not inflate it.  No roster: no
    usual.
    """
    roster = ctx.ref.roster(ctx.event.user_id)
    if roster is None:
        return 0.0, 0.0, 0.0
    oldest = (ctx.t - lookback) // 86400
    since = max(history[_FIRST], oldest * 86400)
    days = range(_DAYS, len(history), _STRIDE)
    kept = [k for k in days if history[k] >= oldest]  # the history may hold a day more
    hours = roster.duty_seconds(since, before) / 3600 + sum(history[k + 3] for k in kept)
    if hours <= 0:
        return 0.0, 0.0, 0.0
    opens = sum(history[k + 1] for k in kept)
    doubtful = sum(history[k + 2] for k in kept)
    return opens / hours, doubtful / hours, hours


def repeat_subject(rule: r.RepeatSubject, ctx: EventContext, st: UserState) -> Firing | None:
    if ctx.sid is None or ctx.subject_type not in rule.subject_types or ctx.justified:
        return None
    day = _local_day(ctx.t, rule.timezone)
    oldest = day - int(seconds(rule.lookback) // 86400)
    per_subject = st.days_seen.setdefault(rule.id, {})
    seen = per_subject.setdefault(ctx.sid, [])
    if not seen or seen[-1][0] != day:  # the day's first open of this subject
        seen.append((day, ctx.t, ctx.event.event_id))
    if seen[0][0] < oldest:
        seen[:] = [s for s in seen if s[0] >= oldest]
    if len(per_subject) > 1000:
        _prune(per_subject, oldest)
    if len(seen) < rule.min_days:
        return None
    days = ", ".join(datetime.fromordinal(d).strftime("%d %b") for d, _, _ in seen)
    what = (
        f"opened {ctx.subject_type} record {ctx.sid} on {len(seen)} separate days ({days}) "
        f"with no justifying case on any of them"
    )
    return Firing([(t, e) for _, t, e in seen], [what], [ctx.sid])


def _prune(per_subject: dict[str, list[tuple[int, float, str]]], oldest: int) -> None:
    for sid in [s for s, seen in per_subject.items() if not seen or seen[-1][0] < oldest]:
        del per_subject[sid]


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local_day(t: float, zone: str) -> int:
    return datetime.fromtimestamp(t, _zone(zone)).toordinal()


def _minutes(span: float) -> str:
    if span < 120:
        return f"{span:.0f} seconds"
    if span < 7200:
        return f"{span / 60:.0f} minutes"
    return f"{span / 3600:.1f} hours"
