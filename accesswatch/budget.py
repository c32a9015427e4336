"""An alert budget: the lowest threshold settings that keep a pack within N alerts a day.

Each alerting rule kind has one knob that makes it fire less as it rises
(``KNOBS``); the other kinds are fixed.  A knob climbs a ladder: its value now,
then ×1.25, ×1.5, ×2 and ×3 (whole numbers rounded up, durations to minutes).

Every candidate is the whole pack run over the same history (read once), as it
would publish: rules interact (risk adds up across them, and an alert folded
into another stands on its own once that one is gone), so alerts per rule
cannot be added up from runs of one rule at a time.  The search:

1. the pack as it is: within the budget, nothing changes (one run);
2. every knob raised together: the lowest shared rung within the budget, by a
   binary search over the ladder; if even ×3 is over, no setting is within it;
3. from there, each knob back to its value in force while the total stays
   within the budget, the knob that takes away the fewest alerts first; then
   the knobs still raised come down a rung at a time while the budget allows.

So the proposal is a run within the budget, each of its knobs brought down as
far as the budget allowed when it was tried (``MAX_RUNS`` backtests at most).
"""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from accesswatch.budget_report import Budget, Row
from accesswatch.core.alerts import Alert
from accesswatch.errors import AccessWatchError
from accesswatch.rules import parse_rules
from accesswatch.rules.edit import set_fields
from accesswatch.rules.loader import RulePack
from accesswatch.rules.types import Rule, seconds
from accesswatch.whatif import History

# The field that makes each kind fire less as it rises; the first a rule has is used.
KNOBS: dict[str, tuple[str, ...]] = {
    "window_count": ("threshold",),
    "volume": ("ratio", "min_count"),
    "repeat_subject": ("min_days",),
    "out_of_area": ("min_distinct",),
    "off_duty": ("grace",),
    "risk": ("threshold",),
}
STEPS = (1.25, 1.5, 2.0, 3.0)  # the ladder above the value in force
MAX_RUNS = 12
State = tuple[int, ...]  # a rung per knob, in ``Search.knobs`` order


@dataclass(frozen=True)
class Knob:
    rule_id: str
    field: str
    ladder: tuple[Any, ...]  # values, the one in force first

    def text(self, rung: int) -> str:
        """The value at ``rung`` as the pack would say it."""
        value = self.ladder[rung]
        return f"{value:g}" if isinstance(value, float) else str(value)


def knob_of(rule: Rule) -> Knob | None:
    """The rule's knob and its ladder; None for a kind without one, or a value that
    cannot rise (0)."""
    kind = rule.__struct_config__.tag
    name = next((f for f in KNOBS.get(str(kind), ()) if hasattr(rule, f)), None)
    if name is None or not rule.alert:
        return None
    value = getattr(rule, name)
    ladder = [value]
    for step in STEPS:
        if isinstance(value, str):  # a duration: whole minutes
            nxt: Any = _duration(math.ceil(seconds(value) * step / 60))
        elif isinstance(value, bool) or not isinstance(value, int | float):
            return None
        elif isinstance(value, int):
            nxt = max(math.ceil(value * step - 1e-9), ladder[-1] + 1)
        else:
            nxt = round(value * step, 2)
        ladder.append(nxt)
    rising = all(_size(b) > _size(a) for a, b in itertools.pairwise(ladder))
    return Knob(rule.id, name, tuple(ladder)) if rising else None


def _duration(minutes: int) -> str:
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def _size(value: Any) -> float:
    return seconds(value) if isinstance(value, str) else float(value)


@dataclass
class Run:
    """One backtest of the pack at one setting of the knobs."""

    state: State
    per_rule: Counter[str]
    alerts: dict[str, Alert]

    @property
    def total(self) -> int:
        return sum(self.per_rule.values())


