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
    areas = sorted(
        {ctx.ref.subjects[e[2]].area or "?" for e in current if e[2] in ctx.ref.subjects}
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
    usual, hours = _baseline(st, rule.id, ctx.t)
    window = seconds(rule.window)
    # Vehicle and address checks need no case: they never count as unjustified here.
    suspect = ctx.subject_type not in rule.casual_types and not ctx.justified
    current = _insert(st, rule.id, (ctx.t, ctx.event.event_id, ctx.sid, suspect), window)
    warm = hours >= rule.warmup_hours
    need = max(rule.min_count, rule.ratio * usual * window / 3600) if warm else rule.cold_min_count
    n = len(current)
    if n < need:
        return None
    unjustified = sum(1 for e in current if e[3])
    if unjustified < rule.min_unjustified_share * n:
        return None
    ids, subjects = _evidence(current)
    span = current[-1][0] - current[0][0]
    usual_text = f"their usual is {usual:.0f} an hour" if warm else "they have little history yet"
    what = (
        f"opened {n} records in {_minutes(span)}; {usual_text}; "
        f"{unjustified} of them people or incidents with no justifying case"
    )
    return Firing(ids, [what], subjects)


def _baseline(st: UserState, rule_id: str, t: float) -> tuple[float, float]:
    """Count this open into the member's hourly baseline; return (usual, active hours).

    The usual rate is an exponentially weighted mean of opens per *active*
    hour, so nights off and rest days do not dilute it.  An hour far above the
    usual counts only up to three times the usual (plus a little): a harvest
    must not teach the baseline that harvesting is normal.
    """
    b = st.baselines.get(rule_id)
    hour = t // 3600
    if b is None:
        b = st.baselines[rule_id] = [hour, 0.0, 0.0, 0.0]
    if hour > b[0]:
        if b[1] > 0:
            b[2] = b[1] if b[3] == 0 else b[2] + 0.1 * (min(b[1], 3 * b[2] + 5) - b[2])
            b[3] += 1
        b[0], b[1] = hour, 0.0
    b[1] += 1
    return b[2], b[3]


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
