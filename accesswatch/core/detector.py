"""The detector: events in, alerts out, state explicit.

>>> detector = Detector(load_rules(), ReferenceData())
>>> states: dict[str, UserState] = {}
>>> fired = detector.process_batch(events, states)   # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from accesswatch.contract.events import AccessEvent
from accesswatch.contract.timestamps import format_ts
from accesswatch.core import point, windowed
from accesswatch.core.alerts import Alert, Fired, alert_id, score
from accesswatch.core.context import EventContext
from accesswatch.core.features import Row, observe
from accesswatch.core.firing import Firing
from accesswatch.core.state import Fold, UserState
from accesswatch.reference import ReferenceData, Staff
from accesswatch.rules import types as r
from accesswatch.rules.loader import RulePack, load_rules
from accesswatch.rules.types import seconds

if TYPE_CHECKING:
    from models.anomaly import Verdict

Check = Callable[[Any, EventContext, UserState], Firing | None]
# What a model alert adds to the member's risk score, and a merely odd row.
MODEL_ALERT_RISK = 8.0
MODEL_ODD_RISK = 3.0


class Model(Protocol):
    """What the detector needs of an anomaly model (``models.AnomalyModel``)."""

    name: str
    rule_id: str

    @property
    def version(self) -> str: ...

    def judge(self, rows: Sequence[Row]) -> list[Verdict | None]: ...

    def worth_judging(self, row: Row) -> bool:
        """False only when ``judge`` would give ``row`` no verdict."""
        ...


ACTIONS = ("search", "view", "print", "export", "update")


def _could_match(rule: r.Rule, opened: bool, action: str) -> bool:
    if not opened and isinstance(rule, NEEDS_SUBJECT):
        return False
    if isinstance(rule, r.WindowCount):
        return action in rule.actions and (opened or not rule.opens_only)
    return True


def _at(fired: list[Fired], i: int) -> list[Fired]:
    """Stamp each firing with the position of its event in the batch."""
    for f in fired:
        f.at = i
    return fired


def _position(f: Fired) -> int:
    return f.at


def _never_for(rule: r.Rule, staff: Staff | None) -> bool:
    """True when ``rule`` cannot fire for this member whatever they open.

    Only the directory record decides it: a new record for the member is a
    new object, and the detector's cache of plans per member checks for that.
    """
    if isinstance(rule, r.Account):
        if rule.condition == "unknown":
            return staff is not None
        return staff is None or (
            rule.condition == "inactive_status" and staff.status not in rule.statuses
        )
    if staff is None:
        return isinstance(rule, r.Relationship | r.OutOfArea)
    if isinstance(rule, r.Relationship):
        if rule.relation == "self":
            return not staff.person_id
        return rule.relation in ("family", "neighbour") and not staff.postcode
    return False


def _no_check(rule: Any, ctx: EventContext, st: UserState) -> Firing | None:
    return None


def _state(states: MutableMapping[str, UserState], user_id: str) -> UserState:
    state = states.get(user_id)
    if state is None:
        state = states[user_id] = UserState()
    return state


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
# Plans cached per (member, opened?, action): a bound for a live worker that
# sees members come and go.
MAX_MEMBER_PLANS = 200_000


# Kinds that can only match an event that opened a record: skipped for bare searches.
NEEDS_SUBJECT = (
    r.Relationship,
    r.FlaggedRecord,
    r.Victim,
    r.UnjustifiedAccess,
    r.OutOfArea,
    r.Volume,
    r.RepeatSubject,
)


@dataclass(frozen=True, slots=True)
class _Planned:
    rule: r.Rule
    check: Check
    fold: float
    exempt_users: frozenset[str]
    exempt_roles: frozenset[str]
    exempt_units: frozenset[str]

    def exempts(self, staff: Staff | None) -> bool:
        return staff is not None and (
            staff.user_id in self.exempt_users
            or staff.role in self.exempt_roles
            or staff.unit in self.exempt_units
        )


Plan = tuple[_Planned, ...]


class Detector:
    """Runs a rule pack over events against reference data.

    ``clock`` stamps ``created_at``; by default it is the event time, which
    keeps a backtest reproducible byte for byte.  The live worker passes
    ``time.time``.
    """

    def __init__(
        self,
        rules: RulePack | None = None,
        ref: ReferenceData | None = None,
        *,
        clock: Callable[[], float] | None = None,
        model: Model | None = None,
    ) -> None:
        self.ref = ref if ref is not None else ReferenceData()
        self.clock = clock
        self.model: Model | None = None
        # Feature rows so far: due a score, and of those sent to the model (the rest
        # could not yield a verdict).  Counted for the worker's metrics.
        self.rows_due = 0
        self.rows_judged = 0
        self.set_rules(rules if rules is not None else load_rules())
        self.set_model(model)

    def set_model(self, model: Model | None) -> None:
        """Swap the anomaly model in force (hot reload); None runs rules only."""
        self.model = model
        self._model_rule = (
            None
            if model is None
            else _Planned(
                r.Rule(
                    id=model.rule_id,
                    title="Behaviour unlike this member's own or their peers'",
                    severity="medium",
                    risk=MODEL_ALERT_RISK,
                    fold="12h",
                    tags=["model"],
                ),
                _no_check,
                seconds("12h"),
                frozenset(),
                frozenset(),
                frozenset(),
            )
        )

    def alerting_rules(self) -> list[tuple[str, str]]:
        """(rule id, severity) of each rule in force that can raise an alert, the model's too."""
        out = [(r.id, str(r.severity)) for r in self.pack.active if r.alert]
        if self._model_rule is not None:
            out.append((self._model_rule.rule.id, str(self._model_rule.rule.severity)))
        return out

    def set_rules(self, pack: RulePack) -> None:
        """Swap the rule pack in force (hot reload); state carries over by rule id."""
        plan, risk = [], None
        for rule in pack.active:
            if isinstance(rule, r.Risk):
                risk = risk or rule
                continue
            e = rule.exempt
            plan.append(
                _Planned(
                    rule,
                    KINDS[type(rule)],
                    seconds(rule.fold),
                    frozenset(e.users),
                    frozenset(e.roles),
                    frozenset(e.units),
                )
            )
        self.pack = pack
        # The rules that could match, by (opened a record?, action): most events
        # skip most rules without a call.
        self._plans = {
            (opened, action): tuple(p for p in plan if _could_match(p.rule, opened, action))
            for opened in (True, False)
            for action in ACTIONS
        }
        # ... and of those, the ones this member is neither exempt from nor
        # ruled out of by their directory record, by (user, opened, action).
        self._member_plans: dict[tuple[str, bool, str], tuple[Staff | None, Plan]] = {}
        self._risk = risk
        self._closed_grace = seconds(pack.settings.closed_case_grace)
        self._lateness = seconds(pack.settings.lateness)

    def process_batch(
        self, events: Iterable[AccessEvent], states: MutableMapping[str, UserState]
    ) -> list[Fired]:
        """Process events in order; ``states`` is read and updated per user.

        With a model, every event is folded into the behavioural features;
        the model scores all rows due in the batch in one call, and each
        verdict joins the rules at the event that triggered it: the outcome
        does not depend on where a driver cut its batches.
        """
        out: list[Fired] = []
        ref, grace, lateness, process = self.ref, self._closed_grace, self._lateness, self._process
        if self.model is None:
            for i, event in enumerate(events):
                state = states.get(event.user_id)
                if state is None:
                    state = states[event.user_id] = UserState()
                fired = process(
                    EventContext(event, ref, state.last_t, grace, lateness), state, None
                )
                if fired:
                    out.extend(_at(fired, i))
            return out
        # One pass: a member's event runs the rules at once unless the member has
        # a row the model could give a verdict in this batch; from that event on,
        # their events wait for the batch's verdicts and then run in order.  Only a
        # member's own state carries from event to event, so holding back one
        # member changes nothing for the others.  Most rows cannot yield a verdict
        # (``worth_judging``): their members are not held, and judge never sees them.
        held: set[str] = set()
        waiting: list[tuple[int, EventContext, UserState, int]] = []
        rows: list[Row] = []
        worth_judging = self.model.worth_judging
        due = 0
        for i, event in enumerate(events):
            uid = event.user_id
            state = states.get(uid)
            if state is None:
                state = states[uid] = UserState()
            ctx = EventContext(event, ref, state.last_t, grace, lateness)
            row = observe(state.behaviour, ctx)
            if row is not None:
                due += 1
                if worth_judging(row):
                    held.add(uid)
                    waiting.append((i, ctx, state, len(rows)))
                    rows.append(row)
                    continue
            if held and uid in held:
                waiting.append((i, ctx, state, -1))
            else:
                fired = process(ctx, state, None)
                if fired:
                    out.extend(_at(fired, i))
        self.rows_due += due
        self.rows_judged += len(rows)
        if not waiting:
            return out
        verdicts = self.model.judge(rows)
        late: list[Fired] = []
        for i, ctx, state, k in waiting:
            ctx.prev_t = state.last_t
            fired = process(ctx, state, verdicts[k] if k >= 0 else None)
            if fired:
                late.extend(_at(fired, i))
        if late:
            # Back in event order, as one pass over the batch would give them.
            out = sorted(out + late, key=_position)
        return out

    def feature_rows(
        self, events: Iterable[AccessEvent], states: MutableMapping[str, UserState]
    ) -> list[Row]:
        """The model's input rows for ``events``, updating only behaviour state (training)."""
        rows = []
        for event in events:
            state = _state(states, event.user_id)
            ctx = EventContext(event, self.ref, 0.0, self._closed_grace, self._lateness)
            row = observe(state.behaviour, ctx)
            if row is not None:
                rows.append(row)
        return rows

    def process(self, event: AccessEvent, state: UserState) -> list[Fired]:
        """One event (tests and tools); drivers should use ``process_batch``."""
        return self.process_batch([event], {event.user_id: state})

    def _member_plan(self, ctx: EventContext) -> Plan:
        """The rules to run for this event's member, kind of event and action."""
        key = (ctx.event.user_id, ctx.sid is not None, ctx.event.action)
        cached = self._member_plans.get(key)
        staff = ctx.staff
        if cached is not None and cached[0] is staff:
            return cached[1]
        plan = tuple(
            p
            for p in self._plans[key[1], key[2]]
            if not p.exempts(staff) and not _never_for(p.rule, staff)
        )
        if len(self._member_plans) >= MAX_MEMBER_PLANS:
            self._member_plans.clear()
        self._member_plans[key] = (staff, plan)
        return plan

    def _process(self, ctx: EventContext, state: UserState, verdict: Verdict | None) -> list[Fired]:
        event = ctx.event
        fired: list[Fired] = []
        points, signals = 0.0, []
        for p in self._member_plan(ctx):
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
        if verdict is not None and (verdict.alert or verdict.odd):
            model_firing = Firing(
                [event.event_id],
                verdict.reasons
                or [f"behaviour scored {verdict.anomaly_score:.2f} by the anomaly model"],
                [ctx.sid] if ctx.sid else [],
            )
            if verdict.alert and self._model_rule is not None:
                result = self._fold(self._model_rule, model_firing, ctx, state)
                result.alert.model = self._model_section(verdict)
                if not result.folded:
                    points += MODEL_ALERT_RISK
                    signals.append(f"{self._model_rule.rule.id}: {model_firing.reasons[0]}")
                fired.append(result)
            elif ctx.t >= state.behaviour.odd_until:
                state.behaviour.odd_until = ctx.t + 3600
                points += MODEL_ODD_RISK
                signals.append(f"anomaly model: {model_firing.reasons[0]}")
        if event.t > state.last_t:
            state.last_t = event.t
        if points and self._risk is not None:
            risk_alert = self._add_risk(self._risk, points, signals, ctx, state)
            if risk_alert is not None:
                fired.append(risk_alert)
        return fired

    def _model_section(self, verdict: Verdict) -> dict[str, Any]:
        assert self.model is not None
        return {
            "name": self.model.name,
            "version": self.model.version,
            "anomaly_score": round(verdict.anomaly_score, 4),
            "top_features": verdict.top,
        }

    def _fold(self, p: _Planned, firing: Firing, ctx: EventContext, st: UserState) -> Fired:
        rule, ev, t = p.rule, ctx.event, ctx.t
        fold = st.folds.get(rule.id)
        if fold is not None and fold.first <= t < fold.first + p.fold:
            fold.count += 1
            fold.last = max(fold.last, t)
            return Fired(
                self._alert(
                    rule,
                    fold.alert_id,
                    ctx,
                    [ev.event_id],
                    firing.reasons,
                    firing.subject_ids[:1],
                    t,
                    1,
                ),
                folded=True,
            )
        aid = alert_id(rule.id, ev.user_id, ev.event_id)
        first = min(firing.first_t or t, t)
        st.folds[rule.id] = Fold(aid, t, t, firing.count)
        return Fired(
            self._alert(
                rule,
                aid,
                ctx,
                firing.event_ids,
                firing.reasons,
                firing.subject_ids,
                first,
                firing.count,
            ),
            folded=False,
        )

    def _add_risk(
        self, rule: r.Risk, points: float, signals: list[str], ctx: EventContext, st: UserState
    ) -> Fired | None:
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
        reasons = [
            f"risk score {st.risk:.0f} passed {rule.threshold:g} from "
            f"{len(st.risk_evidence)} accesses that each looked a little wrong",
            *st.risk_reasons,
        ]
        return Fired(
            self._alert(
                rule, aid, ctx, list(st.risk_evidence), reasons, [], t, len(st.risk_evidence)
            ),
            folded=False,
        )

    def _alert(
        self,
        rule: r.Rule,
        aid: str,
        ctx: EventContext,
        event_ids: list[str],
        reasons: list[str],
        subject_ids: list[str],
        first: float,
        count: int,
    ) -> Alert:
        now = self.clock() if self.clock is not None else ctx.t
        return Alert(
            alert_id=aid,
            created_at=format_ts(now),
            user_id=ctx.event.user_id,
            rule_id=rule.id,
            title=rule.title,
            severity=rule.severity,
            score=score(rule.severity, count),
            event_ids=event_ids,
            reasons=reasons,
            first_seen=format_ts(first),
            last_seen=format_ts(ctx.t),
            count=count,
            subject_ids=subject_ids,
        )
