"""Case management: investigations, intelligence operations and historic cases.

Short-lived incident logs and custody records are opened during the feed by
the work itself (see calls.py); the major incident by special.py.
"""

from __future__ import annotations

import random

from . import names
from .clock import DAY, HOUR, date_text
from .model import PROTECTIVE_FLAGS, Case, Force, Staff, Subject
from .roles import CASE_UNITS

_AREA_NUMBER = {a.name: 11 + i for i, a in enumerate(names.AREAS)}


class CaseBook:
    """Issues case references and draws the records a case is about."""

    def __init__(self, rng: random.Random, force: Force) -> None:
        self.rng = rng
        self.force = force
        self.seq: dict[str, int] = {}
        self.victims: dict[str, list[Subject]] = {a: [] for a in force.areas}
        self.protective: dict[str, list[Subject]] = {a: [] for a in force.areas}
        self.incidents: dict[str, list[Subject]] = {a: [] for a in force.areas}
        for s in force.subjects:
            if s.area is None or s.staff_of is not None or "staff" in s.flags:
                continue
            if s.subject_type == "incident":
                self.incidents[s.area].append(s)
            elif s.subject_type == "person" and "victim" in s.flags:
                self.victims[s.area].append(s)
            if s.subject_type == "person" and any(f in PROTECTIVE_FLAGS for f in s.flags):
                self.protective[s.area].append(s)
        self.by_area_unit: dict[tuple[str, str], list[Staff]] = {}
        for m in force.staff:
            self.by_area_unit.setdefault((m.area, m.unit), []).append(m)
        self.op_words = list(names.OPERATION_WORDS)
        rng.shuffle(self.op_words)

    def crime_ref(self, area: str, opened: int) -> str:
        n = self.seq.get(area, self.rng.randint(1000, 9000)) + self.rng.randint(1, 4)
        self.seq[area] = n
        return f"{_AREA_NUMBER[area]}/{n:06d}/{date_text(opened // DAY)[2:4]}"

    def op_ref(self) -> str:
        word = self.op_words.pop() if self.op_words else f"OPAL{len(self.seq)}"
        self.seq[word] = 0
        return f"OP-{word}"

    def subjects_for(self, area: str, victim_chance: float, protective_chance: float) -> list[str]:
        rng, f = self.rng, self.force
        if rng.random() < 0.08:
            return []  # a case about a series or a place: any record is in scope
        picked = [f.someone(rng, area, known=0.35).subject_id for _ in range(rng.randint(1, 3))]
        if self.victims[area] and rng.random() < victim_chance:
            picked.append(rng.choice(self.victims[area]).subject_id)
        if self.protective[area] and rng.random() < protective_chance:
            picked.append(rng.choice(self.protective[area]).subject_id)
        if rng.random() < 0.4:
            picked += [v.subject_id for v in rng.sample(f.vehicles[area], rng.randint(1, 2))]
        if rng.random() < 0.4:
            picked.append(rng.choice(f.addresses[area]).subject_id)
        if self.incidents[area] and rng.random() < 0.3:
            picked.append(rng.choice(self.incidents[area]).subject_id)
        return list(dict.fromkeys(picked))

    def team(self, lead: Staff, size: int) -> list[str]:
        """The lead plus colleagues, mostly from the same area and unit."""
        rng = self.rng
        team = [lead.user_id]
        for _ in range(size):
            r = rng.random()
            if r < 0.70:
                pool = self.by_area_unit.get((lead.area, lead.unit), [])
            elif r < 0.95:
                pool = self.by_area_unit.get((lead.area, rng.choice(CASE_UNITS)), [])
            else:
                area = rng.choice(self.force.areas)
                pool = self.by_area_unit.get((area, lead.unit), [])
            if pool:
                team.append(rng.choice(pool).user_id)
        for unit, chance in (("Criminal Justice", 0.3), ("Intelligence", 0.08)):
            pool = self.by_area_unit.get((lead.area, unit), [])
            if pool and rng.random() < chance:
                team.append(rng.choice(pool).user_id)
        return list(dict.fromkeys(team))[:6]


