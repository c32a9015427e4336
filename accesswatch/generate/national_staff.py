"""The HR directory of a national reference set, the people tied to its staff, and rosters.

Memory here grows with staff only: one small record per member, and the
person records tied to members (their own record, family and neighbours at
their address, people on the next street, namesakes) as plain tuples until
the subjects file is written.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from . import names
from .clock import DAY, MINUTE, local_day, local_text, local_to_utc
from .duties import _shifts, _ymd
from .model import StaffRole
from .national_layout import AREA_NAMES, Postcodes
from .roles import RoleSpec
from .staff import _role_counts, _served_area, _set_statuses, hr_postcode
from .subjects import record_postcode, record_surname
from .writer import staff_record

_AREA_INDEX = {name: i for i, name in enumerate(AREA_NAMES)}
_AREA_WEIGHTS = [a.weight for a in names.AREAS]
_CIVILIAN = ("call_handler", "analyst", "police_staff", "detention_officer", "pcso")
_ENCODE = msgspec.json.Encoder().encode


@dataclass(slots=True, eq=False)
class Member(StaffRole):
    user_id: str
    surname: str  # as HR typed it
    forenames: str | None
    spec: RoleSpec
    area: str  # served: an area's name or HQ
    home_area: int  # index into AREA_NAMES
    canonical: str  # home postcode, 'NE12 3AB'
    home_postcode: str | None  # as HR typed it
    status: str = "active"
    idle: bool = False
    last_active: int | None = None
    person_id: str | None = None


# A person record tied to a member: surname, forenames, postcode (as written), area, flags.
TiedPerson = tuple[str, str, str | None, str, list[str]]


def build_members(
    rng: random.Random,
    total: int,
    start: int,
    surnames: tuple[list[str], list[float]],
    postcodes: Postcodes,
    id_prefix: str,
) -> list[Member]:
    """Members in id order; roles, areas and statuses in the full generator's proportions."""
    pool, cum = surnames
    staff: list[Member] = []
    for spec, count in _role_counts(total):
        for _ in range(count):
            area = _served_area(rng, spec)
            if area in _AREA_INDEX and rng.random() < 0.6:
                home = _AREA_INDEX[area]
            else:
                home = rng.choices(range(len(AREA_NAMES)), weights=_AREA_WEIGHTS)[0]
            canonical = postcodes.canonical(rng, home)
            surname = rng.choices(pool, cum_weights=cum)[0]
            staff.append(
                Member(
                    user_id="",
                    surname=surname.upper() if rng.random() < 0.12 else surname,
                    forenames=None if rng.random() < 0.03 else names.forenames(rng),
                    spec=spec,
                    area=area,
                    home_area=home,
                    canonical=canonical,
                    home_postcode=None if rng.random() < 0.04 else hr_postcode(rng, canonical),
                )
            )
    rng.shuffle(staff)
    width = max(5, len(str(total * 10)))
    numbers = rng.sample(range(10 ** (width - 1), 10**width), total)
    for member, number in zip(staff, numbers, strict=True):
        role = member.spec.role
        letter = "C" if role == "contractor" else ("S" if role in _CIVILIAN else "E")
        member.user_id = f"{id_prefix}{letter}{number}"
    staff.sort(key=lambda m: m.user_id)
    _set_statuses(rng, staff, start, 3)
    return staff


