"""The HR directory: who works where, doing what, living where."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import names
from .clock import DAY, HOUR
from .model import Staff
from .roles import CUSTODY_AREAS, SPECS, RoleSpec

if TYPE_CHECKING:
    from .national_staff import Member

_AREA_BY_NAME = {a.name: a for a in names.AREAS}


def _role_counts(total: int) -> list[tuple[RoleSpec, int]]:
    """Largest-remainder rounding so the counts add up to the force size."""
    whole = sum(x.share for x in SPECS)
    exact = [s.share * total / whole for s in SPECS]
    counts = [int(v) for v in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return list(zip(SPECS, counts, strict=True))


def _weighted_area(rng: random.Random, choices: tuple[names.Area, ...] = names.AREAS) -> names.Area:
    return rng.choices(choices, weights=[a.weight for a in choices])[0]


def _served_area(rng: random.Random, spec: RoleSpec) -> str:
    if rng.random() < spec.hq_share:
        return names.FORCE_WIDE_AREA
    if spec.unit == "Custody":
        return _weighted_area(rng, tuple(_AREA_BY_NAME[a] for a in CUSTODY_AREAS)).name
    return _weighted_area(rng).name


def hr_postcode(rng: random.Random, canonical: str) -> str:
    """HR free text: spacing and case vary from member to member."""
    compact = canonical.replace(" ", "")
    r = rng.random()
    if r < 0.45:
        return canonical
    if r < 0.60:
        return canonical.lower()
    if r < 0.72:
        return compact
    if r < 0.80:
        return compact.lower()
    if r < 0.90:
        return f" {canonical.replace(' ', '  ')} "
    return canonical.title()


def _hr_surname(rng: random.Random, name: str) -> str:
    return name.upper() if rng.random() < 0.12 else name


def build_staff(
    rng: random.Random,
    total: int,
    start: int,
    surnames: tuple[list[str], list[float]],
    min_inactive: int,
) -> list[Staff]:
    pool, cum = surnames
    staff: list[Staff] = []
    for spec, count in _role_counts(total):
        for _ in range(count):
            area = _served_area(rng, spec)
            # Most live in or near the area they serve; force-wide staff anywhere.
            if area in _AREA_BY_NAME and rng.random() < 0.6:
                home = _AREA_BY_NAME[area]
            else:
                home = _weighted_area(rng)
            canonical = names.postcode(rng, home)
            surname = rng.choices(pool, cum_weights=cum)[0]
            member = Staff(
                user_id="",
                surname=_hr_surname(rng, surname),
                forenames=None if rng.random() < 0.03 else names.forenames(rng),
                spec=spec,
                area=area,
                home_postcode=None if rng.random() < 0.04 else hr_postcode(rng, canonical),
                postcode_key=None,
                home_area=home.name,
                rate=spec.rate * rng.lognormvariate(0.0, 0.3),
            )
            member.postcode_key = names.postcode_key(member.home_postcode)
            staff.append(member)
    # Ids are issued in an order unrelated to role, so they reveal nothing.
    rng.shuffle(staff)
    numbers = rng.sample(range(10_000, 99_999), len(staff))
    for member, number in zip(staff, numbers, strict=True):
        prefix = "C" if member.role == "contractor" else ("S" if member.role in _CIVILIAN else "E")
        member.user_id = f"{prefix}{number}"
    staff.sort(key=lambda m: m.user_id)
    _set_statuses(rng, staff, start, min_inactive)
    return staff


_CIVILIAN = ("call_handler", "analyst", "police_staff", "detention_officer", "pcso")


def _set_statuses(rng: random.Random, staff: Sequence[Staff | Member], start: int,
                  min_inactive: int) -> None:
    """A few suspended, leaver and long-idle accounts; recent last_active for many
    (the national generator's members too)."""
    n = len(staff)
    inactive = min(n // 4, max(round(n * 0.03), min_inactive))
    chosen = rng.sample(range(n), inactive)
    for k, i in enumerate(chosen):
        member = staff[i]
        kind = ("suspended", "leaver", "idle")[k % 3]
        if kind == "idle":
            member.idle = True
            member.last_active = start - rng.randint(60, 400) * DAY - rng.randint(0, 23) * HOUR
        else:
            member.status = kind
            if rng.random() < 0.8:
                member.last_active = start - rng.randint(3, 90) * DAY - rng.randint(0, 23) * HOUR
    for member in staff:
        if member.works and rng.random() < 0.6:
            # Known last access shortly before the feed began.
            member.last_active = start - rng.randint(1, 14 * 24) * HOUR - rng.randint(0, 3_599_999)