def _investigation(book: CaseBook, lead: Staff, historic: bool) -> Case:
    rng, f = book.rng, book.force
    span = f.end - f.start
    closed: int | None
    if historic:
        ended = f.start - rng.randint(HOUR, 29 * DAY)
        opened, closed = ended - rng.randint(2 * DAY, 200 * DAY), ended
    elif rng.random() < 0.6:
        opened = f.start - rng.randint(HOUR, 120 * DAY)
        closed = rng.randint(f.start + 6 * HOUR, f.end - HOUR) if rng.random() < 0.25 else None
    else:
        opened = f.start + rng.randint(0, max(1, span - 12 * HOUR))
        late = opened + DAY
        closed = (
            rng.randint(late, f.end - HOUR) if late < f.end - HOUR and rng.random() < 0.15 else None
        )
    safeguarding = lead.unit == "Safeguarding"
    size = rng.choices((0, 1, 2, 3, 4, 5), weights=(30, 30, 20, 10, 6, 4))[0]
    case = Case(
        case_ref=book.crime_ref(lead.area, opened),
        kind="historic" if historic else "investigation",
        area=lead.area,
        assigned=book.team(lead, size),
        subject_ids=book.subjects_for(
            lead.area, 0.8 if safeguarding else 0.35, 0.1 if safeguarding else 0.03
        ),
        opened=opened,
        closed=closed,
        system="ATHENA"
        if lead.unit in ("CID", "Safeguarding") and rng.random() < 0.35
        else "NICHE",
    )
    case.tail = closed is not None and not historic and rng.random() < 0.5
    return case


def _operations(book: CaseBook) -> None:
    """Long-running intelligence operations that list no subjects: any record is in scope."""
    rng, f = book.rng, book.force
    analysts = [m for m in f.staff if m.role == "analyst"]
    ops: dict[str, list[Case]] = {}
    for area in [*f.areas, names.FORCE_WIDE_AREA]:
        for _ in range(rng.randint(1, 3) if area != names.FORCE_WIDE_AREA else rng.randint(2, 4)):
            opened = None if rng.random() < 0.2 else f.start - rng.randint(20 * DAY, 400 * DAY)
            case = Case(
                book.op_ref(),
                "operation",
                None if area == names.FORCE_WIDE_AREA else area,
                [],
                [],
                opened,
                None,
                "PND",
            )
            ops.setdefault(area, []).append(case)
            detectives = book.by_area_unit.get((area, "CID"), [])
            for m in rng.sample(detectives, min(len(detectives), rng.randint(0, 2))):
                case.assign(m.user_id)
    for m in analysts:
        home = ops.get(m.area, [])
        other = (
            ops[names.FORCE_WIDE_AREA]
            if m.area != names.FORCE_WIDE_AREA
            else ops[rng.choice(f.areas)]
        )
        chosen = rng.sample(home, min(len(home), rng.randint(1, 2))) if home else []
        if not chosen or rng.random() < 0.3:
            chosen.append(rng.choice(other))
        for case in dict.fromkeys(chosen):
            case.assign(m.user_id)
    for area_ops in ops.values():
        for case in area_ops:
            if case.assigned:
                f.add_case(case)


def _witness_cases(book: CaseBook) -> None:
    """Colleagues who are witnesses or victims: their records are opened on a case."""
    rng, f = book.rng, book.force
    members = [m for m in f.staff if m.person_id is not None and m.works]
    for k, m in enumerate(members):
        if k > 0 and rng.random() >= 0.4:
            continue
        area = m.area if m.area in book.victims else m.home_area
        pool = [
            x
            for x in book.by_area_unit.get((area, "CID"), [])
            + book.by_area_unit.get((area, "Response"), [])
            if x.user_id != m.user_id and x.works
        ]
        if not pool:
            continue
        team = [x.user_id for x in rng.sample(pool, min(len(pool), rng.randint(1, 3)))]
        people = [p.subject_id for p in rng.sample(f.plain_people[area], rng.randint(1, 2))]
        opened = f.start - rng.randint(DAY, 30 * DAY)
        f.add_case(
            Case(
                book.crime_ref(area, opened),
                "witness",
                area,
                team,
                [m.person_id or "", *people],
                opened,
                None,
                "NICHE",
            )
        )


def build_cases(rng: random.Random, force: Force) -> CaseBook:
    book = CaseBook(rng, force)
    for lead in force.staff:
        if lead.unit not in CASE_UNITS or not lead.works:
            continue
        low, high = lead.spec.caseload
        for _ in range(rng.randint(low, high)):
            force.add_case(_investigation(book, lead, historic=False))
        for _ in range(rng.choice((0, 0, 1, 2))):
            force.add_case(_investigation(book, lead, historic=True))
    _operations(book)
    _witness_cases(book)
    return book