class Search:
    """The ladders of one pack over one history, and the runs made so far."""

    def __init__(
        self,
        history: History,
        text: str,
        base: RulePack,
        per_day: float,
        say: Callable[[str], None],
        today: date | None,
    ) -> None:
        self.history, self.text, self.base, self.today = history, text, base, today
        self.per_day, self.limit = per_day, per_day * history.days  # the latter: in all
        self.say = say
        self.all_knobs = [k for k in map(knob_of, base.active) if k is not None]
        # The knobs searched: those of rules that raise alerts now (set by ``propose``).
        self.knobs = self.all_knobs
        self.top = len(STEPS)
        self.runs: dict[State, Run] = {}
        self.events = self.rejected = 0

    def changes(self, state: State) -> dict[str, dict[str, str]]:
        return {
            k.rule_id: {k.field: k.text(r)} for k, r in zip(self.knobs, state, strict=True) if r
        }

    def pack(self, state: State) -> tuple[str, RulePack]:
        """The pack's text with the knobs at ``state``, and the pack it loads to."""
        changes = self.changes(state)
        if not changes:
            return self.text, self.base
        text = set_fields(self.text, changes)
        pack = parse_rules(text, self.base.source, today=self.today)
        got = {r.id: r for r in pack.rules}
        for k, rung in zip(self.knobs, state, strict=True):
            if _size(getattr(got[k.rule_id], k.field)) != _size(k.ladder[rung]):
                raise AccessWatchError(
                    f"{self.base.source}: setting {k.rule_id} {k.field} in the file changed "
                    "more than that rule (a YAML alias?); give the rule its own value"
                )
        return text, pack

    def run(self, state: State, why: str) -> Run:
        if state in self.runs:
            return self.runs[state]
        result = self.history.run(self.pack(state)[1])
        per_rule = Counter(a.rule_id for a in result.alerts.values())
        run = self.runs[state] = Run(state, per_rule, result.alerts)
        self.events, self.rejected = result.events, result.rejected
        self.say(
            f"run {len(self.runs)} of at most {MAX_RUNS}, {why}: "
            f"{run.total / self.history.days:.2f} alerts a day ({result.seconds:.1f} s)"
        )
        return run

    def propose(self) -> Run:
        """A run within the budget, raised as little as the runs allow.

        AccessWatchError when even every knob at the top of its ladder is over it.
        """
        now = self.run(tuple(0 for _ in self.knobs), "the settings in force")
        # A knob whose rule raises nothing has nothing to take away: it stays.
        self.knobs = [k for k in self.all_knobs if now.per_rule[k.rule_id]]
        now.state = tuple(0 for _ in self.knobs)
        self.runs = {now.state: now}
        if now.total <= self.limit:
            return now
        if not self.knobs:
            raise self.impossible(now)
        return self.put_back(self.together())

    def together(self) -> Run:
        """The lowest rung every knob can share within the budget (a binary search)."""
        low, high, found = 1, self.top, None
        while low <= high:
            rung = (low + high) // 2
            run = self.run((rung,) * len(self.knobs), f"every knob ×{STEPS[rung - 1]:g}")
            if run.total <= self.limit:
                found, high = run, rung - 1
            else:
                low = rung + 1
        if found is None:
            raise self.impossible(self.runs[(self.top,) * len(self.knobs)])
        return found

    def put_back(self, run: Run) -> Run:
        """Put each knob back to its value in force where the budget allows, the one that
        takes away the fewest alerts first; then lower the rest a rung at a time."""
        now = self.runs[tuple(0 for _ in self.knobs)]
        order = sorted(
            range(len(self.knobs)),
            key=lambda i: (
                now.per_rule[self.knobs[i].rule_id] - run.per_rule[self.knobs[i].rule_id],
                i,
            ),
        )
        for i in order:
            if run.state[i]:
                run = self.lowered(run, i, 0) or run
        # A knob that could not go back may still come down a rung, until it cannot: with
        # the others only coming down too, it will not later.
        stuck = {i for i in order if run.state[i] < 2}
        while len(stuck) < len(order):
            for i in order:
                if i not in stuck:
                    lower = self.lowered(run, i, run.state[i] - 1)
                    if lower is None or lower.state[i] < 2:
                        stuck.add(i)
                    run = lower or run
        return run

    def lowered(self, run: Run, i: int, rung: int) -> Run | None:
        """``run`` with knob ``i`` at ``rung``, if that is within the budget and runs remain."""
        state = (*run.state[:i], rung, *run.state[i + 1 :])
        tried = self.runs.get(state)
        if tried is None:
            if len(self.runs) >= MAX_RUNS:
                return None
            knob = self.knobs[i]
            tried = self.run(state, f"{knob.rule_id} {knob.field} down to {knob.text(rung)}")
        return tried if tried.total <= self.limit else None

    def impossible(self, run: Run) -> AccessWatchError:
        days = self.history.days
        knobbed = {k.rule_id for k in self.knobs}
        fixed = sorted(
            ((n, rid) for rid, n in run.per_rule.items() if rid not in knobbed), reverse=True
        )
        where = "with every knob at the top of its ladder (×3) " if self.knobs else ""
        most = ", ".join(f"{rid} {n / days:.2f}" for n, rid in fixed[:3])
        fixed_part = (
            (f", {sum(n for n, _ in fixed) / days:.2f} of them from rules without a knob ({most})")
            if fixed
            else ""
        )
        return AccessWatchError(
            f"no settings keep this pack within {self.per_day:g} alerts a day: "
            f"{where}it raises {run.total / days:.2f} a day{fixed_part}; raise --per-day or "
            "change those rules"
        )


def run_budget(
    history: History,
    text: str,
    source: str,
    per_day: float,
    *,
    labels: dict[str, Any] | None = None,
    today: date | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> Budget:
    """The lowest settings of ``text``'s knobs within ``per_day`` alerts a day on ``history``.

    ``labels`` (``accesswatch generate``'s) adds each scenario's recall now and then.
    """
    started = time.perf_counter()
    base = parse_rules(text, source, today=today)
    search = Search(history, text, base, per_day, say, today)
    chosen = search.propose()
    now = search.runs[tuple(0 for _ in search.knobs)]
    days = history.days
    knobs = {k.rule_id: (k, 0) for k in search.all_knobs}
    knobs.update({k.rule_id: (k, r) for k, r in zip(search.knobs, chosen.state, strict=True)})
    rows = []
    ids = [r.id for r in base.active if r.alert]
    for rule_id in ids + sorted((set(now.per_rule) | set(chosen.per_rule)) - set(ids)):
        rule = next((r for r in base.active if r.id == rule_id), None)
        knob, rung = knobs.get(rule_id, (None, 0))
        rows.append(
            Row(
                rule_id,
                str(rule.__struct_config__.tag) if rule is not None else "model",
                knob.field if knob else None,
                knob.text(0) if knob else None,
                knob.text(rung) if knob else None,
                now.per_rule[rule_id] / days,
                chosen.per_rule[rule_id] / days,
            )
        )
    budget = Budget(
        per_day,
        base,
        rows,
        search.changes(chosen.state),
        search.pack(chosen.state)[0],
        search.events,
        search.rejected,
        history.staff,
        days,
        len(search.runs),
        time.perf_counter() - started,
    )
    if labels is not None:
        budget.add_recall(labels, now.alerts, chosen.alerts)
    return budget
