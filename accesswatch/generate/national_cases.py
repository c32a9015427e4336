"""Cases at national scale: investigations, operations, witness cases, incident logs, custody.

The mix and shapes follow the full generator (``cases.py`` and ``calls.py``):
per member a few investigations, and per member and day about 1.5 incident
logs and 0.17 custody records, each with one to six assigned members and
subjects of its own area. Drawn a batch at a time with numpy, and written
from arrays: teams and subject lists are joined column by column, not case
by case. Only staff-sized tables are held.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from . import names
from .clock import DAY, HOUR, MINUTE, date_text, local_day, local_to_utc
from .national_layout import AREA_NAMES, AREA_WEIGHTS, KINDS, Layout
from .national_staff import Member
from .national_staffing import HQ, UNITS, Staffing, concat, distinct
from .roles import CASE_UNITS

BATCH = 100_000
LOGS_PER_MEMBER_DAY = 1.5  # STORM incident logs (measured on the full generator: 1.51)
CUSTODY_PER_MEMBER_DAY = 0.17
OPERATIONS_PER_MEMBER = 0.01
NONE = -1  # no subject, or no member, in this place
PERSON, VEHICLE, ADDRESS, INCIDENT = (
    KINDS.index(k) for k in ("person", "vehicle", "address", "incident")
)
_AREA_CODE = [a.code for a in names.AREAS]
_AREA_JSON = [f'"{a}"' for a in AREA_NAMES] + ["null"]  # HQ: no area
_CUM_AREA = np.cumsum(AREA_WEIGHTS)[:-1]


def _choice(gen: np.random.Generator, weights: list[float], n: int) -> np.ndarray:
    cum = np.cumsum(weights)
    return np.searchsorted(cum[:-1] / cum[-1], gen.random(n), side="right")


def _between(
    gen: np.random.Generator, low: np.ndarray | int, high: np.ndarray | int, n: int
) -> np.ndarray:
    return np.asarray(low + gen.random(n) * (np.asarray(high) - low), dtype=np.int64)


def _stamps(ms: np.ndarray, present: np.ndarray | bool = True) -> list[str]:
    """'"2026-03-02T08:15:02Z"' for each instant, or null where not ``present``."""
    text = np.datetime_as_string(ms.astype("datetime64[ms]").astype("datetime64[s]"), unit="s")
    quoted = '"' + text.astype(object) + 'Z"'
    return list(np.where(present, quoted, "null").tolist())


@dataclass(slots=True)
class Batch:
    """Cases drawn together: one row each."""

    refs: list[str]
    area: np.ndarray  # area index; HQ for none
    team: np.ndarray  # (n, k) member indexes, NONE for an empty place
    kind: np.ndarray  # (n, s) subject kinds (index into KINDS), NONE for an empty place
    index: np.ndarray  # (n, s) subject indexes within their kind
    opened: list[str]  # JSON fragments
    closed: list[str]


class CaseWriter:
    def __init__(
        self,
        layout: Layout,
        staff: list[Member],
        own: list[tuple[int, int]],
        start: int,
        days: int,
        seed: int,
        id_prefix: str,
    ) -> None:
        """``own``: (member, person index) of each member's own record."""
        self.layout, self.staff, self.own = layout, staff, own
        self.s = Staffing(staff)
        self.start, self.days, self.end = start, days, start + days * DAY
        self.seed, self.prefix = seed, id_prefix
        first = random.Random(seed)
        self.seq = [first.randint(1000, 9000) for _ in AREA_NAMES]  # crime numbers per area

    def _gen(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key])

    def chunks(self) -> Iterator[list[str]]:
        leads = self.s.in_units(CASE_UNITS)
        step = BATCH // 4  # about four cases a lead
        for b, lo in enumerate(range(0, leads.size, step)):
            yield self._lines(self._investigations(self._gen(1, b), leads[lo : lo + step]))
        yield self._lines(self._witness_cases(random.Random(self.seed + 2)))
        yield self._lines(self._operations(random.Random(self.seed + 3)))
        first = local_day(self.start)
        for day in range(first, first + self.days):
            yield from map(self._lines, self._logs(day))
            yield from map(self._lines, self._custody(day))

    def _lines(self, b: Batch) -> list[str]:
        teams = self.s.teams(b.team)
        kind = b.kind
        key = distinct(np.where(kind >= 0, (kind << 40) + b.index, NONE))
        quoted = np.full(key.shape, "", dtype=object)
        for code, r in enumerate(self.layout.kinds.values()):
            sel = (key >= 0) & (kind == code)
            if sel.any():
                quoted[sel] = [f',"{i}"' for i in r.ids(b.index[sel])]
        subjects = concat(quoted)
        return [
            f'{{"case_ref":"{ref}","status":"{"open" if c == "null" else "closed"}",'
            f'"area":{_AREA_JSON[a]},"assigned_users":{t},"subject_ids":[{s[1:]}],'
            f'"opened_at":{o},"closed_at":{c}}}'
            for ref, a, t, s, o, c in zip(
                b.refs, b.area.tolist(), teams, subjects, b.opened, b.closed, strict=True
            )
        ]

    def _picks(self, gen: np.random.Generator, kind: np.ndarray, area: np.ndarray) -> np.ndarray:
        """A subject of each place's kind from its row's area (unused where kind is NONE)."""
        index = np.zeros(kind.shape, dtype=np.int64)
        rows = np.broadcast_to(area[:, None], kind.shape)
        for code, r in enumerate(self.layout.kinds.values()):
            sel = kind == code
            if sel.any():
                index[sel] = r.pick(gen, rows[sel])
        return index

    def _crime_refs(self, area: np.ndarray, steps: np.ndarray, opened: list[str]) -> list[str]:
        """'11/004521/26': the area's number, a rising sequence, the year opened."""
        seq = np.zeros(area.size, dtype=np.int64)
        for a in range(len(AREA_NAMES)):
            sel = area == a
            if sel.any():
                seq[sel] = self.seq[a] + np.cumsum(steps[sel])
                self.seq[a] = int(seq[sel][-1])
        p = self.prefix
        return [
            f"{p}{11 + a}/{q:06d}/{o[3:5]}"
            for a, q, o in zip(area.tolist(), seq.tolist(), opened, strict=True)
        ]

    # -- investigations, witness cases, operations ----------------------------------------

    def _investigations(self, gen: np.random.Generator, leads: np.ndarray) -> Batch:
        s = self.s
        load = np.array([self.staff[i].spec.caseload for i in leads.tolist()], dtype=np.int64)
        low, high = load.reshape(-1, 2)[:, 0], load.reshape(-1, 2)[:, 1]
        current = low + (gen.random(leads.size) * (high - low + 1)).astype(np.int64)
        historic = _choice(gen, [2, 1, 1], leads.size)
        counts = current + historic
        lead = np.repeat(leads, counts)
        n = lead.size
        first = np.repeat(np.cumsum(counts) - counts, counts)
        old = np.arange(n) - first >= np.repeat(current, counts)  # historic after current
        area = s.area[lead]
        # Colleagues: mostly the lead's own area and unit, some other case units, a few elsewhere.
        size = _choice(gen, [30, 30, 20, 10, 6, 4], n)
        r = gen.random((n, 5))
        case_units = np.array([UNITS.index(u) for u in CASE_UNITS])[
            gen.integers(0, len(CASE_UNITS), (n, 5))
        ]
        far = gen.integers(0, len(AREA_NAMES), (n, 5))
        unit = s.unit[lead][:, None]
        here = area[:, None] * len(UNITS)
        groups = np.where(
            r < 0.70, here + unit, np.where(r < 0.95, here + case_units, far * len(UNITS) + unit)
        )
        mates = s.pick(gen, groups.ravel()).reshape(n, 5)
        mates[np.arange(5)[None, :] >= size[:, None]] = NONE
        cj = np.where(gen.random(n) < 0.3, s.pick(gen, s.group(area, "Criminal Justice")), NONE)
        intel = np.where(gen.random(n) < 0.08, s.pick(gen, s.group(area, "Intelligence")), NONE)
        # Subjects: people of the area, often vehicles and an address, sometimes an incident.
        kind = np.full((n, 7), NONE, dtype=np.int64)
        people = gen.integers(1, 4, n)
        for k in range(3):
            kind[:, k] = np.where(k < people, PERSON, NONE)
        cars = np.where(gen.random(n) < 0.4, gen.integers(1, 3, n), 0)
        kind[:, 3] = np.where(cars >= 1, VEHICLE, NONE)
        kind[:, 4] = np.where(cars >= 2, VEHICLE, NONE)
        kind[:, 5] = np.where(gen.random(n) < 0.4, ADDRESS, NONE)
        kind[:, 6] = np.where(gen.random(n) < 0.3, INCIDENT, NONE)
        kind[gen.random(n) < 0.08] = NONE  # a series or a place: any record is in scope
        opened, closed = self._periods(gen, old)
        return Batch(
            self._crime_refs(area, gen.integers(1, 5, n), opened),
            area,
            np.column_stack([lead, mates, cj, intel]),
            kind,
            self._picks(gen, kind, area),
            opened,
            closed,
        )

    def _periods(self, gen: np.random.Generator, old: np.ndarray) -> tuple[list[str], list[str]]:
        """Historic cases closed before the feed; current ones opened before or during it."""
        n, start, end = old.size, self.start, self.end
        ended = start - _between(gen, HOUR, 29 * DAY, n)
        before = gen.random(n) < 0.6
        opened = np.where(
            old,
            ended - _between(gen, 2 * DAY, 200 * DAY, n),
            np.where(
                before,
                start - _between(gen, HOUR, 120 * DAY, n),
                start + _between(gen, 0, max(1, end - start - 12 * HOUR), n),
            ),
        )
        late = opened + DAY
        closed = np.where(
            old,
            ended,
            np.where(
                before,
                _between(gen, start + 6 * HOUR, end - HOUR, n),
                _between(gen, late, end - HOUR, n),
            ),
        )
        shut = old | (before & (gen.random(n) < 0.25))
        shut |= ~before & (late < end - HOUR) & (gen.random(n) < 0.15)
        return _stamps(opened), _stamps(closed, shut)

    def _witness_cases(self, rng: random.Random) -> Batch:
        """Colleagues who are witnesses or victims: their own records are opened on a case."""
        s, gen = self.s, self._gen(4)
        rows: list[tuple[int, list[int], int, int]] = []
        for k, (member, person) in enumerate(self.own):
            if k > 0 and rng.random() >= 0.4:
                continue
            where = int(s.area[member])
            where = self.staff[member].home_area if where == HQ else where
            chosen = s.sample(rng, where, ("CID", "Response"), rng.randint(1, 3), member)
            if chosen:
                rows.append((where, chosen, person, rng.randint(1, 2)))
        n = len(rows)
        area = np.array([r[0] for r in rows], dtype=np.int64)
        team = np.full((n, 3), NONE, dtype=np.int64)
        kind = np.full((n, 3), NONE, dtype=np.int64)
        for i, (_, members, _, people) in enumerate(rows):
            team[i, : len(members)] = members
            kind[i, : 1 + people] = PERSON
        index = self._picks(gen, kind, area)
        index[:, 0] = [r[2] for r in rows]  # the member's own record first
        opened = _stamps(self.start - _between(gen, DAY, 30 * DAY, n))
        refs = self._crime_refs(area, gen.integers(1, 5, n), opened)
        return Batch(refs, area, team, kind, index, opened, ["null"] * n)

    def _operations(self, rng: random.Random) -> Batch:
        """Intelligence operations list no subjects: any record is in scope."""
        s = self.s
        analysts = [i for i, r in enumerate(s.role) if r == "analyst" and s.works[i]]
        words = list(names.OPERATION_WORDS)
        rng.shuffle(words)
        refs, areas, teams, opened = [], [], [], []
        for k in range(max(1, round(OPERATIONS_PER_MEMBER * len(self.staff)))):
            area = rng.choices(range(HQ + 1), weights=[*AREA_WEIGHTS, 1 / 7])[0]
            team = s.sample(rng, area, ("CID",), rng.randint(0, 2)) if area != HQ else []
            team += rng.sample(analysts, min(len(analysts), rng.randint(1, 6 - len(team))))
            if not team:
                continue
            suffix = str(k // len(words) + 1) if k >= len(words) else ""
            refs.append(f"{self.prefix}OP-{words[k % len(words)]}{suffix}")
            areas.append(area)
            teams.append(team + [NONE] * (6 - len(team)))
            when = self.start - rng.randint(20 * DAY, 400 * DAY)
            opened.append(None if rng.random() < 0.2 else when)
        n = len(refs)
        ms = np.array([0 if o is None else o for o in opened], dtype=np.int64)
        return Batch(
            refs,
            np.array(areas, dtype=np.int64),
            np.array(teams, dtype=np.int64).reshape(n, 6),
            np.full((n, 1), NONE),
            np.zeros((n, 1), dtype=np.int64),
            _stamps(ms, np.array([o is not None for o in opened], dtype=bool)),
            ["null"] * n,
        )

    # -- work that opens its own case ---------------------------------------------------

    def _day(self, day: int) -> tuple[int, str]:
        return local_to_utc(day * DAY), date_text(day)[2:].replace("-", "")

    def _sent(
        self, gen: np.random.Generator, area: np.ndarray, sent: np.ndarray, response: float
    ) -> np.ndarray:
        """Up to two officers of the area (Response, else Neighbourhood) sent to each job."""
        n = area.size
        units = np.where(
            gen.random((n, 2)) < response, UNITS.index("Response"), UNITS.index("Neighbourhood")
        )
        officers = self.s.pick(gen, (area[:, None] * len(UNITS) + units).ravel()).reshape(n, 2)
        officers[np.arange(2)[None, :] >= sent[:, None]] = NONE
        return officers

    def _logs(self, day: int) -> Iterator[Batch]:
        """STORM logs: a call handler (sometimes an officer) and the officers sent."""
        s = self.s
        midnight, ymd = self._day(day)
        total = int(self._gen(5, day).poisson(LOGS_PER_MEMBER_DAY * len(self.staff)))
        width = max(4, len(str(total)))
        handlers = s.group(HQ, "Control Room")
        for b, lo in enumerate(range(0, total, BATCH)):
            gen = self._gen(6, day, b)
            n = min(BATCH, total - lo)
            area = np.searchsorted(_CUM_AREA, gen.random(n), side="right")
            opener = np.where(gen.random(n) < 0.94, s.pick(gen, np.full(n, handlers)), NONE)
            opener = np.where(opener < 0, s.pick(gen, s.group(area, "Response")), opener)
            opener = np.where(opener < 0, s.anyone(gen, n), opener)
            officers = self._sent(gen, area, _choice(gen, [40, 40, 20], n), 0.7)
            kind = np.full((n, 5), NONE, dtype=np.int64)
            kind[:, 0] = ADDRESS  # where is it?
            more = np.array([1, 2, 2, 3, 4])[gen.integers(0, 5, n)]
            mix = np.array([PERSON, VEHICLE, ADDRESS])[_choice(gen, [50, 35, 15], n * 4)]
            kind[:, 1:] = np.where(np.arange(4)[None, :] < more[:, None], mix.reshape(n, 4), NONE)
            opened = midnight + _between(gen, 0, DAY, n)
            closed = opened + _between(gen, 9 * MINUTE, 9 * HOUR, n)
            yield Batch(
                [f"{self.prefix}SL-{ymd}-{i:0{width}d}" for i in range(lo + 1, lo + n + 1)],
                area,
                np.column_stack([opener, officers]),
                kind,
                self._picks(gen, kind, area),
                _stamps(opened),
                _stamps(closed, closed < self.end),
            )

    def _custody(self, day: int) -> Iterator[Batch]:
        """Custody records: a custody officer, the arresting officers, one detained person."""
        s = self.s
        keepers = s.in_units(("Custody",))
        if keepers.size == 0:
            return
        midnight, ymd = self._day(day)
        total = int(self._gen(7, day).poisson(CUSTODY_PER_MEMBER_DAY * len(self.staff)))
        width = max(3, len(str(total)))
        seq = [0] * (HQ + 1)
        for b, lo in enumerate(range(0, total, BATCH)):
            gen = self._gen(8, day, b)
            n = min(BATCH, total - lo)
            keeper = keepers[gen.integers(0, keepers.size, n)]
            area = np.where(s.area[keeper] == HQ, s.home[keeper], s.area[keeper])
            officers = self._sent(gen, area, _choice(gen, [2, 66, 32], n), 0.75)
            kind = np.full((n, 1), PERSON, dtype=np.int64)
            opened = midnight + _between(gen, 0, DAY, n)
            closed = opened + _between(gen, 4 * HOUR + 20 * MINUTE, 32 * HOUR, n)
            refs = []
            for a in area.tolist():
                seq[a] += 1
                refs.append(f"{self.prefix}CU-{_AREA_CODE[a]}-{ymd}-{seq[a]:0{width}d}")
            yield Batch(
                refs,
                area,
                np.column_stack([keeper, officers]),
                kind,
                self._picks(gen, kind, area),
                _stamps(opened),
                _stamps(closed, closed < self.end),
            )
