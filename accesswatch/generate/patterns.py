"""Pattern misuse, S08-S13: harvesting, enumeration, off-duty, dormant accounts,
bulk export and out-of-area trawling."""

from __future__ import annotations

from .clock import DAY, HOUR, MINUTE, SECOND, local_day, local_to_utc
from .duties import distance_to_duty
from .incidents import Eligible, Kit, Scenario, spread_days
from .model import Staff, Subject


def _duty_hours(kit: Kit, m: Staff) -> float:
    return sum(e - s for s, e in kit.duties_in_feed(m, 0)) / HOUR


def _justified_pick(kit: Kit, m: Staff, t: int) -> tuple[Subject, str] | None:
    """A record the member may open on one of their own open cases."""
    cases = [c for c in m.cases if c.open_at(t) and c.subject_ids and c.kind == "investigation"]
    if not cases:
        return None
    c = kit.rng.choice(cases)
    s = kit.force.subject_by_id[kit.rng.choice(c.subject_ids)]
    return (s, c.case_ref) if kit.force.justifies(c.case_ref, m.user_id, s.subject_id, t) else None


def s08_harvest(kit: Kit, m: Staff) -> list[str] | None:
    rng, f = kit.rng, kit.force
    # The member's usual: records opened per rostered duty hour.
    base = kit.ledger.opens.get(m.user_id, 0) / max(1.0, _duty_hours(kit, m))
    # Half are slow: four to five times the usual, spread over up to two hours.
    slow = rng.random() < 0.5
    hours = rng.uniform(1.5, 2.0) if slow else rng.uniform(1.0, 2.0)
    t = kit.time_on_duty(m, int(hours * HOUR))
    if t is None or base < 1.0:
        return None
    factor = rng.uniform(4, 5) if slow else rng.uniform(5, 15)
    total = min(600, max(20, round(factor * base * hours)))
    justified_share = rng.uniform(0.0, 0.25)
    area = m.area if m.area in f.plain_people else rng.choice(f.areas)
    people = rng.sample(f.plain_people[area], min(total, len(f.plain_people[area])))
    times = sorted(rng.randint(t, t + int(hours * HOUR)) for _ in people)
    terminal = kit.terminal(m)
    ids: list[str] = []
    for when, s in zip(times, people, strict=True):
        ref = None
        if rng.random() < justified_share and (pick := _justified_pick(kit, m, when)):
            s, ref = pick
        more, _ = kit.open(m, when, terminal, s, ref, search=0.25)
        ids += more
    return ids


def s09_enumeration(kit: Kit, m: Staff) -> list[str] | None:
    rng, f = kit.rng, kit.force
    count = rng.randint(20, 150)
    gap = rng.uniform(2, 9)
    t = kit.time_on_duty(m, int(count * 16 * SECOND))
    if t is None:
        return None
    if rng.random() < 0.65:
        i = rng.randrange(len(f.person_ids) - count)
        targets = f.person_ids[i : i + count]  # sequential ids, one after another
    else:
        area = m.area if m.area in f.plain_people else rng.choice(f.areas)
        people = f.plain_people[area]
        targets = [s.subject_id for s in rng.sample(people, min(count, len(people)))]
    terminal, system = kit.terminal(m), kit.usual_system(m, "person")
    ids: list[str] = []
    for sid in targets:
        ids.append(kit.ledger.misuse(m, t, terminal, system, "view", "person", sid, None, None))
        t += int(max(2.0, min(15.0, rng.gauss(gap, 1.5))) * SECOND)
    return ids


def _off_duty_start(kit: Kit, m: Staff, length: int) -> int | None:
    """A time at least an hour clear of every duty, at a plausible hour for it."""
    rng, f = kit.rng, kit.force
    first, last = local_day(f.start), local_day(f.end - 1)
    for _ in range(300):
        day = rng.randint(first, last)
        hour = rng.choice((0, 1, 2, 3, 4, 6, 7, 8, 10, 12, 14, 17, 19, 20, 21, 22, 23))
        t = local_to_utc(day * DAY + hour * HOUR + rng.randint(0, 59) * MINUTE)
        if not (f.start <= t and t + length < f.end):
            continue
        clear = (
            distance_to_duty(m, t) >= 70 * MINUTE and distance_to_duty(m, t + length) >= 70 * MINUTE
        )
        if clear and all(not (t <= d.start <= t + length) for d in m.duties):
            return t
    return None