def tie_people(
    rng: random.Random,
    staff: list[Member],
    surnames: tuple[list[str], list[float]],
    postcodes: Postcodes,
) -> tuple[list[TiedPerson], list[int]]:
    """People tied to members, own records first; and for each own record, its member's index."""
    pool, cum = surnames
    eligible = [i for i, m in enumerate(staff) if m.works and m.home_postcode is not None]
    rng.shuffle(eligible)
    n = len(staff)
    cut = [round(share * n) for share in (0.09, 0.12, 0.15)]
    own, family, neighbours = (
        eligible[: cut[0]],
        eligible[cut[0] : cut[0] + cut[1]],
        eligible[cut[0] + cut[1] : sum(cut)],
    )
    people: list[TiedPerson] = []

    def person(
        surname: str,
        canonical: str | None,
        area: int,
        forenames: str | None = None,
        flags: list[str] | None = None,
    ) -> None:
        written = None if canonical is None else record_postcode(rng, canonical)
        people.append(
            (
                record_surname(rng, surname),
                forenames or names.forenames(rng),
                written,
                AREA_NAMES[area],
                flags or [],
            )
        )

    def other_surname(m: Member) -> str:
        while True:
            other = rng.choices(pool, cum_weights=cum)[0]
            if names.surname_key(other) != names.surname_key(m.surname):
                return other

    for i in own:
        m = staff[i]
        person(
            _base(m.surname),
            m.canonical,
            m.home_area,
            m.forenames,
            ["staff"] if rng.random() < 0.7 else None,
        )
    for i in family:
        for _ in range(rng.choice((1, 1, 2, 3))):
            person(_base(staff[i].surname), staff[i].canonical, staff[i].home_area)
    for i in neighbours:
        for _ in range(rng.choice((1, 2, 2, 3))):
            person(other_surname(staff[i]), staff[i].canonical, staff[i].home_area)
    for m in staff:
        if m.home_postcode is None:
            continue
        if rng.random() < 0.25:  # the next street: same sector, another unit
            near = names.nearby_postcode(rng, m.canonical)
            surname = (
                _base(m.surname) if rng.random() < 0.4 else rng.choices(pool, cum_weights=cum)[0]
            )
            person(surname, near, m.home_area)
        if rng.random() < 0.3:  # a namesake elsewhere
            area = rng.randrange(len(AREA_NAMES))
            person(_base(m.surname), postcodes.canonical(rng, area), area)
    return people, own


def _base(hr: str) -> str:
    return hr.title() if hr.isupper() else hr


def staff_lines(staff: list[Member]) -> Iterator[str]:
    for m in staff:
        yield _ENCODE(staff_record(m)).decode()


class _Times:
    """London wall-time texts of roster instants, which sit on a minute grid: few distinct."""

    def __init__(self) -> None:
        self.texts: dict[int, str] = {}

    def __call__(self, ms: int) -> str:
        text = self.texts.get(ms)
        if text is None:
            text = self.texts[ms] = local_text(ms)
        return text


def duty_lines(rng: random.Random, staff: list[Member], start: int, days: int) -> Iterator[str]:
    """Each working member's duties overlapping the feed, as the full generator rosters them."""
    end = start + days * DAY
    first = local_day(start) - 1
    texts = _Times()
    utc: dict[int, int] = {}
    for m in staff:
        if not m.works or rng.random() < 0.01:
            continue  # long-term absence: on the books, no duties
        rota, uid = m.spec.rota, m.user_id
        phase, variant = rng.randrange(8), rng.randrange(2)
        leave = (0, -1)
        if rng.random() < 0.15:
            begin = first + 1 + rng.randrange(max(1, days))
            leave = (begin, begin + rng.randint(2, 5))
        for day in range(first, first + days + 1):
            shifts = _shifts(rota, day, phase, variant, rng)
            if leave[0] <= day < leave[1] or (shifts and rng.random() < 0.02):
                continue
            if not shifts and rng.random() < 0.02:
                shifts = [("rest_day", 8 * 60, 480)]
            for k, (_, minute, length) in enumerate(shifts):
                wall_s = day * DAY + minute * MINUTE
                wall_e = wall_s + length * MINUTE
                s = utc.get(wall_s)
                if s is None:
                    s = utc[wall_s] = local_to_utc(wall_s)
                e = utc.get(wall_e)
                if e is None:
                    e = utc[wall_e] = local_to_utc(wall_e)
                extra = rng.randint(1, 4) * 60 * MINUTE if rng.random() < 0.06 else 0
                if extra and rng.random() < 0.6:
                    e, extra = e + extra, 0
                ymd = _ymd(day)
                if e > start and s < end:
                    yield (
                        f'{{"duty_id":"{uid}-{ymd}-{k + 1}","user_id":"{uid}",'
                        f'"start":"{texts(s)}","end":"{texts(e)}"}}'
                    )
                if extra and e + extra > start and e < end:
                    yield (
                        f'{{"duty_id":"{uid}-{ymd}-ot","user_id":"{uid}",'
                        f'"start":"{texts(e)}","end":"{texts(e + extra)}"}}'
                    )
