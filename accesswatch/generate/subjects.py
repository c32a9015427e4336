"""Records held on the system: people in households, vehicles, places, incidents.

Some people are tied to staff on purpose: the member's own record, family at
their address, neighbours at their postcode, people on the next street, and
namesakes elsewhere. Only the first three make a lookup personal.
"""

from __future__ import annotations

import random

from . import names
from .model import Staff, Subject

# Share of all records by kind.
_MIX = (("person", 0.62), ("vehicle", 0.18), ("address", 0.12), ("incident", 0.05), ("other", 0.03))
# Person flags: (flag, share). Only some matter to the catalogue.
_PERSON_FLAGS = (
    ("victim", 0.05),
    ("warning_markers", 0.04),
    ("firearms", 0.007),
    ("sensitive", 0.01),
    ("vip", 0.0025),
    ("restricted", 0.004),
    ("protected", 0.004),
    ("staff", 0.002),
    ("missing_person", 0.006),
)
_PREFIX = {"person": "PER", "vehicle": "VEH", "address": "LOC", "incident": "OCC", "other": "OBJ"}


def canonical_postcode(key: str) -> str:
    return f"{key[:-3]} {key[-3:]}"


def record_postcode(rng: random.Random, canonical: str) -> str:
    r = rng.random()
    if r < 0.80:
        return canonical
    if r < 0.90:
        return canonical.replace(" ", "")
    if r < 0.95:
        return canonical.lower()
    return canonical.replace(" ", "  ")


def record_surname(rng: random.Random, name: str) -> str:
    r = rng.random()
    if r < 0.80:
        return name
    if r < 0.92:
        return name.upper()
    if r < 0.95:
        return name.lower()
    if r < 0.97:
        return f"  {name.lower()}"
    return f"{name} "


class _Builder:
    def __init__(self, rng: random.Random, surnames: tuple[list[str], list[float]]) -> None:
        self.rng = rng
        self.pool, self.cum = surnames
        self.people: list[Subject] = []

    def surname(self) -> str:
        return self.rng.choices(self.pool, cum_weights=self.cum)[0]

    def person(
        self, surname: str, canonical: str | None, area: str, forenames: str | None = None
    ) -> Subject:
        rng = self.rng
        written = None if canonical is None else record_postcode(rng, canonical)
        subject = Subject(
            subject_id="",
            subject_type="person",
            surname=record_surname(rng, surname),
            forenames=forenames or names.forenames(rng),
            postcode=written,
            postcode_key=names.postcode_key(written),
            area=area,
            flags=[],
            label="",
        )
        subject.label = f"{surname} {subject.forenames}"
        self.people.append(subject)
        return subject

    def households(self, target: int) -> None:
        rng = self.rng
        while len(self.people) < target:
            area = rng.choices(names.AREAS, weights=[a.weight for a in names.AREAS])[0]
            canonical = None if rng.random() < 0.07 else names.postcode(rng, area)
            size = rng.choices((1, 2, 3, 4, 5), weights=(35, 30, 17, 12, 6))[0]
            family = self.surname() if rng.random() < 0.65 else None
            for _ in range(size):
                self.person(family or self.surname(), canonical, area.name)


def _pick_staff(
    rng: random.Random, staff: list[Staff], share: float, minimum: int, taken: set[str]
) -> list[Staff]:
    """Working members with a postcode; those already used by another tie go last."""
    eligible = [m for m in staff if m.works and m.postcode_key is not None]
    rng.shuffle(eligible)
    eligible.sort(key=lambda m: m.user_id in taken)
    want = min(len(eligible), max(round(share * len(staff)), minimum))
    chosen = eligible[:want]
    taken.update(m.user_id for m in chosen)
    return chosen


_Tie = tuple[Staff, str, Subject]


