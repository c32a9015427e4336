"""Work that opens its own case: incident logs from calls, and custody records.

A call handler opens a STORM log, checks the people, vehicles and places the
caller names against it, and dispatches officers on duty in that area, who
then open the same records on the same log. A custody record does the same
for a detained person.
"""

from __future__ import annotations

import random

from . import names
from .clock import HOUR, MINUTE, SECOND, date_text, local_day
from .ledger import Ledger
from .model import Case, Duty, Force, Staff, Subject
from .moves import lookup, system_for
from .terminals import task_terminal

_AREA_WEIGHTS = [a.weight for a in names.AREAS]
_AREA_NAMES = [a.name for a in names.AREAS]
_AREA_CODE = {a.name: a.code for a in names.AREAS}
_GRACE = 19 * MINUTE  # work may run a little past a duty, well inside 30 minutes


class Dispatcher:
    def __init__(self, rng: random.Random, force: Force, ledger: Ledger) -> None:
        self.rng = rng
        self.force = force
        self.ledger = ledger
        self.seq: dict[str, int] = {}
        self.on_duty: dict[tuple[str, int], list[tuple[Staff, Duty]]] = {}
        self.victims: dict[str, list[Subject]] = {a: [] for a in force.areas}
        for s in force.subjects:
            if s.subject_type == "person" and s.area and s.staff_of is None and "victim" in s.flags:
                self.victims[s.area].append(s)
        for m in force.staff:
            if m.unit not in ("Response", "Neighbourhood") or not m.works:
                continue
            for d in m.duties:
                for h in range(d.start // HOUR, d.end // HOUR):
                    self.on_duty.setdefault((m.area, h), []).append((m, d))

    def _ref(self, prefix: str, ts: int, width: int) -> str:
        date = date_text(local_day(ts))[2:].replace("-", "")
        key = f"{prefix}{date}"
        self.seq[key] = self.seq.get(key, 0) + 1
        return f"{prefix}-{date}-{self.seq[key]:0{width}d}"

    def _record(self, area: str) -> Subject:
        rng, f = self.rng, self.force
        r = rng.random()
        if r < 0.50:
            if self.victims[area] and rng.random() < 0.06:
                return rng.choice(self.victims[area])
            return f.someone(rng, area)
        if r < 0.85:
            return rng.choice(f.vehicles[area])
        return rng.choice(f.addresses[area])

    def _lookup(self, m: Staff, t: int, terminal: str, log: Case, s: Subject, limit: int) -> int:
        """Check a record the caller names, on the log; returns the time after."""
        log.add_subject(s.subject_id)
        system = system_for(self.rng, s.subject_type)
        _, t = lookup(
            self.rng,
            self.ledger.normal_emitter(m, terminal, limit),
            t,
            system,
            s,
            log.case_ref,
            0.85,
        )
        return t

    def _officers(self, area: str, t: int) -> list[tuple[Staff, Duty]]:
        here = [
            (m, d)
            for m, d in self.on_duty.get((area, t // HOUR), [])
            if d.start <= t <= d.end - 30 * MINUTE
        ]
        return self.rng.sample(here, min(len(here), self.rng.choice((1, 1, 2))))

    def _attend(self, log: Case, t: int) -> int:
        """Officers sent to the job open the log's records from the field.

        Returns the time of the last access; the log stays open (closed is
        None) until every attending officer is done.
        """
        rng, last = self.rng, t
        for officer, duty in self._officers(log.area or "", t):
            self.force.assign(log, officer.user_id)
            when = t + rng.randint(5, 45) * MINUTE
            terminal = officer.mobile or rng.choice(officer.favourites)
            for sid in rng.sample(log.subject_ids, min(len(log.subject_ids), rng.randint(1, 3))):
                if when > duty.end + _GRACE:
                    break
                s = self.force.subject_by_id[sid]
                system = "PNC" if s.subject_type == "vehicle" else "NICHE"
                self.ledger.normal(
                    officer, when, terminal, system, "view", s.subject_type, sid, None, log.case_ref
                )
                last = max(last, when)
                when += rng.randint(20, 300) * SECOND
        return last

    def _close(self, case: Case, last: int, low: int, high: int) -> None:
        closed = last + self.rng.randint(low, high) * MINUTE
        case.closed = closed if closed < self.force.end else None

    def call(self, m: Staff, t: int, terminal: str, limit: int) -> None:
        rng, f = self.rng, self.force
        area = rng.choices(_AREA_NAMES, weights=_AREA_WEIGHTS)[0]
        log = Case(
            self._ref("SL", t, 4),
            "log",
            area,
            [m.user_id],
            [],
            t - rng.randint(20, 90) * SECOND,
            None,
            "STORM",
        )
        f.add_case(log)
        when = self._lookup(
            m, t, terminal, log, rng.choice(f.addresses[area]), limit
        )  # where is it?
        for _ in range(rng.choice((1, 2, 2, 3, 4))):
            when = self._lookup(
                m, when + rng.randint(30, 150) * SECOND, terminal, log, self._record(area), limit
            )
        last = when + rng.randint(5, 30) * MINUTE
        if rng.random() < 0.65:
            last = max(last, self._attend(log, t) + rng.randint(10, 120) * MINUTE)
        self._close(log, last, 0, 360)

    def self_log(self, m: Staff, t: int, terminal: str, limit: int) -> None:
        """An officer raises a log for something seen on patrol."""
        rng = self.rng
        if m.area not in self.force.plain_people:
            return
        log = Case(
            self._ref("SL", t, 4),
            "log",
            m.area,
            [m.user_id],
            [],
            t - rng.randint(30, 300) * SECOND,
            None,
            "STORM",
        )
        self.force.add_case(log)
        when = t
        for _ in range(rng.choice((1, 2))):
            when = self._lookup(
                m, when, task_terminal(rng, m, terminal), log, self._record(m.area), limit
            )
            when += rng.randint(60, 600) * SECOND
        self._close(log, when, 20, 240)

    def custody(self, m: Staff, t: int, terminal: str, limit: int) -> None:
        rng, f = self.rng, self.force
        area = m.area if m.area in f.plain_people else rng.choice(f.areas)
        detainee = f.someone(rng, area, known=0.5)
        ref = f"CU-{_AREA_CODE[area]}-{self._ref('CU', t, 3)[3:]}"
        record = Case(
            ref,
            "custody",
            area,
            [m.user_id],
            [detainee.subject_id],
            t - rng.randint(5, 30) * MINUTE,
            None,
            "NICHE",
        )
        f.add_case(record)
        when = self._lookup(m, t, terminal, record, detainee, limit)
        for _ in range(rng.randint(1, 3)):
            when += rng.randint(2, 40) * MINUTE
            if when > limit:
                break
            self.ledger.normal(
                m, when, terminal, "NICHE", "update", "person", detainee.subject_id, None, ref
            )
        for officer, duty in self._officers(area, t):
            f.assign(record, officer.user_id)
            seen = max(record.opened or t, duty.start) + rng.randint(1, 20) * MINUTE
            if seen <= duty.end:
                terminal = officer.mobile or rng.choice(officer.favourites)
                self.ledger.normal(
                    officer,
                    seen,
                    terminal,
                    "NICHE",
                    "view",
                    "person",
                    detainee.subject_id,
                    None,
                    ref,
                )
        self._close(record, when, 4 * 60, 30 * 60)
