"""Stations, terminals and mobile devices.

A member logs on at a few favourite terminals in their own station and
sometimes wherever a seat is free; field officers also use a mobile data
terminal. Terminal ids read like 'NTH-ST01-T07'.
"""

from __future__ import annotations

import random

from . import names
from .model import Staff

# Force-wide units sit at headquarters, each in its own suite.
_HQ_SUITES = {"Control Room": "HQ-CR01", "Intelligence": "HQ-IU01", "Contractors": "HQ-IT01"}


def _station_terminals(rng: random.Random, station: str, low: int, high: int) -> list[str]:
    return [f"{station}-T{k:02d}" for k in range(1, rng.randint(low, high) + 1)]


def assign_terminals(rng: random.Random, staff: list[Staff]) -> None:
    stations: dict[str, list[list[str]]] = {}
    for area in names.AREAS:
        count = rng.randint(2, 4)
        stations[area.name] = [
            _station_terminals(rng, f"{area.code}-ST{n:02d}", 8, 30) for n in range(1, count + 1)
        ]
    suites = {unit: _station_terminals(rng, code, 20, 45) for unit, code in _HQ_SUITES.items()}
    custody = {a.name: _station_terminals(rng, f"{a.code}-CU01", 4, 10) for a in names.AREAS}
    mobiles = rng.sample(range(1000, 1000 + max(8999, 2 * len(staff))), len(staff))
    for member, mobile in zip(staff, mobiles, strict=True):
        if member.unit in suites and member.area == names.FORCE_WIDE_AREA:
            pool = suites[member.unit]
        elif member.unit == "Custody":
            pool = custody[member.area]
        else:
            pool = rng.choice(stations[member.area])
        member.station_terminals = pool
        member.station = pool[0].rsplit("-", 1)[0]
        member.favourites = rng.sample(pool, min(len(pool), rng.randint(1, 3)))
        if rng.random() < member.spec.mobile:
            code = member.station.split("-", 1)[0]
            member.mobile = f"MDT-{code}-{mobile:04d}"


def duty_terminal(rng: random.Random, member: Staff) -> str:
    """The terminal a member settles at for one duty."""
    if member.unit == "Control Room":
        # Consoles are hot-desked shift by shift.
        return rng.choice(member.station_terminals)
    if rng.random() < 0.9:
        return rng.choice(member.favourites)
    return rng.choice(member.station_terminals)


def task_terminal(rng: random.Random, member: Staff, settled: str) -> str:
    """Where one piece of work is done: mostly the settled terminal."""
    r = rng.random()
    if member.mobile is not None and r < 0.4:
        return member.mobile
    if r < 0.93:
        return settled
    return rng.choice(member.station_terminals)
