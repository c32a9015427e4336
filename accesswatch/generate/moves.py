"""The one way anybody looks a record up, misuse or not.

Ordinary work and misuse share this code so that nothing in the shape of an
event (which system logs the chosen record on the search line, how many hits
a search returns, the pause before the view) tells them apart.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from .clock import SECOND
from .model import Subject
from .queries import query_for

# Emit one access and return its event id (None if refused):
# (ts, system, action, subject_type, subject_id, query, case_ref, result_count)
Emit = Callable[
    [int, str, str, str | None, str | None, str | None, str | None, int | None], str | None
]

# Systems whose search line records the record the user picked from the hits.
_PICKS_ON_SEARCH = ("PNC", "ANPR", "STORM")


def lookup(
    rng: random.Random,
    emit: Emit,
    t: int,
    system: str,
    s: Subject,
    case_ref: str | None,
    search_chance: float = 0.5,
) -> tuple[list[str], int]:
    """Maybe search for the record, then open it. Returns the event ids made and the time after."""
    ids: list[str] = []
    searched = rng.random() < search_chance
    if searched:
        ref = case_ref if rng.random() < 0.7 else None
        picks = system in _PICKS_ON_SEARCH
        eid = emit(
            t,
            system,
            "search",
            s.subject_type,
            s.subject_id if picks else None,
            query_for(rng, s, system),
            ref,
            rng.randint(1, 3) if picks else rng.randint(1, 8),
        )
        if eid:
            ids.append(eid)
        t += rng.randint(4, 45) * SECOND
        if picks and rng.random() < 0.5:
            return ids, t  # the search line already names the record opened
    eid = emit(t, system, "view", s.subject_type, s.subject_id, None, case_ref, None)
    if eid:
        ids.append(eid)
    return ids, t


def system_for(rng: random.Random, subject_type: str) -> str:
    """Where a kind of record is usually looked up."""
    if subject_type == "vehicle":
        return "PNC"
    if subject_type == "person":
        return "PNC" if rng.random() < 0.4 else "NICHE"
    if subject_type == "address":
        return "STORM" if rng.random() < 0.5 else "NICHE"
    return "NICHE"
