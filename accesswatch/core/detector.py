"""The detector: events in, alerts out, state explicit.

>>> detector = Detector(load_rules(), ReferenceData())
>>> states: dict[str, UserState] = {}
>>> fired = detector.process_batch(events, states)   # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from accesswatch.contract.events import AccessEvent
from accesswatch.contract.timestamps import format_ts
from accesswatch.core import point, windowed
from accesswatch.core.alerts import Alert, Fired, alert_id, score
from accesswatch.core.context import EventContext
from accesswatch.core.firing import Firing
from accesswatch.core.state import Fold, UserState
from accesswatch.reference import ReferenceData, Staff
from accesswatch.rules import types as r
from accesswatch.rules.loader import RulePack, load_rules
from accesswatch.rules.types import seconds

Check = Callable[[Any, EventContext, UserState], Firing | None]

KINDS: dict[type[r.Rule], Check] = {
    r.Relationship: point.relationship,
    r.FlaggedRecord: point.flagged_record,
    r.Victim: point.victim,
    r.UnjustifiedAccess: point.unjustified_access,
    r.OffDuty: point.off_duty,
    r.Account: point.account,
    r.WindowCount: windowed.window_count,
    r.OutOfArea: windowed.out_of_area,
    r.Volume: windowed.volume,
    r.RepeatSubject: windowed.repeat_subject,
}
MAX_RISK_EVIDENCE = 30


# Kinds that can only match an event that opened a record: skipped for bare searches.
NEEDS_SUBJECT = (r.Relationship, r.FlaggedRecord, r.Victim, r.UnjustifiedAccess, r.OutOfArea,
                 r.Volume, r.RepeatSubject)


@dataclass(frozen=True, slots=True)
class _Planned:
    rule: r.Rule
    check: Check
    fold: float
    exempt_users: frozenset[str]
    exempt_roles: frozenset[str]
    exempt_units: frozenset[str]

    def exempts(self, staff: Staff | None) -> bool:
        return staff is not None and (staff.user_id in self.exempt_users
                                      or staff.role in self.exempt_roles
                                      or staff.unit in self.exempt_units)


class Detector:
    """Runs a rule pack over events against reference data.

    ``clock`` stamps ``created_at``; by default it is the event time, which
    keeps a backtest reproducible byte for byte.  The live worker passes
    ``time.time``.
    """

    def __init__(self, rules: RulePack | None = None, ref: ReferenceData | None = None, *,
                 clock: Callable[[], float] | None = None) -> None:
        self.ref = ref if ref is not None else ReferenceData()
        self.clock = clock
        self.set_rules(rules if rules is not None else load_rules())

    def set_rules(self, pack: RulePack) -> None:
        """Swap the rule pack in force (hot reload); state carries over by rule id."""
        plan, risk = [], None
        for rule in pack.active:
            if isinstance(rule, r.Risk):
                risk = risk or rule
                continue
            e = rule.exempt
            plan.append(_Planned(rule, KINDS[type(rule)], seconds(rule.fold),
                                 frozenset(e.users), frozenset(e.roles), frozenset(e.units)))
        self.pack = pack
        self._plan = tuple(plan)
        self._plan_bare = tuple(p for p in plan if not isinstance(p.rule, NEEDS_SUBJECT))
        self._risk = risk
        self._closed_grace = seconds(pack.settings.closed_case_grace)
        self._lateness = seconds(pack.settings.lateness)

    def process_batch(self, events: Iterable[AccessEvent],
                      states: MutableMapping[str, UserState]) -> list[Fired]:
        """Process events in order; ``states`` is read and updated per user."""
        out: list[Fired] = []
        for event in events:
            state = states.get(event.user_id)
            if state is None:
                state = states[event.user_id] = UserState()
            out.extend(self.process(event, state))
        return out

    def process(self, event: AccessEvent, state: UserState) -> list[Fired]:
        ctx = EventContext(event, self.ref, state.last_t, self._closed_grace, self._lateness)
        staff = ctx.staff
        fired: list[Fired] = []
        points, signals = 0.0, []
        for p in self._plan if ctx.sid is not None else self._plan_bare:
            if (p.exempt_users or p.exempt_roles or p.exempt_units) and p.exempts(staff):
                continue
            firing = p.check(p.rule, ctx, state)
            if firing is None:
                continue
            if not p.rule.alert:
                points += p.rule.risk
                signals.append(firing.reasons[0])
                continue
            result = self._fold(p, firing, ctx, state)
            if not result.folded:
                points += p.rule.risk
                signals.append(f"{p.rule.id}: {firing.reasons[0]}")
            fired.append(result)
        if event.t > state.last_t:
            state.last_t = event.t
        if points and self._risk is not None:
            risk_alert = self._add_risk(self._risk, points, signals, ctx, state)
            if risk_alert is not None:
                fired.append(risk_alert)
        return fired

    def _fold(self, p: _Planned, firing: Firing, ctx: EventContext, st: UserState) -> Fired:
        rule, ev, t = p.rule, ctx.event, ctx.t
        fold = st.folds.get(rule.id)
        if fold is not None and fold.first <= t < fold.first + p.fold:
            fold.count += 1
            fold.last = max(fold.last, t)
            return Fired(self._alert(rule, fold.alert_id, ctx, [ev.event_id], firing.reasons,
                                     firing.subject_ids[:1], t, 1), folded=True)
        aid = alert_id(rule.id, ev.user_id, ev.event_id)
        first = min(firing.first_t or t, t)
        st.folds[rule.id] = Fold(aid, t, t, firing.count)
        return Fired(self._alert(rule, aid, ctx, firing.event_ids, firing.reasons,
                                 firing.subject_ids, first, firing.count), folded=False)

    def _add_risk(self, rule: r.Risk, points: float, signals: list[str], ctx: EventContext,
                  st: UserState) -> Fired | None:
        """Weak signals add up: a decaying score that alerts when it crosses the threshold."""
        t = ctx.t
        if st.risk_t and t > st.risk_t:
            st.risk *= math.exp(-math.log(2) * (t - st.risk_t) / seconds(rule.half_life))
        st.risk_t = max(st.risk_t, t)
        if not st.risk_armed and st.risk < rule.threshold * rule.rearm_below:
            st.risk_armed = True
            st.risk_evidence.clear()
            st.risk_reasons.clear()
        st.risk += points
        st.risk_evidence = [*st.risk_evidence, ctx.event.event_id][-MAX_RISK_EVIDENCE:]
        for s in signals:
            if s not in st.risk_reasons:
                st.risk_reasons = [*st.risk_reasons, s][-5:]
        if not st.risk_armed or st.risk < rule.threshold:
            return None
        st.risk_armed = False
        aid = alert_id(rule.id, ctx.event.user_id, ctx.event.event_id)
        reasons = [f"risk score {st.risk:.0f} passed {rule.threshold:g} from "
                   f"{len(st.risk_evidence)} accesses that each looked a little wrong",
                   *st.risk_reasons]
        return Fired(self._alert(rule, aid, ctx, list(st.risk_evidence), reasons,
                                 [], t, len(st.risk_evidence)), folded=False)

    def _alert(self, rule: r.Rule, aid: str, ctx: EventContext, event_ids: list[str],
               reasons: list[str], subject_ids: list[str], first: float, count: int) -> Alert:
        now = self.clock() if self.clock is not None else ctx.t
        return Alert(
            alert_id=aid, created_at=format_ts(now), user_id=ctx.event.user_id,
            rule_id=rule.id, title=rule.title, severity=rule.severity,
            score=score(rule.severity, count), event_ids=event_ids, reasons=reasons,
            first_seen=format_ts(first), last_seen=format_ts(ctx.t), count=count,
            subject_ids=subject_ids,
        )
