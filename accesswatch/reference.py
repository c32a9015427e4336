"""Reference data (HR, records, case management, roster) and the lookups rules need.

Every record kind can be upserted or deleted (a tombstone) at any time, live
from the compacted ``ref.*`` topics or in bulk from JSONL files; each indexed
view is kept in step on both paths.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accesswatch.contract.reference import (
    KEY_FIELDS,
    Case,
    DutyPeriod,
    StaffMember,
    SubjectRecord,
    decode_reference,
    normalise_postcode,
    normalise_surname,
)
from accesswatch.contract.timestamps import parse_ts
from accesswatch.errors import InvalidRecord, UsageError

FILES = {
    "staff": "staff.jsonl",
    "subject": "subjects.jsonl",
    "case": "cases.jsonl",
    "duty": "duties.jsonl",
}


@dataclass(slots=True, frozen=True)
class Staff:
    user_id: str
    surname: str | None
    postcode: str | None
    person_id: str | None
    role: str
    unit: str
    area: str
    status: str
    last_active: float | None
    # The member's peer group for the anomaly model: role and unit.
    peer: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "peer", f"{self.role}/{self.unit}")


@dataclass(slots=True, frozen=True)
class Subject:
    subject_id: str
    subject_type: str
    surname: str | None
    postcode: str | None
    area: str | None
    flags: frozenset[str]


@dataclass(slots=True, frozen=True)
class CaseInfo:
    case_ref: str
    status: str
    assigned: frozenset[str]
    subjects: frozenset[str]
    opened: float | None
    closed: float | None
    area: str | None


@dataclass(slots=True)
class Roster:
    """One member's duty periods, sorted by start, for cover at an instant."""

    starts: list[float] = field(default_factory=list)
    periods: list[tuple[float, float, str]] = field(default_factory=list)
    longest: float = 0.0
    # The period that last covered an instant: a member's events come in runs
    # within one shift, so most look-ups end here.
    last_hit: tuple[float, float, str] | None = field(default=None, repr=False, compare=False)

    def add(self, start: float, end: float, duty_id: str) -> None:
        i = bisect.bisect_right(self.starts, start)
        self.starts.insert(i, start)
        self.periods.insert(i, (start, end, duty_id))
        self.longest = max(self.longest, end - start)

    def remove(self, duty_id: str) -> None:
        for i, period in enumerate(self.periods):
            if period[2] == duty_id:
                del self.starts[i], self.periods[i]
                self.last_hit = None
                return

    def covers(self, t: float, grace: float) -> bool:
        """True when ``t`` lies within some period widened by ``grace`` each side."""
        hit = self.last_hit
        if hit is not None and hit[0] <= t + grace and hit[1] + grace >= t:
            return True
        i = bisect.bisect_right(self.starts, t + grace)
        floor = t - grace - self.longest
        while i > 0:
            i -= 1
            period = self.periods[i]
            if period[0] < floor:
                return False
            if period[1] + grace >= t:
                self.last_hit = period
                return True
        return False

    def duty_seconds(self, lo: float, hi: float) -> float:
        """Rostered time within [lo, hi), overlapping periods counted once."""
        total, reach = 0.0, lo
        i = max(0, bisect.bisect_left(self.starts, lo - self.longest))
        for start, end, _ in self.periods[i:]:
            if start >= hi:
                break
            start, end = max(start, reach), min(end, hi)
            if end > start:
                total += end - start
                reach = end
        return total

    def nearest_gap(self, t: float) -> float | None:
        """Seconds from ``t`` to the nearest duty edge, for a readable reason."""
        if not self.periods:
            return None
        return min(min(abs(t - s), abs(t - e)) for s, e, _ in self.periods)


