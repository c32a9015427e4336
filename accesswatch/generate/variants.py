"""Variants: misuse shaped to stay just under every shipped rule's thresholds.

Off by default: ``accesswatch generate --variants`` adds them, and leaves the
rest of the force as it would be without (the default output is unchanged).
Each is labelled like a scenario under a code of its own, so ``evaluate``
reports, in a block of its own, what the model finds that the rules do not.
A member with an ordinary baseline commits each in the middle of their own
work, and every event is checked as it is planned against ``LIMITS`` (the
shipped pack's thresholds, less one), counting the member's ordinary events:

- V08 slow harvest: people opened with no justifying case, three to six an
  hour for three to six hours, never 15 records in two hours (AW-008);
- V09 enumeration in bursts: runs of 8-12 people in id order from the member's
  own area, 15-40 seconds apart (AW-009 needs 20 in five minutes), the runs
  over two hours apart (AW-008);
- V12 spread export: search-result lists and people's records exported or
  printed five to nine an hour for two to four hours, never 10 in an hour
  (AW-014), across systems;
- V13 out-of-area circle: three people from one other area (AW-015 needs four
  in seven days) opened again and again, 6-10 times in an afternoon, on one
  day (AW-007 needs three days).

Their weak signals stay within ``RISK_BUDGET`` a day (AW-090 alerts at 20).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from .clock import HOUR, MINUTE, SECOND, local_day
from .incidents import Incident, Kit
from .ledger import Event, Ledger
from .model import Force, Staff, Subject
from .queries import query_for

VARIANTS = ("V08", "V09", "V12", "V13")
# The shipped pack's thresholds (rules/default.yaml), less one.
OPENS_2H = 14  # AW-008: 15 records over one or two hours, at the least
PRINTS_1H = 9  # AW-014: 10 prints or exports in an hour
RISK_BUDGET = 15.0  # AW-090 alerts at 20; ordinary work adds a little
RISK_PERSON, RISK_AWAY = 0.5, 1.0  # AW-016 and AW-017
SYSTEMS = ("NICHE", "PND", "ATHENA")  # none names the record on its search line


@dataclass(slots=True)
class Step:
    """One planned access: a record view or print (``s``), or a list export (``s`` None)."""

    t: int
    action: str
    s: Subject | None
    system: str
    search: bool = False


@dataclass
class Draft:
    """A member's opens and prints, ordinary and planned, and the plan's weak signals."""

    m: Staff
    opens: list[int]
    prints: list[int]
    steps: list[Step] = field(default_factory=list)
    risk: dict[int, float] = field(default_factory=dict)  # local day -> weak signals

    def add(self, step: Step, away: bool = False) -> bool:
        """Plan ``step`` if it keeps every limit; False (and nothing planned) if not."""
        t, opened = step.t, step.s is not None
        printed = step.action in ("print", "export")
        if opened and _peak(self.opens, t, 2 * HOUR) > OPENS_2H:
            return False
        if printed and _peak(self.prints, t, HOUR) > PRINTS_1H:
            return False
        signal = (RISK_PERSON + (RISK_AWAY if away else 0.0)) if opened else 0.0
        day = local_day(t)
        if self.risk.get(day, 0.0) + signal > RISK_BUDGET:
            return False
        if opened:
            bisect.insort(self.opens, t)
        if printed:
            bisect.insort(self.prints, t)
        self.risk[day] = self.risk.get(day, 0.0) + signal
        self.steps.append(step)
        return True


def _peak(times: list[int], t: int, span: int) -> int:
    """The most of ``times`` and ``t`` in any window ``span`` long that holds ``t``."""
    near = times[bisect.bisect_left(times, t - span) : bisect.bisect_right(times, t + span)]
    bisect.insort(near, t)
    best = 0
    for i, start in enumerate(near):
        if start > t:
            break
        if start + span >= t:
            best = max(best, bisect.bisect_right(near, start + span) - i)
    return best


def _people(kit: Kit, m: Staff, area: str) -> list[Subject]:
    """Plain people of ``area`` the member has no tie to and has not opened without a case."""
    return [
        s
        for s in kit.force.plain_people[area]
        if s.postcode_key != m.postcode_key
        and s.surname != m.surname
        and not kit.ledger.opened_without_case(m.user_id, s.subject_id)
    ]


def v08_slow_harvest(kit: Kit, d: Draft) -> bool:
    rng, m = kit.rng, d.m
    hours = rng.uniform(3, 6)
    t = kit.time_on_duty(m, int(hours * HOUR))
    if t is None or m.area not in kit.force.plain_people:
        return False
    end, rate = t + int(hours * HOUR), rng.uniform(3, 6)
    people = _people(kit, m, m.area)
    rng.shuffle(people)
    while people and (t := t + int(rng.expovariate(rate) * HOUR)) < end:
        if d.add(Step(t, "view", people[-1], rng.choice(SYSTEMS), rng.random() < 0.3)):
            people.pop()
    return len(d.steps) >= 12


def v09_enumeration_bursts(kit: Kit, d: Draft) -> bool:
    rng, m = kit.rng, d.m
    if m.area not in kit.force.plain_people:
        return False
    people = sorted(_people(kit, m, m.area), key=lambda s: s.subject_id)
    i = rng.randrange(max(1, len(people) - 40))
    starts: list[int] = []
    for _ in range(rng.randint(2, 3)):
        t = kit.time_on_duty(m, 10 * MINUTE)
        if t is None or any(abs(t - s) < 2 * HOUR + 15 * MINUTE for s in starts):
            continue
        starts.append(t)
        system = rng.choice(SYSTEMS)
        for _ in range(rng.randint(8, 12)):
            if i < len(people) and d.add(Step(t, "view", people[i], system)):
                i += 1
            t += rng.randint(15, 40) * SECOND
    return len(starts) >= 2 and len(d.steps) >= 14


def v12_spread_export(kit: Kit, d: Draft) -> bool:
    rng, m = kit.rng, d.m
    hours = rng.uniform(2, 4)
    t = kit.time_on_duty(m, int(hours * HOUR))
    if t is None or m.area not in kit.force.plain_people:
        return False
    end, rate = t + int(hours * HOUR), rng.uniform(5, 9)
    people = _people(kit, m, m.area)
    while (t := t + int(rng.expovariate(rate) * HOUR)) < end:
        record = rng.random() < 0.5
        s = rng.choice(people) if record else None
        d.add(Step(t, rng.choice(("print", "export")), s, rng.choice(SYSTEMS)))
    return len(d.steps) >= 12


def v13_out_of_area_circle(kit: Kit, d: Draft) -> bool:
    rng, m, f = kit.rng, d.m, kit.force
    others = [a for a in f.areas if a != m.area and a in f.plain_people]
    if not others or kit.ledger.out_of_area_opened(m.user_id):
        return False
    span = rng.randint(90, 180) * MINUTE
    t = kit.time_on_duty(m, span)
    if t is None:
        return False
    circle = rng.sample(_people(kit, m, rng.choice(others)), 3)
    times = sorted(rng.randint(t, t + span) for _ in range(rng.randint(6, 10)))
    for k, when in enumerate(times):
        d.add(Step(when, "view", circle[k % 3], rng.choice(SYSTEMS), rng.random() < 0.3), True)
    return len(d.steps) >= 6 and len({s.s.subject_id for s in d.steps if s.s}) == 3


Plan = Callable[[Kit, Draft], bool]
PLANS: dict[str, tuple[Callable[[Kit, Staff], bool], Plan]] = {
    "V08": (lambda kit, m: kit.worker(m), v08_slow_harvest),
    "V09": (lambda kit, m: kit.worker(m), v09_enumeration_bursts),
    "V12": (lambda kit, m: kit.worker(m), v12_spread_export),
    "V13": (lambda kit, m: kit.worker(m) and kit.area_bound(m), v13_out_of_area_circle),
}


def plan_variants(
    rng: random.Random, force: Force, ledger: Ledger, per_variant: int, used: set[str]
) -> list[Incident]:
    """``per_variant`` incidents of each variant, by members not used for a scenario if
    there are enough; each planned in full against the limits before it is written."""
    kit = Kit(rng, force, ledger)
    streams = _streams(ledger.events)
    out: list[Incident] = []
    for code in VARIANTS:
        eligible, plan = PLANS[code]
        pool = [m for m in force.staff if eligible(kit, m)]
        rng.shuffle(pool)
        pool.sort(key=lambda m: m.user_id in used)
        done = 0
        for m in pool:
            if done == per_variant:
                break
            opens, prints = streams.get(m.user_id, ([], []))
            draft = Draft(m, list(opens), list(prints))
            if plan(kit, draft):
                out.append(Incident(code, m.user_id, _write(kit, m, draft.steps)))
                used.add(m.user_id)
                done += 1
        if done < per_variant:
            raise ValueError(f"{code}: only {done} of {per_variant} variants could be placed")
    return out


def _streams(events: list[Event]) -> dict[str, tuple[list[int], list[int]]]:
    """Each member's open and print times, in time order."""
    out: dict[str, tuple[list[int], list[int]]] = {}
    for e in sorted(events):
        opens, prints = out.setdefault(e[2], ([], []))
        if e[7] is not None:
            opens.append(e[0])
        if e[5] in ("print", "export"):
            prints.append(e[0])
    return out


def _write(kit: Kit, m: Staff, steps: list[Step]) -> list[str]:
    rng, ledger, terminal = kit.rng, kit.ledger, kit.terminal(m)
    ids: list[str] = []
    for st in sorted(steps, key=lambda st: st.t):
        s = st.s
        if s is None:  # a list of search results, exported
            query = query_for(rng, rng.choice(kit.force.plain_people[m.area]), st.system)
            ids.append(ledger.misuse(m, st.t, terminal, st.system, st.action, None, None, query,
                                     None, rng.randint(5, 40)))
            continue
        if st.search and st.t - 45 * SECOND >= kit.force.start:
            ids.append(ledger.misuse(m, st.t - rng.randint(5, 45) * SECOND, terminal, st.system,
                                     "search", s.subject_type, None,
                                     query_for(rng, s, st.system), None, rng.randint(1, 8)))
        ids.append(ledger.misuse(m, st.t, terminal, st.system, st.action, s.subject_type,
                                 s.subject_id, None, None))
    return ids
