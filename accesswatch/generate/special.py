"""Legitimate days that look unusual: a major incident, and cases that tail off.

On the major-incident day a large share of one area (plus mutual aid from
another) works one case at several times their usual rate, on long overtime
or called in on a rest day. On a storm evening the control room takes three
times its usual calls for three hours, every record on a call's log. After a
case closes, its team keeps touching it with the old reference for a day or two.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import names
from .calls import Dispatcher
from .cases import CaseBook
from .clock import DAY, HOUR, MINUTE, SECOND, date_text, local_day, local_to_utc
from .ledger import Ledger
from .model import Case, Duty, Force, Staff, Subject
from .queries import query_for
from .roles import MAJOR_INCIDENT_UNITS
from .terminals import duty_terminal, task_terminal


@dataclass(slots=True)
class MajorIncident:
    case: Case
    begins: int
    shifts: list[tuple[Staff, Duty]]


def _on_shift(m: Staff, t0: int) -> Duty | None:
    for d in m.duties:
        if d.start - 2 * HOUR <= t0 < d.end:
            return d
    return None


def _some(rng: random.Random, pool: list[Subject], low: int, high: int) -> list[Subject]:
    return rng.sample(pool, min(len(pool), rng.randint(low, high)))


def plan_major_incident(
    rng: random.Random, force: Force, book: CaseBook, days: int
) -> MajorIncident | None:
    """Open the case and stretch the rota; call before ordinary work is generated."""
    teams: dict[str, list[Staff]] = {}
    for m in force.staff:
        if m.works and m.unit in MAJOR_INCIDENT_UNITS and m.area in force.plain_people:
            teams.setdefault(m.area, []).append(m)
    areas = [a for a in force.areas if len(teams.get(a, [])) >= 6]
    if not areas:
        return None
    area = rng.choice(areas)
    day = local_day(force.start) + (rng.randint(1, days - 2) if days >= 3 else 0)
    t0 = local_to_utc(day * DAY + rng.randint(4 * 60, 9 * 60) * MINUTE)
    pool = force.plain_people[area]
    subjects = [p.subject_id for p in rng.sample(pool, min(len(pool), rng.randint(60, 160)))]
    subjects += [v.subject_id for v in _some(rng, force.vehicles[area], 10, 40)]
    subjects += [a.subject_id for a in _some(rng, force.addresses[area], 8, 25)]
    subjects += [
        v.subject_id
        for v in rng.sample(book.victims[area], min(len(book.victims[area]), rng.randint(2, 8)))
    ]
    if book.protective[area]:
        subjects.append(rng.choice(book.protective[area]).subject_id)
    crew = teams[area]
    team = rng.sample(crew, max(min(len(crew), 10), round(len(crew) * rng.uniform(0.35, 0.5))))
    neighbours = [
        m for a in force.areas if a != area for m in teams.get(a, []) if m.unit == "Response"
    ]
    team += rng.sample(neighbours, min(len(neighbours), rng.randint(3, 8)))  # mutual aid
    case = Case(
        book.op_ref(),
        "major",
        area,
        [],
        list(dict.fromkeys(subjects)),
        t0 - 20 * MINUTE,
        None,
        "NICHE",
    )
    shifts: list[tuple[Staff, Duty]] = []
    for m in team:
        case.assign(m.user_id)
        duty = _on_shift(m, t0)
        if duty is not None:
            # Long overtime: the shift runs to 13-16 hours.
            duty.end = max(duty.end, duty.start + rng.randint(13, 16) * HOUR)
        else:
            begin = t0 + rng.randint(60, 180) * MINUTE
            duty = Duty(
                f"{m.user_id}-{date_text(day).replace('-', '')}-mi",
                m.user_id,
                begin,
                begin + rng.randint(10, 12) * HOUR,
                "call_in",
            )
            m.duties.append(duty)
            m.duties.sort(key=lambda d: d.start)
        shifts.append((m, duty))
    force.add_case(case)
    return MajorIncident(case, t0, shifts)


def work_major_incident(
    rng: random.Random, force: Force, ledger: Ledger, mi: MajorIncident
) -> None:
    """High, steady volume on the one case for the length of each long shift."""
    ref = mi.case.case_ref
    for m, duty in mi.shifts:
        settled = duty_terminal(rng, m)
        t = max(duty.start, mi.begins) + rng.randint(5, 40) * MINUTE
        end = min(duty.end, force.end - 1)
        gap = 3600 / rng.uniform(10, 25)  # seconds between accesses
        while t < end:
            s = force.subject_by_id[rng.choice(mi.case.subject_ids)]
            terminal = task_terminal(rng, m, settled)
            system = "PNC" if s.subject_type == "vehicle" else rng.choice(("NICHE", "NICHE", "PND"))
            r = rng.random()
            if r < 0.3:
                ledger.normal(
                    m,
                    t,
                    terminal,
                    system,
                    "search",
                    s.subject_type,
                    s.subject_id,
                    query_for(rng, s, system),
                    ref,
                    rng.randint(1, 5),
                )
            else:
                ledger.normal(
                    m,
                    t,
                    terminal,
                    system,
                    "update" if r > 0.9 else "view",
                    s.subject_type,
                    s.subject_id,
                    None,
                    ref,
                )
            t += int(rng.expovariate(1 / gap) * SECOND) + 5 * SECOND


def tail_off(rng: random.Random, force: Force, ledger: Ledger) -> None:
    """Work on a closed case carries on, with its old reference, for a day or two."""
    for case in force.cases:
        if not case.tail or case.closed is None:
            continue
        for uid in case.assigned[:2]:
            m = force.staff_by_id[uid]
            if not m.works:
                continue
            for after in (1, 2):
                if rng.random() > 0.7:
                    continue
                lo, hi = case.closed + (after - 1) * DAY, case.closed + after * DAY
                duties = [d for d in m.duties if lo <= d.start < hi and d.end > lo]
                if not duties:
                    continue
                d = rng.choice(duties)
                first = max(d.start, lo) + 10 * MINUTE
                # Room for up to three touches a quarter of an hour apart, inside the duty.
                last = min(d.end - 50 * MINUTE, hi - HOUR, first + 6 * HOUR)
                if first < last:
                    _touch(rng, force, ledger, m, case, rng.randint(first, last))


def _touch(rng: random.Random, force: Force, ledger: Ledger, m: Staff, case: Case, t: int) -> None:
    if case.subject_ids:
        candidates = [force.subject_by_id[s] for s in case.subject_ids]
        candidates = [s for s in candidates if s.plain and s.area == case.area]
    else:
        pool = force.plain_people.get(case.area or "") or force.plain_people[names.AREAS[0].name]
        candidates = rng.sample(pool, min(3, len(pool)))
    terminal = rng.choice(m.favourites)
    for s in rng.sample(candidates, min(len(candidates), rng.randint(1, 3))):
        action = rng.choice(("view", "view", "update"))
        ledger.normal(
            m, t, terminal, case.system, action, s.subject_type, s.subject_id, None, case.case_ref
        )
        t += rng.randint(1, 15) * MINUTE


SURGE_HOURS = 3
SURGE_FACTOR = 3.0  # calls taken, against a usual evening
_EVENTS_PER_CALL = 6.5


def control_room_surge(
    rng: random.Random, force: Force, ledger: Ledger, calls: Dispatcher
) -> tuple[int, int]:
    """A storm evening: everyone on duty in the control room takes three times their
    usual calls from 17:00 for three hours.  Returns (start, end) of the surge."""
    first, last = local_day(force.start), local_day(force.end - 1)
    t0 = local_to_utc(rng.randint(first, last) * DAY + 17 * HOUR)
    t1 = t0 + SURGE_HOURS * HOUR
    for m in force.staff:
        if not m.works or m.unit != "Control Room":
            continue
        for d in m.duties:
            s, e = max(d.start, t0, force.start), min(d.end, t1, force.end - HOUR)
            if e <= s:
                continue
            extra = round((SURGE_FACTOR - 1) * m.rate * (e - s) / HOUR / _EVENTS_PER_CALL)
            limit = min(d.end + 19 * MINUTE, force.end - 1)
            terminal = duty_terminal(rng, m)
            for t in sorted(rng.randint(s, e) for _ in range(extra)):
                calls.call(m, t, terminal, limit)
    return t0, t1
