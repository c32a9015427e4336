"""Search text as users type it into each system."""

from __future__ import annotations

import random

from .model import Subject


def _dob(rng: random.Random) -> str:
    return f"{rng.randint(1, 28):02d}{rng.randint(1, 12):02d}{rng.randint(1948, 2008)}"


def person_query(rng: random.Random, s: Subject, system: str) -> str:
    surname = (s.surname or "").strip()
    forenames = s.forenames or ""
    first = forenames.split(" ")[0]
    if system == "PNC":
        # PNC name enquiries: SURNAME/FORENAME/DDMMYYYY
        text = f"{surname}/{first}".upper()
        return f"{text}/{_dob(rng)}" if rng.random() < 0.5 else text
    r = rng.random()
    if r < 0.4:
        return f"{first} {surname}"
    if r < 0.7:
        return f"{surname}, {first[:1]}".lower()
    return f"{surname} {forenames}".upper()


def vehicle_query(rng: random.Random, s: Subject) -> str:
    return s.label.replace(" ", "") if rng.random() < 0.6 else s.label


def place_query(rng: random.Random, s: Subject) -> str:
    if s.subject_type != "address":
        return s.label
    street = s.label.split(",")[0]
    return street.lower() if rng.random() < 0.4 else s.label


def query_for(rng: random.Random, s: Subject, system: str) -> str:
    if s.subject_type == "person":
        return person_query(rng, s, system)
    if s.subject_type == "vehicle":
        return vehicle_query(rng, s)
    return place_query(rng, s)