def s10_off_duty(kit: Kit, m: Staff) -> list[str] | None:
    rng, f = kit.rng, kit.force
    count = rng.randint(2, 12)
    length = rng.randint(5, 45) * MINUTE
    t = _off_duty_start(kit, m, length)
    if t is None:
        return None
    terminal = m.mobile or rng.choice(m.favourites)
    area = m.area if m.area in f.plain_people else rng.choice(f.areas)
    ids: list[str] = []
    step = length // count
    for _ in range(count):
        s = rng.choice(f.plain_people[area]) if rng.random() < 0.8 else rng.choice(f.vehicles[area])
        more, _ = kit.open(m, t, terminal, s, None, search=0.3)
        ids += more
        t += max(SECOND * 30, step + rng.randint(-20, 20) * SECOND)
    return ids


def s11_dormant(kit: Kit, m: Staff) -> list[str] | None:
    """Someone uses a suspended, leaver or long-idle account."""
    rng, f = kit.rng, kit.force
    ids: list[str] = []
    terminal = rng.choice(m.favourites)
    area = m.area if m.area in f.plain_people else rng.choice(f.areas)
    first, last = local_day(f.start), local_day(f.end - 1)
    for day in sorted(rng.sample(range(first, last + 1), min(last - first + 1, rng.randint(1, 3)))):
        t = local_to_utc(day * DAY + rng.randint(8 * 60, 20 * 60) * MINUTE)
        for _ in range(rng.randint(1, 7)):
            if not f.start <= t < f.end - HOUR:
                break
            s = (
                rng.choice(f.plain_people[area])
                if rng.random() < 0.75
                else rng.choice(f.vehicles[area])
            )
            more, t = kit.open(m, t, terminal, s, None, search=0.5)
            ids += more
            t += rng.randint(1, 20) * MINUTE
    return ids or None


def s12_export(kit: Kit, m: Staff) -> list[str] | None:
    rng, f = kit.rng, kit.force
    count = rng.randint(10, 80)
    span = rng.randint(max(10, count // 6), 60) * MINUTE
    t = kit.time_on_duty(m, span)
    if t is None:
        return None
    mix = rng.choice((("export",), ("print",), ("export", "print")))
    area = m.area if m.area in f.plain_people else rng.choice(f.areas)
    terminal, system = kit.terminal(m), rng.choice(("NICHE", "NICHE", "ATHENA", "PND"))
    on_case = rng.random() < 0.5
    times = sorted(rng.randint(t, t + span) for _ in range(count))
    ids: list[str] = []
    for when in times:
        pick = _justified_pick(kit, m, when) if on_case else None
        s: Subject
        ref: str | None
        if pick is None:
            s = rng.choice(f.plain_people[area]) if rng.random() < 0.85 else rng.choice(f.others)
            ref = None
        else:
            s, ref = pick
        ids.append(
            kit.ledger.misuse(
                m, when, terminal, system, rng.choice(mix), s.subject_type, s.subject_id, None, ref
            )
        )
    return ids


def s13_out_of_area(kit: Kit, m: Staff) -> list[str] | None:
    rng, f = kit.rng, kit.force
    others = [a for a in f.areas if a != m.area]
    chosen = [rng.choice(others)] if rng.random() < 0.7 else rng.sample(others, 2)
    count = rng.randint(5, 20)
    days = spread_days(rng, kit.duties_in_feed(m), rng.randint(1, 3))
    if not days:
        return None
    terminal = kit.terminal(m)
    ids: list[str] = []
    for k in range(count):
        s_, e_ = days[k % len(days)]
        area = rng.choice(chosen)
        target = (
            rng.choice(f.plain_people[area])
            if rng.random() < 0.85
            else rng.choice(f.addresses[area])
        )
        t = rng.randint(s_, max(s_, e_ - 2 * MINUTE))
        more, _ = kit.open(
            m, t, terminal, target, kit.maybe_bad_case(m, t, target.subject_id, 0.2), search=0.4
        )
        ids += more
    return ids


def _worker(kit: Kit, m: Staff) -> bool:
    return kit.worker(m)


PATTERNS: dict[str, tuple[Eligible, Scenario]] = {
    "S08": (_worker, s08_harvest),
    "S09": (_worker, s09_enumeration),
    "S10": (_worker, s10_off_duty),
    "S11": (lambda kit, m: not m.works, s11_dormant),
    "S12": (_worker, s12_export),
    "S13": (lambda kit, m: kit.worker(m) and kit.area_bound(m), s13_out_of_area),
}
