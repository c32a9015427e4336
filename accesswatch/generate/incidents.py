"""Misuse incidents for every scenario in the catalogue, and their labels.

Each incident is committed by a different suitable member in the middle of
their ordinary work; its label names only the misuse events. Scenario code
lives in snooping.py (S01-S07) and patterns.py (S08-S13); this module picks
who does what and provides the shared moves.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from . import names
from .clock import DAY, HOUR, MINUTE, SECOND
from .ledger import Ledger
from .model import Case, Force, Staff, Subject
from .moves import lookup, system_for
from .terminals import duty_terminal, task_terminal

SCENARIOS = tuple(f"S{i:02d}" for i in range(1, 14))


def incidents_per_scenario(staff: int, days: int) -> int:
    return max(6, round(staff * days / 2800))


@dataclass(slots=True)
class Incident:
    scenario: str
    user_id: str
    event_ids: list[str]


class Kit:
    """Shared moves for scenario code: times on duty, terminals, opens, bad cases."""

    def __init__(self, rng: random.Random, force: Force, ledger: Ledger) -> None:
        self.rng = rng
        self.force = force
        self.ledger = ledger
        self._habits: dict[tuple[str, str], list[str]] | None = None
        self._investigations: list[Case] | None = None

    def duties_in_feed(self, m: Staff, margin: int = 30 * MINUTE) -> list[tuple[int, int]]:
        f = self.force
        spans = [(max(d.start, f.start) + margin, min(d.end, f.end) - margin) for d in m.duties]
        return [(s, e) for s, e in spans if e > s]

    def time_on_duty(self, m: Staff, length: int = 0) -> int | None:
        """A moment well inside one of the member's duties, leaving `length` to run."""
        spans = [(s, e - length) for s, e in self.duties_in_feed(m) if e - length > s]
        if not spans:
            return None
        s, e = self.rng.choice(spans)
        return self.rng.randint(s, e)

    def terminal(self, m: Staff) -> str:
        return task_terminal(self.rng, m, duty_terminal(self.rng, m))

    def usual_system(self, m: Staff, subject_type: str) -> str:
        """A system this member uses for this kind of record in ordinary work."""
        if self._habits is None:
            self._habits = {}
            for e in self.ledger.events:
                self._habits.setdefault((e[2], e[6] or ""), []).append(e[4])
        seen = self._habits.get((m.user_id, subject_type))
        return self.rng.choice(seen) if seen else system_for(self.rng, subject_type)

    def open(
        self,
        m: Staff,
        t: int,
        terminal: str,
        s: Subject,
        case_ref: str | None,
        search: float = 0.5,
        print_chance: float = 0.0,
    ) -> tuple[list[str], int]:
        """Look a record up as ordinary work would, maybe print it; returns ids and time after."""
        system = self.usual_system(m, s.subject_type)
        emit = self.ledger.misuse_emitter(m, terminal)
        ids, t = lookup(self.rng, emit, t, system, s, case_ref, search)
        if self.rng.random() < print_chance:
            t += self.rng.randint(20, 180) * SECOND
            ids.append(
                self.ledger.misuse(
                    m, t, terminal, system, "print", s.subject_type, s.subject_id, None, case_ref
                )
            )
        return ids, t

    def bad_case(self, m: Staff, t: int, sid: str) -> str | None:
        """A case_ref that does not justify opening sid: not assigned, closed, or not listing it."""
        rng, f = self.rng, self.force
        options: list[Case] = []
        mine = [c for c in m.cases if c.kind in ("investigation", "historic", "witness")]
        closed = [c for c in mine if c.closed is not None and c.closed < t - HOUR]
        unlisted = [c for c in mine if c.open_at(t) and c.subject_ids and sid not in c.subject_set]
        for pool in (closed, unlisted):
            if pool:
                options.append(rng.choice(pool))
        if self._investigations is None:
            self._investigations = [c for c in f.cases if c.kind == "investigation"]
        for _ in range(20):
            c = rng.choice(self._investigations)
            if m.user_id not in c.assigned_set:
                options.append(c)  # somebody else's case
                break
        rng.shuffle(options)
        for c in options:
            if not f.justifies(c.case_ref, m.user_id, sid, t):
                return c.case_ref
        return None

    def maybe_bad_case(self, m: Staff, t: int, sid: str, chance: float = 0.35) -> str | None:
        return self.bad_case(m, t, sid) if self.rng.random() < chance else None

    def worker(self, m: Staff) -> bool:
        """Someone with an ordinary baseline to hide in."""
        return (
            m.works
            and m.role != "contractor"
            and len(self.duties_in_feed(m)) > 0
            and self.ledger.counts.get(m.user_id, 0) >= 10
        )

    def area_bound(self, m: Staff) -> bool:
        return m.area != names.FORCE_WIDE_AREA


Scenario = Callable[[Kit, Staff], list[str] | None]
Eligible = Callable[[Kit, Staff], bool]


def plan_incidents(
    rng: random.Random, force: Force, ledger: Ledger, per_scenario: int
) -> list[Incident]:
    # Imported here because the scenario modules import Kit from this one.
    from .patterns import PATTERNS
    from .snooping import SNOOPING

    table: dict[str, tuple[Eligible, Scenario]] = {**SNOOPING, **PATTERNS}
    kit = Kit(rng, force, ledger)
    used: set[str] = set()
    out: list[Incident] = []
    # The scarcest kinds of member are placed first.
    for code in (
        "S11",
        "S01",
        "S02",
        "S03",
        *[c for c in SCENARIOS if c not in ("S11", "S01", "S02", "S03")],
    ):
        eligible, commit = table[code]
        pool = [m for m in force.staff if eligible(kit, m)]
        rng.shuffle(pool)
        if code == "S11":
            pool = _round_robin(pool)  # suspended, leaver and idle accounts in turn
        pool.sort(key=lambda m: m.user_id in used)  # fresh members first; reuse only if short
        done = 0
        for m in pool:
            if done == per_scenario:
                break
            ids = commit(kit, m)
            if ids:
                out.append(Incident(code, m.user_id, ids))
                used.add(m.user_id)
                done += 1
        if done < per_scenario:
            raise ValueError(
                f"{code}: only {done} of {per_scenario} incidents could be placed; "
                "the force is too small for this many"
            )
    return out


def _round_robin(pool: list[Staff]) -> list[Staff]:
    kinds: dict[str, list[Staff]] = {}
    for m in pool:
        kinds.setdefault("idle" if m.idle else m.status, []).append(m)
    lanes = [kinds[k] for k in sorted(kinds)]
    return [
        lane[i] for i in range(max(map(len, lanes), default=0)) for lane in lanes if i < len(lane)
    ]


def spread_days(
    rng: random.Random, spans: list[tuple[int, int]], count: int
) -> list[tuple[int, int]]:
    """Up to `count` duty spans on distinct UTC days, spread over the feed."""
    by_day: dict[int, tuple[int, int]] = {}
    for s, e in spans:
        by_day.setdefault(s // DAY, (s, e))
    days = list(by_day)
    picked = sorted(rng.sample(days, min(count, len(days))))
    return [by_day[d] for d in picked]
