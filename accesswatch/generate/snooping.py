"""Personal lookups, S01-S07: self, family, neighbours, colleagues, flagged
records, victims, and the same person day after day."""

from __future__ import annotations

from .clock import DAY, MINUTE
from .incidents import Eligible, Kit, Scenario, spread_days
from .model import PROTECTIVE_FLAGS, Staff, Subject


def _few(kit: Kit, m: Staff, target: Subject, case_chance: float = 0.35) -> list[str] | None:
    """One to three accesses to a single record, in the middle of a duty."""
    rng = kit.rng
    t = kit.time_on_duty(m, 20 * MINUTE)
    if t is None:
        return None
    ref = kit.maybe_bad_case(m, t, target.subject_id, case_chance)
    ids, _ = kit.open(
        m, t, kit.terminal(m), target, ref, search=rng.choice((0.0, 0.5, 1.0)), print_chance=0.15
    )
    return ids


def s01_self(kit: Kit, m: Staff) -> list[str] | None:
    return _few(kit, m, kit.force.subject_by_id[m.person_id or ""], case_chance=0.2)


def s02_family(kit: Kit, m: Staff) -> list[str] | None:
    return _few(kit, m, kit.force.subject_by_id[kit.rng.choice(m.family)], case_chance=0.4)


def s03_neighbour(kit: Kit, m: Staff) -> list[str] | None:
    return _few(kit, m, kit.force.subject_by_id[kit.rng.choice(m.neighbours)], case_chance=0.35)


def s04_colleague(kit: Kit, m: Staff) -> list[str] | None:
    rng, f = kit.rng, kit.force
    colleagues = [x for x in f.staff if x.person_id and x.user_id != m.user_id]
    close = [x for x in colleagues if x.area == m.area or x.unit == m.unit]
    flagged = [s for s in f.subjects if "staff" in s.flags and s.staff_of != m.user_id]
    if rng.random() < 0.65 and (close or colleagues):
        target = f.subject_by_id[rng.choice(close or colleagues).person_id or ""]
    elif flagged:
        target = rng.choice(flagged)
    else:
        return None
    return _few(kit, m, target, case_chance=0.3)


def s05_flagged(kit: Kit, m: Staff) -> list[str] | None:
    rng, f = kit.rng, kit.force
    flagged = [
        s
        for s in f.subjects
        if any(x in PROTECTIVE_FLAGS for x in s.flags) and s.staff_of != m.user_id
    ]
    people = [s for s in flagged if s.subject_type == "person"]
    pool = people if rng.random() < 0.8 and people else flagged
    # Curiosity starts close to home: prefer the member's own area.
    local = [s for s in pool if s.area == m.area]
    return _few(
        kit, m, rng.choice(local if local and rng.random() < 0.6 else pool), case_chance=0.3
    )


def s06_victim(kit: Kit, m: Staff) -> list[str] | None:
    rng, f = kit.rng, kit.force
    t = kit.time_on_duty(m, 20 * MINUTE)
    if t is None:
        return None
    victims = [
        s
        for s in f.subjects
        if s.subject_type == "person" and "victim" in s.flags and s.staff_of is None
    ]
    local = [s for s in victims if s.area == m.area] or victims
    for _ in range(30):
        target = rng.choice(local)
        if not f.covers_victim(m.user_id, target.subject_id, t):
            break
    else:
        return None
    r = rng.random()
    ops = [c for c in m.cases if c.kind == "operation" and c.open_at(t)]
    ref: str | None
    if r < 0.2 and ops:
        ref = rng.choice(ops).case_ref  # a case listing no one covers no victim
    elif r < 0.45:
        ref = kit.bad_case(m, t, target.subject_id)
    else:
        ref = None
    ids, _ = kit.open(
        m, t, kit.terminal(m), target, ref, search=rng.choice((0.0, 0.6, 1.0)), print_chance=0.1
    )
    return ids


def s07_repeat(kit: Kit, m: Staff) -> list[str] | None:
    """The ex-partner pattern: one person, opened on three to five separate days."""
    rng, f = kit.rng, kit.force
    want = rng.randint(3, 5)
    # Keep each visit inside the UTC day its duty starts on, so the days stay distinct.
    spans = [(s, min(e, (s // DAY + 1) * DAY - 1)) for s, e in kit.duties_in_feed(m)]
    days = spread_days(rng, [(s, e) for s, e in spans if e - s > 10 * MINUTE], want)
    if len(days) < 3:
        return None
    area = m.area if m.area in f.plain_people and rng.random() < 0.7 else rng.choice(f.areas)
    target = rng.choice(f.plain_people[area])
    if target.postcode_key == m.postcode_key:
        return None
    ids: list[str] = []
    terminal = kit.terminal(m)
    for s, e in days:
        t = rng.randint(s, e - 8 * MINUTE)
        more, _ = kit.open(m, t, terminal, target, None, search=0.4)
        ids += more
    return ids


def _has(attr: str) -> Eligible:
    return lambda kit, m: kit.worker(m) and bool(getattr(m, attr))


SNOOPING: dict[str, tuple[Eligible, Scenario]] = {
    "S01": (_has("person_id"), s01_self),
    "S02": (_has("family"), s02_family),
    "S03": (_has("neighbours"), s03_neighbour),
    "S04": (lambda kit, m: kit.worker(m), s04_colleague),
    "S05": (lambda kit, m: kit.worker(m), s05_flagged),
    "S06": (lambda kit, m: kit.worker(m), s06_victim),
    "S07": (lambda kit, m: kit.worker(m), s07_repeat),
}
