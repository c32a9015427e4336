"""The generated force held in memory: staff, subjects, cases and duties.

Times are integer milliseconds (see clock.py). Sets are kept only for
membership tests; anything iterated is a list, so output never depends on
hash order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .roles import RoleSpec

# Flags that make a record sensitive under the catalogue (S04, S05).
PROTECTIVE_FLAGS = ("vip", "restricted", "protected")
STAFF_FLAG = "staff"
VICTIM_FLAG = "victim"


@dataclass(slots=True, eq=False)
class Duty:
    duty_id: str
    user_id: str
    start: int
    end: int
    kind: str  # early / late / night / day / office / overtime / rest_day / call_in


class StaffRole:
    """A member's ``role``, ``unit`` and ``works``, from their role spec and status:
    ``Staff`` here and the national generator's ``Member``."""

    __slots__ = ()
    spec: RoleSpec
    status: str
    idle: bool

    @property
    def role(self) -> str:
        return self.spec.role

    @property
    def unit(self) -> str:
        return self.spec.unit

    @property
    def works(self) -> bool:
        """Whether the member normally makes accesses at all."""
        return self.status == "active" and not self.idle


@dataclass(slots=True, eq=False)
class Staff(StaffRole):
    user_id: str
    surname: str
    forenames: str | None
    spec: RoleSpec
    area: str
    home_postcode: str | None  # as HR typed it
    postcode_key: str | None
    home_area: str
    status: str = "active"
    idle: bool = False  # active on paper, unused for 60+ days
    person_id: str | None = None
    last_active: int | None = None
    station: str = ""
    favourites: list[str] = field(default_factory=list)
    station_terminals: list[str] = field(default_factory=list)
    mobile: str | None = None
    rate: float = 0.0
    duties: list[Duty] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    family: list[str] = field(default_factory=list)
    neighbours: list[str] = field(default_factory=list)
    namesakes: list[str] = field(default_factory=list)  # same surname, elsewhere


@dataclass(slots=True, eq=False)
class Subject:
    subject_id: str
    subject_type: str
    surname: str | None
    forenames: str | None
    postcode: str | None
    postcode_key: str | None
    area: str | None
    flags: list[str]
    label: str  # what a user types to find it
    staff_of: str | None = None  # user_id whose own person record this is
    extra: dict[str, str] | None = None

    @property
    def plain(self) -> bool:
        """Nothing about the record makes opening it sensitive."""
        if self.staff_of is not None:
            return False
        return not any(f in PROTECTIVE_FLAGS or f in (STAFF_FLAG, VICTIM_FLAG) for f in self.flags)


@dataclass(slots=True, eq=False)
class Case:
    case_ref: str
    kind: str  # investigation / operation / log / custody / major / historic / witness
    area: str | None
    assigned: list[str]
    subject_ids: list[str]
    opened: int | None
    closed: int | None
    system: str
    tail: bool = False  # work tails off after closure
    assigned_set: set[str] = field(default_factory=set)
    subject_set: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.assigned_set = set(self.assigned)
        self.subject_set = set(self.subject_ids)

    def assign(self, user_id: str) -> None:
        if user_id not in self.assigned_set:
            self.assigned.append(user_id)
            self.assigned_set.add(user_id)

    def add_subject(self, subject_id: str) -> None:
        if subject_id not in self.subject_set:
            self.subject_ids.append(subject_id)
            self.subject_set.add(subject_id)

    def open_at(self, ts: int) -> bool:
        return (self.opened is None or self.opened <= ts) and (
            self.closed is None or ts < self.closed
        )


@dataclass(slots=True, eq=False)
class Force:
    start: int
    end: int
    areas: list[str]
    staff: list[Staff]
    subjects: list[Subject]
    cases: list[Case] = field(default_factory=list)
    staff_by_id: dict[str, Staff] = field(default_factory=dict)
    subject_by_id: dict[str, Subject] = field(default_factory=dict)
    case_by_ref: dict[str, Case] = field(default_factory=dict)
    # Pools of records that ordinary work draws from, by area.
    plain_people: dict[str, list[Subject]] = field(default_factory=dict)
    prolific: dict[str, list[Subject]] = field(default_factory=dict)  # known to police locally
    vehicles: dict[str, list[Subject]] = field(default_factory=dict)
    addresses: dict[str, list[Subject]] = field(default_factory=dict)
    others: list[Subject] = field(default_factory=list)
    person_ids: list[str] = field(default_factory=list)  # in id order, for enumeration

    def someone(self, rng: random.Random, area: str, known: float = 0.3) -> Subject:
        """A plain person from the area; a few prolific people turn up again and again."""
        if rng.random() < known and self.prolific.get(area):
            return rng.choice(self.prolific[area])
        return rng.choice(self.plain_people[area])

    def add_case(self, case: Case) -> None:
        self.cases.append(case)
        self.case_by_ref[case.case_ref] = case
        for uid in case.assigned:
            member = self.staff_by_id.get(uid)
            if member is not None:
                member.cases.append(case)

    def assign(self, case: Case, user_id: str) -> None:
        if user_id not in case.assigned_set:
            case.assign(user_id)
            self.staff_by_id[user_id].cases.append(case)

    def justifies(
        self, case_ref: str | None, user_id: str, subject_id: str | None, ts: int
    ) -> bool:
        """The catalogue's justifying case, evaluated at generation time."""
        if case_ref is None:
            return False
        case = self.case_by_ref.get(case_ref)
        if case is None or not case.open_at(ts) or user_id not in case.assigned_set:
            return False
        return not case.subject_ids or subject_id is None or subject_id in case.subject_set

    def covers_victim(self, user_id: str, subject_id: str, ts: int) -> bool:
        """Assigned to an open case that lists this person (S06's exemption)."""
        member = self.staff_by_id[user_id]
        return any(c.open_at(ts) and subject_id in c.subject_set for c in member.cases)
