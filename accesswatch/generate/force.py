"""Assemble a force: staff, subjects, terminals, duties, cases, and the pools
ordinary work draws from."""

from __future__ import annotations

import random

from . import names
from .cases import CaseBook, build_cases
from .clock import DAY
from .duties import build_duties
from .model import Force
from .staff import build_staff
from .subjects import build_subjects
from .terminals import assign_terminals


def _index(force: Force, rng: random.Random) -> None:
    force.staff_by_id = {m.user_id: m for m in force.staff}
    force.subject_by_id = {s.subject_id: s for s in force.subjects}
    for area in force.areas:
        force.plain_people[area] = []
        force.vehicles[area] = []
        force.addresses[area] = []
    for s in force.subjects:
        if s.subject_type == "person":
            force.person_ids.append(s.subject_id)
        if not s.plain or (s.area is None and s.subject_type != "other"):
            continue
        if s.subject_type == "person":
            force.plain_people[s.area or ""].append(s)
        elif s.subject_type == "vehicle":
            force.vehicles[s.area or ""].append(s)
        elif s.subject_type == "address":
            force.addresses[s.area or ""].append(s)
        elif s.subject_type == "other":
            force.others.append(s)
    for area, people in force.plain_people.items():
        force.prolific[area] = rng.sample(people, max(1, len(people) // 25))


def build_force(
    rng: random.Random, staff: int, days: int, start: int, minimum: int
) -> tuple[Force, CaseBook]:
    """Everything but the events. `minimum` is the incidents per scenario to make room for."""
    streams = [random.Random(rng.getrandbits(64)) for _ in range(5)]
    surnames = names.surname_pool(streams[0])
    members = build_staff(streams[0], staff, start, surnames, minimum + max(3, minimum // 3))
    subjects = build_subjects(streams[1], members, surnames, 2 * minimum + 2)
    force = Force(
        start=start,
        end=start + days * DAY,
        areas=[a.name for a in names.AREAS],
        staff=members,
        subjects=subjects,
    )
    _index(force, streams[2])
    assign_terminals(streams[2], members)
    build_duties(streams[3], members, start, days)
    book = build_cases(streams[4], force)
    return force, book
