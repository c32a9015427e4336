"""The detector: events in, alerts out, state explicit.

Events go through the member's timeline first (``core/timeline.py``): each
member's events are judged in event time whatever order they arrive in, and a
repeat changes nothing.  An alert is a living record: one per rule, member and
period of local time (the rule's ``fold``), holding all its evidence; each
batch reports the alerts whose content changed.

>>> detector = Detector(load_rules(), ReferenceData())
>>> members: dict[str, Member] = {}
>>> outcome = detector.process_batch(events, members)   # doctest: +SKIP
>>> outcome.changed                                      # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from accesswatch.contract.events import AccessEvent
from accesswatch.contract.timestamps import format_ts, parse_ts
from accesswatch.core import point, windowed
from accesswatch.core.alerts import (
    MAX_EVIDENCE,
    Alert,
    alert_id,
    digest,
    period,
    record,
    score,
)
from accesswatch.core.context import EventContext
from accesswatch.core.features import Row, observe
from accesswatch.core.firing import Firing
from accesswatch.core.state import Member, Open, Published, UserState
from accesswatch.core.timeline import Run, Timeline
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
    """What the detector needs of an anomaly model (``models.AnomalyModel``).

    A verdict's ``evidence`` and ``subject_ids`` come from its row's marks (the
    doubtful events that drove the row, none later than its event); an alert cites them.
    """

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
        return rule.relation in ("family", "neighbour") and not staff.postcode_key
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


@dataclass(slots=True)
class Outcome:
    """What one batch did: the alerts to (re)publish and the events refused."""

    # Alerts whose content differs from what was last published, with all their
    # evidence so far (``created_at`` set, ``version`` left to the publisher).
    changed: list[Alert] = field(default_factory=list)
    too_late: list[int] = field(default_factory=list)  # positions of events refused
    repeats: list[int] = field(default_factory=list)  # positions of events seen before
    # Published alerts a late event showed time order never raises (rare: a late
    # event moved a firing into another period); the publisher says so.
    withdrawn: list[str] = field(default_factory=list)
    rewound: int = 0  # members put back for a late event
    replayed: int = 0  # events judged in those members' runs (the late ones and after)


class Detector:
    """Runs a rule pack over events against reference data.

    ``clock`` stamps ``created_at``; by default it is the event time of the
    alert's first report, which keeps a backtest reproducible byte for byte.
    The live worker passes ``time.time``.
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
            else _planned(
                r.Rule(
                    id=model.rule_id,
                    title="Unjustified work far beyond their peers' (anomaly model)",
                    severity="medium",
                    risk=MODEL_ALERT_RISK,
                    fold="24h",
                    tags=["model"],
                ),
                _no_check,
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
        # Most serious first: when several rules fire on one event, the first opens
        # the episode's alert and the others join it.
        for rule in sorted(pack.active, key=lambda rule: -_RANK[rule.severity]):
            if isinstance(rule, r.Risk):
                risk = risk or rule
                continue
            plan.append(_planned(rule, KINDS[type(rule)]))
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
        self._risk_plan = _planned(risk, _no_check) if risk is not None else None
        self._closed_grace = seconds(pack.settings.closed_case_grace)
        self.horizon = seconds(pack.settings.horizon)
        self._zone = pack.settings.timezone
        self._episode_gap = seconds(pack.settings.episode_gap)
        self._join = pack.settings.one_alert_per_incident
        timeline = getattr(self, "timeline", None)
        if timeline is None:
            self.timeline = Timeline(self.horizon)
        else:  # hot reload: the snapshots stay good, only the horizon may change
            timeline.horizon = self.horizon

    def process_batch(
        self, events: Iterable[AccessEvent], members: MutableMapping[str, Member]
    ) -> Outcome:
        """Judge a batch; ``members`` is read and updated per user.

        Each member's events are judged in event time (late ones rewind the
        member, ``core/timeline.py``).  With a model, every event is folded into
        the behavioural features; the model scores all rows due in the batch in
        one call, and each verdict joins the rules at the event that triggered
        it: the outcome does not depend on where a driver cut its batches.
        """
        admitted = self.timeline.admit(events, members)
        out = Outcome(too_late=admitted.too_late, repeats=admitted.repeats)
        touched: dict[str, set[str]] = {}
        self._touched = touched
        work = []
        for run in admitted.runs:
            touched[run.user_id] = set()
            if run.rewound_to is not None:
                out.rewound += 1
                out.replayed += len(run.events)
            member = run.member
            for event in run.events:
                work.append((event, member))
        if self.model is None:
            self._rules_only(work)
        else:
            self._with_model(work)
        for run in admitted.runs:
            self._report(run, touched[run.user_id], out)
            self.timeline.settle(run)
        return out

    def _rules_only(self, work: list[tuple[AccessEvent, Member]]) -> None:
        ref, grace, process = self.ref, self._closed_grace, self._process
        for event, state in work:
            process(EventContext(event, ref, state.last_t, grace), state, None)

    def _with_model(self, work: list[tuple[AccessEvent, Member]]) -> None:
        # One pass: a member's event runs the rules at once unless the member has
        # a row the model could give a verdict in this batch; from that event on,
        # their events wait for the batch's verdicts and then run in order.  Only a
        # member's own state carries from event to event, so holding back one
        # member changes nothing for the others.  Most rows cannot yield a verdict
        # (``worth_judging``): their members are not held, and judge never sees them.
        assert self.model is not None
        ref, grace, process = self.ref, self._closed_grace, self._process
        held: set[str] = set()
        waiting: list[tuple[EventContext, Member, int]] = []
        rows: list[Row] = []
        worth_judging = self.model.worth_judging
        due = 0
        for event, state in work:
            uid = event.user_id
            ctx = EventContext(event, ref, state.last_t, grace)
            row = observe(state.behaviour, ctx)
            if row is not None:
                due += 1
                if worth_judging(row):
                    held.add(uid)
                    waiting.append((ctx, state, len(rows)))
                    rows.append(row)
                    continue
            if held and uid in held:
                waiting.append((ctx, state, -1))
            else:
                process(ctx, state, None)
        self.rows_due += due
        self.rows_judged += len(rows)
        if not waiting:
            return
        verdicts = self.model.judge(rows)
        for ctx, state, k in waiting:
            ctx.prev_t = state.last_t
            process(ctx, state, verdicts[k] if k >= 0 else None)

    def _report(self, run: Run, touched: set[str], out: Outcome) -> None:
        """Report the member's alerts whose content changed; let go of the final ones."""
        member = run.member
        cutoff = member.newest - self.horizon
        alerts, published = member.alerts, member.published
        # After a rewind every alert may have changed; in order, only those fired.
        rewound = run.rewound_to is not None
        for aid in list(alerts) if rewound else touched:
            opened = alerts.get(aid)
            if opened is None:
                continue
            alert = opened.alert
            pub = published.get(aid)
            if pub is None:
                at = self.clock() if self.clock is not None else record_time(alert)
                pub = published[aid] = Published(0, 0, format_ts(at), opened.end)
            content = digest(alert)
            if pub.reported != content:
                pub.reported = content
                out.changed.append(record(alert, pub.created_at))
        if rewound:
            for aid, pub in list(published.items()):
                if aid not in alerts and pub.end >= cutoff:
                    del published[aid]
                    out.withdrawn.append(aid)
        # Past the horizon an alert can gain no evidence: it leaves the state.  Its
        # record of what was reported stays while a snapshot could still bring it
        # back (a snapshot holds alerts up to the horizon behind its own time).
        # (Most members have none of these: each is looked at only when there is one.)
        if alerts:
            for aid in [a for a, o in alerts.items() if o.end < cutoff]:
                del alerts[aid]
        joined = member.joined
        if joined:
            for aid in [a for a, host in joined.items() if host not in alerts]:
                del joined[aid]
        if published and member.base_key is not None:
            gone = member.base_key[0] - self.horizon
            for aid in [a for a, p in published.items() if p.end < gone]:
                del published[aid]

    def feature_rows(
        self, events: Iterable[AccessEvent], states: MutableMapping[str, UserState]
    ) -> list[Row]:
        """The model's input rows for ``events`` in time order, updating only behaviour
        state (training)."""
        rows = []
        for event in events:
            state = _state(states, event.user_id)
            ctx = EventContext(event, self.ref, 0.0, self._closed_grace)
            row = observe(state.behaviour, ctx)
            if row is not None:
                rows.append(row)
        return rows

    def process(self, event: AccessEvent, member: Member) -> Outcome:
        """One event (tests and tools); drivers should use ``process_batch``."""
        return self.process_batch([event], {event.user_id: member})

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

    def _process(self, ctx: EventContext, state: UserState, verdict: Verdict | None) -> None:
        event = ctx.event
        points, signals = 0.0, []
        for p in self._member_plan(ctx):
            firing = p.check(p.rule, ctx, state)
            if firing is None:
                continue
            if not p.rule.alert:
                points += p.rule.risk
                signals.append(firing.reasons[0])
                continue
            if self._fold(p, firing, ctx, state)[1]:
                points += p.rule.risk
                signals.append(f"{p.rule.id}: {firing.reasons[0]}")
        if verdict is not None and (verdict.alert or verdict.odd):
            # The evidence is what drove the row: the window's doubtful opens and
            # prints up to this event (``features.Row.marks``), never a later event.
            model_firing = Firing(
                verdict.evidence or [(ctx.t, event.event_id)],
                verdict.reasons
                or [f"behaviour scored {verdict.anomaly_score:.2f} by the anomaly model"],
                verdict.subject_ids or ([ctx.sid] if ctx.sid else []),
            )
            if verdict.alert and self._model_rule is not None:
                opened, new = self._fold(self._model_rule, model_firing, ctx, state)
                opened.alert.model = self._model_section(verdict)
                if new:
                    points += MODEL_ALERT_RISK
                    signals.append(f"{self._model_rule.rule.id}: {model_firing.reasons[0]}")
            elif ctx.t >= state.behaviour.odd_until:
                state.behaviour.odd_until = ctx.t + 3600
                points += MODEL_ODD_RISK
                signals.append(f"anomaly model: {model_firing.reasons[0]}")
        if event.t > state.last_t:
            state.last_t = event.t
        if points and self._risk is not None:
            self._add_risk(self._risk, points, signals, ctx, state)

    def _model_section(self, verdict: Verdict) -> dict[str, Any]:
        assert self.model is not None
        return {
            "name": self.model.name,
            "version": self.model.version,
            "anomaly_score": round(verdict.anomaly_score, 4),
            "top_features": verdict.top,
        }

    def _fold(
        self, p: _Planned, firing: Firing, ctx: EventContext, st: UserState
    ) -> tuple[Open, bool]:
        """Fold a firing into its alert: that alert, and whether the rule is new to it.

        A rule's firings in one period fold into one alert.  A firing with no
        alert yet whose evidence another open alert of the member already holds
        joins that alert instead (one incident, one alert, every reason on it),
        and so do the rule's later firings in that period.
        """
        rule, t, uid = p.rule, ctx.t, ctx.event.user_id
        start, end = period(t, p.fold, self._zone)
        aid = alert_id(rule.id, uid, start)
        opened = st.alerts.get(aid)
        new = False
        if opened is None:
            opened = self._host(aid, firing, st, t) if self._join else None
            if opened is None:
                opened = st.alerts[aid] = _opened(aid, uid, rule, firing, t, end)
                self._touched[uid].add(aid)
                return opened, True
            new = st.joined.get(aid) != opened.alert.alert_id
            st.joined[aid] = opened.alert.alert_id
        self._touched[uid].add(opened.alert.alert_id)
        _grow(opened, rule, firing, t)
        return opened, new

    def _host(self, aid: str, firing: Firing, st: UserState, t: float) -> Open | None:
        """The open alert this firing joins instead of opening ``aid``: the one its
        rule joined earlier in the period, else one of the same episode.  Only alerts
        whose period holds ``t`` are candidates: which of the older ones are still
        kept depends on delivery order."""
        host = st.alerts.get(st.joined.get(aid, ""))
        if host is not None and host.end >= t:
            return host
        return _sharing(firing, st, self._episode_gap, t)

    def _add_risk(
        self, rule: r.Risk, points: float, signals: list[str], ctx: EventContext, st: UserState
    ) -> None:
        """Weak signals add up: a decaying score that alerts when it crosses the threshold.

        It alerts only on what it adds: when most of the accesses behind the
        score are already evidence of the member's other alerts, the score and
        its reasons go onto the alert holding most of them; one access alone
        never makes a risk alert.
        """
        t = ctx.t
        if st.risk_t and t > st.risk_t:
            st.risk *= math.exp(-math.log(2) * (t - st.risk_t) / seconds(rule.half_life))
        st.risk_t = max(st.risk_t, t)
        if not st.risk_armed and st.risk < rule.threshold * rule.rearm_below:
            st.risk_armed = True
            st.risk_evidence.clear()
            st.risk_reasons.clear()
        st.risk += points
        evidence = (t, ctx.event.event_id, ctx.sid)
        st.risk_evidence = [*st.risk_evidence, evidence][-MAX_RISK_EVIDENCE:]
        for s in signals:
            if s not in st.risk_reasons:
                st.risk_reasons = [*st.risk_reasons, s][-5:]
        if not st.risk_armed or st.risk < rule.threshold:
            return
        st.risk_armed = False
        held = _held(st, t)
        fresh = [e for e in st.risk_evidence if e[1] not in held]
        why = (
            f"risk score {st.risk:.0f} passed {rule.threshold:g} from "
            f"{len(st.risk_evidence)} accesses that each looked a little wrong"
        )
        if len({e[1] for e in fresh}) >= 2 and 2 * len(fresh) >= len(st.risk_evidence):
            subjects = list(dict.fromkeys(e[2] for e in fresh if e[2]))
            assert self._risk_plan is not None
            firing = Firing(fresh, [why, *st.risk_reasons], subjects)
            self._fold(self._risk_plan, firing, ctx, st)
            return
        host = _holding_most(st.risk_evidence, st, t)
        if host is not None:
            self._touched[ctx.event.user_id].add(host.alert.alert_id)
            host.also[rule.id] = why
            _retitle(host)


def _opened(aid: str, uid: str, rule: r.Rule, firing: Firing, t: float, end: float) -> Open:
    evidence = firing.evidence
    last = evidence[-1]
    alert = Alert(
        alert_id=aid,
        created_at="",
        user_id=uid,
        rule_id=rule.id,
        title=rule.title,
        severity=rule.severity,
        score=score(rule.severity, len(evidence)),
        event_ids=[e[1] for e in evidence[:MAX_EVIDENCE]],
        reasons=list(firing.reasons),
        first_seen=format_ts(evidence[0][0]),
        last_seen=format_ts(t),
        count=len(evidence),
        subject_ids=firing.subject_ids[:MAX_EVIDENCE],
    )
    return Open(alert, end, (last[0], last[1]), own=list(firing.reasons))


def _grow(opened: Open, rule: r.Rule, firing: Firing, t: float) -> None:
    """Add a firing's new evidence and reasons to an open alert (its own rule's or not)."""
    alert = opened.alert
    if not opened.own:  # an alert stored before ``own`` was kept: its reasons say it
        opened.own = alert.reasons[1:] if opened.firings > 1 else list(alert.reasons)
    evidence = firing.evidence
    # Evidence already counted is at or before ``opened.last`` (time order), so
    # what is new comes after it, and after ``first_seen``.
    new = evidence[bisect.bisect_right(evidence, opened.last, key=_evidence_key) :]
    if new:
        opened.last = (new[-1][0], new[-1][1])
        alert.count += len(new)
        room = MAX_EVIDENCE - len(alert.event_ids)
        if room > 0:
            alert.event_ids.extend(e[1] for e in new[:room])
    for sid in firing.subject_ids:
        if len(alert.subject_ids) >= MAX_EVIDENCE:
            break
        if sid not in alert.subject_ids:
            alert.subject_ids.append(sid)
    opened.firings += 1
    alert.last_seen = format_ts(t)
    if rule.id == alert.rule_id:
        opened.own = list(firing.reasons)
    else:
        opened.also[rule.id] = firing.reasons[0]
        if _RANK[rule.severity] > _RANK[alert.severity]:
            alert.severity = rule.severity
    _retitle(opened)


_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def _retitle(opened: Open) -> None:
    """The alert's score and reasons from what it holds: its own rule's latest
    reasons, then each other rule's that joined it."""
    alert = opened.alert
    alert.score = min(100.0, score(alert.severity, alert.count) + 5.0 * len(opened.also))
    reasons = []
    if opened.firings > 1:
        rules = "this rule" if not opened.also else f"{1 + len(opened.also)} rules"
        reasons.append(
            f"{alert.count} events between {alert.first_seen} and {alert.last_seen}, "
            f"in {opened.firings} firings of {rules}"
        )
    reasons += opened.own
    reasons += [f"also {rule_id}: {why}" for rule_id, why in opened.also.items()]
    alert.reasons = reasons


def _sharing(firing: Firing, st: UserState, gap: float, t: float) -> Open | None:
    """The member's open alert of the same episode as this firing, if any.

    That is the one holding most of its events; failing that, the one whose
    latest evidence came last, if at most ``gap`` before the firing's first.
    Only alerts whose period holds ``t`` are open to it.
    """
    if not st.alerts:
        return None
    ids = {e[1] for e in firing.evidence}
    best, most = None, 0
    recent, latest = None, firing.first_t - gap
    for opened in st.alerts.values():
        if opened.end < t:
            continue
        shared = len(ids.intersection(opened.alert.event_ids))
        if shared > most:
            best, most = opened, shared
        if gap and opened.last[0] >= latest:
            recent, latest = opened, opened.last[0]
    return best if best is not None else recent


def _held(st: UserState, t: float) -> set[str]:
    """Every event id held as evidence by the member's alerts whose period holds ``t``."""
    return {eid for o in st.alerts.values() if o.end >= t for eid in o.alert.event_ids}


def _holding_most(
    evidence: Sequence[tuple[float, str, str | None]], st: UserState, t: float
) -> Open | None:
    return _sharing(Firing(evidence, []), st, 0.0, t)


def _evidence_key(e: Any) -> tuple[float, str]:
    return (e[0], e[1])


def _planned(rule: r.Rule, check: Check) -> _Planned:
    e = rule.exempt
    return _Planned(
        rule,
        check,
        seconds(rule.fold),
        frozenset(e.users),
        frozenset(e.roles),
        frozenset(e.units),
    )


def record_time(alert: Alert) -> float:
    """``created_at`` without a clock: the alert's first evidence, in event time."""
    return parse_ts(alert.first_seen)