class ReferenceData:
    """The force's reference data with indexed lookups; mutable, one writer."""

    def __init__(self) -> None:
        self.staff: dict[str, Staff] = {}
        self.subjects: dict[str, Subject] = {}
        self.cases: dict[str, CaseInfo] = {}
        self._duties: dict[str, tuple[str, float, float]] = {}
        self._rosters: dict[str, Roster] = {}
        self._staff_by_person: dict[str, str] = {}
        self._people_at: dict[str, set[str]] = {}
        self._cases_of_subject: dict[str, set[str]] = {}
        self._subject_areas: Counter[str] = Counter()

    # ---- lookups -------------------------------------------------------
    def staff_person_owner(self, subject_id: str) -> str | None:
        """The user_id whose own person record ``subject_id`` is, if any."""
        return self._staff_by_person.get(subject_id)

    def people_at(self, postcode_key: str) -> set[str]:
        return self._people_at.get(postcode_key, set())

    def cases_listing(self, subject_id: str) -> set[str]:
        return self._cases_of_subject.get(subject_id, set())

    def roster(self, user_id: str) -> Roster | None:
        """The member's duty periods, or None when the roster has none for them."""
        roster = self._rosters.get(user_id)
        return roster if roster is not None and roster.periods else None

    def is_area(self, area: str) -> bool:
        """True when some subject lives in ``area``: a member whose area is not
        one (``Force HQ``, ``Force-wide``) serves the whole force."""
        return self._subject_areas.get(area, 0) > 0

    def sizes(self) -> dict[str, int]:
        return {
            "staff": len(self.staff),
            "subject": len(self.subjects),
            "case": len(self.cases),
            "duty": len(self._duties),
        }

    # ---- updates -------------------------------------------------------
    def apply(self, kind: str, key: str, record: Any | None) -> None:
        """Upsert ``record`` under ``key``, or delete ``key`` when it is None."""
        put: dict[str, Callable[[str, Any], None]] = {
            "staff": self._put_staff,
            "subject": self._put_subject,
            "case": self._put_case,
            "duty": self._put_duty,
        }
        put[kind](key, record)

    def _put_staff(self, key: str, rec: StaffMember | None) -> None:
        old = self.staff.pop(key, None)
        if old is not None and old.person_id and self._staff_by_person.get(old.person_id) == key:
            del self._staff_by_person[old.person_id]
        if rec is None:
            return
        last = parse_ts(rec.last_active) if rec.last_active else None
        self.staff[key] = Staff(
            key,
            normalise_surname(rec.surname),
            normalise_postcode(rec.home_postcode),
            rec.person_id or None,
            rec.role,
            rec.unit,
            rec.area,
            rec.status,
            last,
        )
        if rec.person_id:
            self._staff_by_person[rec.person_id] = key

    def _put_subject(self, key: str, rec: SubjectRecord | None) -> None:
        old = self.subjects.pop(key, None)
        if old is not None:
            if old.postcode:
                _discard(self._people_at, old.postcode, key)
            if old.area:
                self._subject_areas[old.area] -= 1
        if rec is None:
            return
        subject = Subject(
            key,
            rec.subject_type,
            normalise_surname(rec.surname),
            normalise_postcode(rec.postcode),
            rec.area or None,
            frozenset(f.strip().casefold() for f in rec.flags),
        )
        self.subjects[key] = subject
        if subject.postcode and subject.subject_type == "person":
            self._people_at.setdefault(subject.postcode, set()).add(key)
        if subject.area:
            self._subject_areas[subject.area] += 1

    def _put_case(self, key: str, rec: Case | None) -> None:
        old = self.cases.pop(key, None)
        if old is not None:
            for sid in old.subjects:
                _discard(self._cases_of_subject, sid, key)
        if rec is None:
            return
        info = CaseInfo(
            key,
            rec.status,
            frozenset(rec.assigned_users),
            frozenset(rec.subject_ids),
            parse_ts(rec.opened_at) if rec.opened_at else None,
            parse_ts(rec.closed_at) if rec.closed_at else None,
            rec.area,
        )
        self.cases[key] = info
        for sid in info.subjects:
            self._cases_of_subject.setdefault(sid, set()).add(key)

    def _put_duty(self, key: str, rec: DutyPeriod | None) -> None:
        old = self._duties.pop(key, None)
        if old is not None:
            self._rosters[old[0]].remove(key)
        if rec is None:
            return
        start, end = parse_ts(rec.start), parse_ts(rec.end)
        self._duties[key] = (rec.user_id, start, end)
        self._rosters.setdefault(rec.user_id, Roster()).add(start, end, key)


def _discard(index: dict[str, set[str]], key: str, member: str) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(member)
        if not members:
            del index[key]


def read_jsonl(path: Path, kind: str) -> Iterator[tuple[int, Any | InvalidRecord]]:
    """(line number, record or the reason it was refused) for each line."""
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, decode_reference(kind, line)
            except InvalidRecord as e:
                yield n, e


def load_reference_dir(directory: Path) -> tuple[ReferenceData, list[str]]:
    """Load the four reference files named in the contract README.

    Returns the data and a list of problems (``staff.jsonl:12: surname: missing``);
    a bad line is reported, never fatal.  A missing file means none of that kind.
    """
    ref, problems = ReferenceData(), []
    for kind, name in FILES.items():
        path = directory / name
        if not path.exists():
            problems.append(f"{name}: not found; no {kind} records loaded")
            continue
        key_field = KEY_FIELDS[kind]
        for n, rec in read_jsonl(path, kind):
            if isinstance(rec, InvalidRecord):
                problems.append(f"{name}:{n}: {rec.reason}")
            else:
                ref.apply(kind, getattr(rec, key_field), rec)
    return ref, problems


def require_reference(directory: Path, option: str, *, every_file: bool,
                      allow_empty: bool) -> None:
    """Refuse a reference directory that cannot be what was meant, saying which files lack.

    ``every_file``: the detection needs all four files and some staff (without
    them every member is unknown and every query alerts); otherwise one file
    with one record will do.  ``allow_empty`` accepts whatever is there.
    """
    if allow_empty:
        return
    names = list(FILES.values())
    present = [name for name in names if (directory / name).is_file()]
    missing = [name for name in names if name not in present]
    hint = "give the directory `accesswatch generate` wrote, or --allow-empty"
    if not present:
        raise UsageError(f"{option} {directory}: holds none of {', '.join(names)} ({hint})")
    if every_file and missing:
        raise UsageError(f"{option} {directory}: {', '.join(missing)} missing ({hint})")
    empty = [name for name in present if not _holds_a_record(directory / name)]
    if len(empty) == len(present):
        raise UsageError(f"{option} {directory}: {', '.join(empty)} hold no records ({hint})")
    if every_file and FILES["staff"] in empty:
        raise UsageError(f"{option} {directory}: {FILES['staff']} holds no records, so every "
                         f"member would be unknown ({hint})")


def _holds_a_record(path: Path) -> bool:
    with path.open("rb") as f:
        return any(line.strip() for line in f)