def _tie_to_staff(b: _Builder, staff: list[Staff], minimum: int) -> list[_Tie]:
    rng = b.rng
    ties: list[_Tie] = []
    taken: set[str] = set()
    for m in _pick_staff(rng, staff, 0.09, minimum, taken):
        own = b.person(_base_surname(m.surname), _home(m), m.home_area, m.forenames)
        own.staff_of = m.user_id
        if rng.random() < 0.7:
            own.flags.append("staff")
        ties.append((m, "self", own))
    for m in _pick_staff(rng, staff, 0.12, minimum, taken):
        for _ in range(rng.choice((1, 1, 2, 3))):
            ties.append((m, "family", b.person(_base_surname(m.surname), _home(m), m.home_area)))
    for m in _pick_staff(rng, staff, 0.15, minimum, taken):
        for _ in range(rng.choice((1, 2, 2, 3))):
            other = b.surname()
            while names.surname_key(other) == names.surname_key(m.surname):
                other = b.surname()
            ties.append((m, "neighbour", b.person(other, _home(m), m.home_area)))
    for m in staff:
        if m.postcode_key is None:
            continue
        if rng.random() < 0.25:
            # The next street: same sector, different unit; sometimes the same surname too.
            near = names.nearby_postcode(rng, _home(m))
            surname = _base_surname(m.surname) if rng.random() < 0.4 else b.surname()
            b.person(surname, near, m.home_area)
        if rng.random() < 0.3:
            area = rng.choice(names.AREAS)
            namesake = b.person(_base_surname(m.surname), names.postcode(rng, area), area.name)
            if namesake.postcode_key != m.postcode_key:
                ties.append((m, "namesake", namesake))
    return ties


def _home(m: Staff) -> str:
    return canonical_postcode(m.postcode_key or "")


def _base_surname(hr: str) -> str:
    """HR sometimes types surnames in capitals; records mostly do not."""
    return hr.title() if hr.isupper() else hr


def _flag_people(rng: random.Random, people: list[Subject], minimum: int) -> None:
    candidates = [p for p in people if p.staff_of is None]
    for flag, share in _PERSON_FLAGS:
        want = max(
            round(share * len(candidates)),
            minimum if flag in ("vip", "restricted", "protected", "victim", "staff") else 0,
        )
        for p in rng.sample(candidates, min(want, len(candidates))):
            if flag not in p.flags:
                p.flags.append(flag)


def _other_record(rng: random.Random, kind: str) -> Subject:
    area = rng.choices(names.AREAS, weights=[a.weight for a in names.AREAS])[0]
    flags: list[str] = []
    extra: dict[str, str] | None = None
    postcode = None
    if kind == "vehicle":
        label = names.vrm(rng)
        postcode = names.postcode(rng, area)
        extra = {"vrm": label}
        flags = rng.choices(
            ([], ["stolen"], ["anpr_marker"], ["restricted"]), weights=(95, 2, 2.7, 0.3)
        )[0]
    elif kind == "address":
        postcode = names.postcode(rng, area)
        label = f"{names.street_address(rng)}, {postcode}"
        extra = {"address": label}
        flags = rng.choices(([], ["warning_markers"], ["protected"]), weights=(96.5, 3, 0.5))[0]
    elif kind == "incident":
        label = f"INC {rng.randint(20, 26)}/{rng.randint(1, 99999):05d}"
        flags = rng.choices(([], ["sensitive"]), weights=(95, 5))[0]
    else:
        label = rng.choice(("INTEL", "PROPERTY", "DOCUMENT")) + f" {rng.randint(1, 999999):06d}"
        flags = rng.choices(([], ["sensitive"]), weights=(90, 10))[0]
    return Subject(
        "",
        kind,
        None,
        None,
        postcode,
        names.postcode_key(postcode),
        None if kind == "other" and rng.random() < 0.3 else area.name,
        list(flags),
        label,
        extra=extra,
    )


def build_subjects(
    rng: random.Random, staff: list[Staff], surnames: tuple[list[str], list[float]], minimum: int
) -> list[Subject]:
    """About 30 records per member of staff; ties to staff resolved to real ids."""
    total = 30 * len(staff)
    b = _Builder(rng, surnames)
    b.households(round(total * _MIX[0][1]))
    ties = _tie_to_staff(b, staff, minimum)
    _flag_people(rng, b.people, minimum)
    by_kind: dict[str, list[Subject]] = {"person": b.people}
    for kind, share in _MIX[1:]:
        by_kind[kind] = [_other_record(rng, kind) for _ in range(round(total * share))]
    for kind, records in by_kind.items():
        # Ids are issued after shuffling so that no id range gives a tie away.
        rng.shuffle(records)
        base = rng.randrange(1_000_000, 5_000_000)
        for i, s in enumerate(records):
            s.subject_id = f"{_PREFIX[kind]}-{base + i:07d}"
    for member, relation, s in ties:
        if relation == "self":
            member.person_id = s.subject_id
        elif relation == "family":
            member.family.append(s.subject_id)
        elif relation == "neighbour":
            member.neighbours.append(s.subject_id)
        else:
            member.namesakes.append(s.subject_id)
    out = [s for records in by_kind.values() for s in records]
    out.sort(key=lambda s: s.subject_id)
    return out
