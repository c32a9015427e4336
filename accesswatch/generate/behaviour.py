"""Ordinary work, duty by duty: the bulk of the audit log.

Each duty gets a Poisson number of tasks spread over the shift (quieter in
the small hours), a settled terminal, and the occasional task just before the
shift starts or just after it ends, inside the 30-minute grace.
"""

from __future__ import annotations

import math
import random

from . import names
from .calls import Dispatcher
from .clock import HOUR, MINUTE, SECOND, local_hour
from .ledger import Ledger
from .model import Case, Duty, Force, Staff, Subject
from .moves import lookup
from .queries import query_for
from .terminals import duty_terminal, task_terminal

_GRACE = 19 * MINUTE
# Mean accesses one task of each kind makes, so that a role's rate is per access.
_EVENTS_PER_TASK = {
    "case": 2.6,
    "vehicle": 1.4,
    "address": 1.7,
    "person": 1.8,
    "search": 1.0,
    "stop": 2.5,
    "log": 3.0,
    "call": 6.5,
    "custody": 4.5,
    "operation": 5.5,
    "file": 3.0,
    "other": 1.0,
}
# Relative activity by hour of the London day.
# fmt: off
_HOUR_WEIGHT = (
    0.45, 0.4, 0.35, 0.3, 0.3, 0.35, 0.6, 0.9, 1, 1, 1, 1,  # 00-11
    0.8, 0.85, 1, 1, 1, 0.95, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5,  # 12-23
)
# fmt: on


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class Work:
    def __init__(
        self, rng: random.Random, force: Force, ledger: Ledger, dispatcher: Dispatcher
    ) -> None:
        self.rng = rng
        self.force = force
        self.ledger = ledger
        self.calls = dispatcher
        self._tasks = {
            "case": self.case,
            "vehicle": self.vehicle,
            "address": self.address,
            "person": self.person,
            "search": self.search,
            "stop": self.stop,
            "log": self.log,
            "call": self.call,
            "custody": self.custody,
            "operation": self.operation,
            "file": self.file,
            "other": self.other,
        }

    def run(self) -> None:
        for m in self.force.staff:
            if m.works:
                kinds = [k for k, _ in m.spec.tasks]
                weights = [w for _, w in m.spec.tasks]
                per_task = sum(_EVENTS_PER_TASK[k] * w for k, w in m.spec.tasks) / sum(weights)
                for d in m.duties:
                    self.duty(m, d, kinds, weights, per_task)

    def duty(
        self, m: Staff, d: Duty, kinds: list[str], weights: list[float], per_task: float
    ) -> None:
        rng, f = self.rng, self.force
        s, e = max(d.start, f.start), min(d.end, f.end)
        if e <= s:
            return
        lam = m.rate * (e - s) / HOUR * rng.uniform(0.75, 1.25) / per_task
        times: list[int] = []
        for _ in range(poisson(rng, lam)):
            while True:
                t = rng.randint(s, e)
                if rng.random() < _HOUR_WEIGHT[local_hour(t)]:
                    times.append(t)
                    break
        if rng.random() < 0.12:
            times.append(d.start - rng.randint(1, 18) * MINUTE)  # logged on before briefing
        if rng.random() < 0.12:
            times.append(d.end + rng.randint(1, 15) * MINUTE)  # finishing off paperwork
        times.sort()
        settled = duty_terminal(rng, m)
        limit = min(d.end + _GRACE, f.end - 1)
        for t in times:
            # One thing at a time: a task starts once the last one is done.
            t = max(t, self.ledger.last.get(m.user_id, 0) + rng.randint(5, 90) * SECOND)
            if f.start <= t <= limit:
                kind = rng.choices(kinds, weights=weights)[0]
                self._tasks[kind](m, t, task_terminal(rng, m, settled), limit)

    # -- records ------------------------------------------------------------------

    def _own_area(self, m: Staff) -> str:
        if m.area in self.force.plain_people:
            return m.area
        return self.rng.choices(self.force.areas, weights=[a.weight for a in names.AREAS])[0]

    def _any_record(self, area: str | None) -> Subject:
        rng, f = self.rng, self.force
        area = area or rng.choice(f.areas)
        r = rng.random()
        if r < 0.6:
            return f.someone(rng, area)
        if r < 0.8:
            return rng.choice(f.vehicles[area])
        return rng.choice(f.addresses[area])

    def _open_cases(self, m: Staff, t: int, kinds: tuple[str, ...]) -> list[Case]:
        return [c for c in m.cases if c.kind in kinds and c.open_at(t)]

    def _emit(
        self,
        m: Staff,
        t: int,
        limit: int,
        terminal: str,
        system: str,
        action: str,
        s: Subject | None,
        stype: str | None = None,
        query: str | None = None,
        case_ref: str | None = None,
        count: int | None = None,
    ) -> None:
        if t <= limit:
            sid = None if s is None else s.subject_id
            self.ledger.normal(
                m,
                t,
                terminal,
                system,
                action,
                stype or (s.subject_type if s else None),
                sid,
                query,
                case_ref,
                count,
            )

    def _lookup(
        self,
        m: Staff,
        t: int,
        limit: int,
        terminal: str,
        system: str,
        s: Subject,
        case_ref: str | None,
        search_chance: float = 0.5,
    ) -> int:
        """Find a record and open it; returns the time after."""
        _, t = lookup(
            self.rng,
            self.ledger.normal_emitter(m, terminal, limit),
            t,
            system,
            s,
            case_ref,
            search_chance,
        )
        return t

    # -- tasks: each records some accesses starting at t, none after limit ------------

    def case(self, m: Staff, t: int, terminal: str, limit: int) -> None:
        rng, f = self.rng, self.force
        cases = self._open_cases(m, t, ("investigation", "witness", "log", "custody", "major"))
        if not cases:
            return self.search(m, t, terminal, limit)
        c = rng.choice(cases)
        system = c.system if c.system in ("NICHE", "ATHENA") else rng.choice(("NICHE", "PNC"))

        def pick() -> Subject:
            if c.subject_ids:
                return f.subject_by_id[rng.choice(c.subject_ids)]
            return self._any_record(c.area)

        s = pick()
        t = (
            self._lookup(m, t, limit, terminal, system, s, c.case_ref)
            + rng.randint(30, 240) * SECOND
        )
        if rng.random() < 0.35:
            self._emit(m, t, limit, terminal, system, "view", pick(), case_ref=c.case_ref)
            t += rng.randint(30, 240) * SECOND
        if rng.random() < 0.25:
            self._emit(m, t, limit, terminal, system, "update", s, case_ref=c.case_ref)
        r = rng.random()
        if r < 0.036:
            action = "print" if r < 0.03 else "export"
            self._emit(
                m,
                t + rng.randint(20, 120) * SECOND,
                limit,
                terminal,
                system,
                action,
                s,
                case_ref=c.case_ref,
            )
        return None

    def vehicle(self, m: Staff, t: int, terminal: str, limit: int) -> None:
        rng, f = self.rng, self.force
        area = self._own_area(m) if rng.random() < 0.85 else rng.choice(f.areas)
        v = rng.choice(f.vehicles[area])
        system = "ANPR" if m.unit == "Roads Policing" and rng.random() < 0.2 else "PNC"
        if rng.random() < 0.1:  # no trace
            self._emit(
                m,
                t,
                limit,
                terminal,
                system,
                "search",
                None,
                "vehicle",
                query_for(rng, v, system),
                None,
                0,
            )
            return
        self._lookup(m, t, limit, terminal, system, v, None, 0.9)

    def address(self, m: Staff, t: int, terminal: str, limit: int) -> None:
        rng = self.rng
        a = rng.choice(self.force.addresses[self._own_area(m)])
        self._lookup(m, t, limit, terminal, rng.choice(("NICHE", "NICHE", "STORM")), a, None, 0.7)

    def _stranger(self, m: Staff) -> Subject:
        """Someone checked without a case: in-area, plain, rarely a namesake."""
        rng, f = self.rng, self.force
        if m.namesakes and rng.random() < 0.1:
            return f.subject_by_id[rng.choice(m.namesakes)]
        area = self._own_area(m) if rng.random() < 0.95 else rng.choice(f.areas)
        return f.someone(rng, area)

    def person(self, m: Staff, t: int, terminal: str, limit: int) -> None:
        """A call from the public or a street check: a person with no case."""
        system = self.rng.choice(("PNC", "PNC", "NICHE"))
        self._lookup(m, t, limit, terminal, system, self._stranger(m), None, 0.8)

    def stop(self, m: Staff, t: int, terminal: str, limit: int) -> None:
        self.vehicle(m, t, terminal, limit)
        if self.rng.random() < 0.6:
            self.person(m, t + self.rng.randint(1, 6) * MINUTE, terminal, limit)

    def search(self, m: Staff, t: int, terminal: str, limit: int) -> None:
        """A search that opens nothing: no trace, or too many hits to bother."""
        rng = self.rng
        s = self._any_record(self._own_area(m))
        system = (
            rng.choice(("PNC", "NICHE", "NICHE", "PND")) if s.subject_type == "person" else "NICHE"
        )
        cases = (
            self._open_cases(m, t, ("investigation", "operation", "major"))
            if rng.random() < 0.3
            else []
        )
        ref = rng.choice(cases).case_ref if cases else None
        self._emit(
            m,
            t,
            limit,
            terminal,
            system,
            "search",
            None,
            s.subject_type,
            query_for(rng, s, system),
            ref,
            rng.choice((0, 0, 0, 2, 5, 12, 40)),
        )

    def log(self, m: Staff, t: int, terminal: str, limit: int) -> None:
        self.calls.self_log(m, t, terminal, limit)

    def call(self, m: Staff, t: int, terminal: str, limit: int) -> None:
        self.calls.call(m, t, terminal, limit)

    def custody(self, m: Staff, t: int, terminal: str, limit: int) -> None:
        self.calls.custody(m, t, terminal, limit)

    def operation(self, m: Staff, t: int, terminal: str, limit: int) -> None:
        """An analyst working an operation: a run of PND and NICHE lookups."""
        rng = self.rng
        ops = self._open_cases(m, t, ("operation",))
        if not ops:
            return self.search(m, t, terminal, limit)
        op = rng.choice(ops)
        for _ in range(rng.randint(1, 4)):
            s = self._any_record(op.area)
            system = (
                "PND" if rng.random() < 0.6 else ("PNC" if s.subject_type == "vehicle" else "NICHE")
            )
            t = (
                self._lookup(m, t, limit, terminal, system, s, op.case_ref, 0.6)
                + rng.randint(40, 240) * SECOND
            )
        return None

    def file(self, m: Staff, t: int, terminal: str, limit: int) -> None:
        """Criminal Justice file preparation: open case records, print a few."""
        rng, f = self.rng, self.force
        cases = [c for c in self._open_cases(m, t, ("investigation",)) if c.subject_ids]
        if not cases:
            return self.search(m, t, terminal, limit)
        c = rng.choice(cases)
        for sid in rng.sample(c.subject_ids, min(len(c.subject_ids), rng.randint(1, 3))):
            s = f.subject_by_id[sid]
            self._emit(m, t, limit, terminal, c.system, "view", s, case_ref=c.case_ref)
            t += rng.randint(60, 400) * SECOND
            if rng.random() < 0.3:
                self._emit(m, t, limit, terminal, c.system, "print", s, case_ref=c.case_ref)
                t += rng.randint(30, 200) * SECOND
        return None

    def other(self, m: Staff, t: int, terminal: str, limit: int) -> None:
        """Contractors: support work on non-personal records."""
        rng = self.rng
        s = rng.choice(self.force.others)
        if rng.random() < 0.3:
            self._emit(m, t, limit, terminal, "NICHE", "search", None, "other", "TEST", None, 0)
        else:
            self._emit(m, t, limit, terminal, "NICHE", "view", s)
