"""The console's state and the views the API serves from it (pure, no network I/O).

Alerts, decisions and cases change here; each change is mirrored into the
listing index (``console.alert_index``) and, once settled, announced to the
live listeners.  A member's alerts are regrouped into cases when any of them,
or any of the member's case records, changes: in batches (``settle``), so
reading a backlog of 100,000 alerts groups each member once, not once per alert.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from accesswatch.contract.timestamps import parse_ts
from accesswatch.core import Alert
from console.alert_index import AlertIndex, CaseRow, Row
from console.cases import CaseBook, CaseRecord, CaseView, decode_case, group
from console.store import AlertStore, Hub, StaffDirectory
from console.triage import Decision, TriageBook

if TYPE_CHECKING:
    from console.directory import CaseFacts, ProtectedSubjects, Watchlist
    from console.history import History, HistoryEvent

SEVERITIES = ("critical", "high", "medium", "low")
MEMBER_HISTORY = 50
DEFAULT_CASE_GAP_S = 7 * 86400.0


@dataclass
class ConsoleState:
    alerts: AlertStore
    staff: StaffDirectory = field(default_factory=StaffDirectory)
    triage: TriageBook = field(default_factory=TriageBook)
    hub: Hub = field(default_factory=Hub)
    # Which feeds have caught up with the end offsets they saw at start.
    caught_up: dict[str, bool] = field(default_factory=dict)
    index: AlertIndex = field(default_factory=AlertIndex)
    case_book: CaseBook = field(default_factory=CaseBook)
    case_gap_s: float = DEFAULT_CASE_GAP_S
    history: History | None = None
    case_facts: CaseFacts | None = None
    protected: ProtectedSubjects | None = None
    watchlist: Watchlist | None = None
    rule_names: dict[str, str] = field(default_factory=dict)
    # Derived: each alert's case, each case's view; members to regroup; rows to announce.
    case_of: dict[str, str] = field(default_factory=dict)
    case_views: dict[str, CaseView] = field(default_factory=dict)
    by_subject: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    _member_cases: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    _dirty: set[str] = field(default_factory=set)
    _announce: set[str] = field(default_factory=set)
    _announce_cases: list[CaseRow] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return bool(self.caught_up) and all(self.caught_up.values())

    # --- changes; ``settle`` groups and announces them --------------------------
    def add_alert(self, alert: Alert, *, settle: bool = True) -> bool:
        """Hold ``alert`` if it is new or newer than the version held; True when it was."""
        if self.alerts.add(alert) == "stale":
            return False
        for old in self.alerts.evicted:
            self.index.drop_alert(old.alert_id)
            self.case_of.pop(old.alert_id, None)
            self._dirty.add(old.user_id)
            for sid in old.subject_ids:
                self.by_subject[sid].discard(old.alert_id)
        self.alerts.evicted = []
        for sid in alert.subject_ids:
            self.by_subject[sid].add(alert.alert_id)
        self.rule_names[alert.rule_id] = alert.title
        self.index.put_alert(self._row(alert))
        self._dirty.add(alert.user_id)
        self._announce.add(alert.alert_id)
        if settle:
            self.settle()
        return True

    def apply_decision(self, decision: Decision) -> bool:
        if not self.triage.apply(decision):
            return False
        self.index.set_triage(decision.alert_id, decision.status, decision.assignee)
        if self.alerts.get(decision.alert_id) is not None:
            self._announce.add(decision.alert_id)
        self.settle()
        return True

    def apply_case(self, record: CaseRecord, *, settle: bool = True) -> bool:
        if not self.case_book.apply(record):
            return False
        self._dirty.add(record.user_id)
        if settle:
            self.settle()
        return True

    def apply_case_record(self, key: bytes | None, value: bytes | None) -> bool | None:
        """One record of the compacted cases topic: True when it changed a case, False
        when it did not, None when it is not a case record (a tombstone, bad bytes)."""
        if value is None:
            self.case_book.apply_record(key, None)  # counted, never applied
            return None
        try:
            record = decode_case(value)
        except msgspec.DecodeError:
            self.case_book.invalid += 1
            return None
        return self.apply_case(record, settle=False)

    def settle(self) -> None:
        """Regroup the members whose alerts or cases changed; announce what changed."""
        for user_id in self._dirty:
            self._regroup(user_id)
        self._dirty.clear()
        announce, self._announce = self._announce, set()
        cases, self._announce_cases = self._announce_cases, []
        if self.hub.listeners:  # none while the backlog is read at start
            for alert_id in sorted(announce):
                alert = self.alerts.get(alert_id)
                if alert is not None:
                    self.hub.publish("alert", summary(self, alert))
            for row in cases:
                self.hub.publish("case", msgspec.to_builtins(row))

    def _regroup(self, user_id: str) -> None:
        alerts = self.alerts.of_member(user_id)
        records = self.case_book.of_member(user_id)
        for case_id in self._member_cases.pop(user_id, []):
            self.case_views.pop(case_id, None)
        views = group(user_id, alerts, records, self.case_gap_s) if alerts or records else []
        area = self.staff.area(user_id)
        rows = []
        for v in views:
            self.case_views[v.case_id] = v
            self._member_cases[user_id].append(v.case_id)
            moved = [a for a in v.alert_ids if self.case_of.get(a) != v.case_id]
            for a in moved:
                self.case_of[a] = v.case_id
                self._announce.add(a)
            if moved:
                self.index.set_case(moved, v.case_id)
            rows.append(case_row(v, area))
        self.index.replace_cases(user_id, rows)
        if self.hub.listeners:
            self._announce_cases.extend(rows)

    # --- rows -------------------------------------------------------------------
    def _row(self, alert: Alert) -> Row:
        d = self.triage.get(alert.alert_id)
        return Row(alert_id=alert.alert_id, created_at=alert.created_at,
                   updated_at=alert.updated_at, version=alert.version,
                   first_seen=alert.first_seen, last_seen=alert.last_seen,
                   user_id=alert.user_id, rule_id=alert.rule_id, title=alert.title,
                   severity=alert.severity, score=alert.score, count=alert.count,
                   area=self.staff.area(alert.user_id), status=d.status if d else "new",
                   assignee=d.assignee if d else None,
                   reason=alert.reasons[0] if alert.reasons else "",
                   case_id=self.case_of.get(alert.alert_id),
                   search=" ".join([*alert.subject_ids, *alert.reasons[1:],
                                    self.rule_names.get(alert.rule_id, "")]))

    def evidence(self, alert: Alert) -> dict[str, HistoryEvent]:
        """The alert's evidence events the access history holds, by id."""
        if self.history is None:
            return {}
        return self.history.events(alert.event_ids, alert.user_id, _ms(alert.first_seen, 0),
                                   _ms(alert.last_seen, 2**62))


def _ms(iso: str, otherwise: int) -> int:
    try:
        return int(parse_ts(iso) * 1000)
    except Exception:  # an alert with an unreadable time: look everywhere
        return otherwise


def case_row(v: CaseView, area: str) -> CaseRow:
    return CaseRow(case_id=v.case_id, user_id=v.user_id, first_seen=v.first_seen,
                   last_seen=v.last_seen, alerts=v.alerts, risk=v.risk,
                   severity=v.severity, area=area, rule_ids=list(v.rule_ids), status=v.status,
                   owner=v.owner, outcome=v.outcome, proposed_by=v.proposed_by,
                   version=v.version, updated_at=v.updated_at,
                   previous_case_id=v.previous_case_id)


def summary(state: ConsoleState, alert: Alert) -> dict[str, Any]:
    """One row of the feed."""
    d = state.triage.get(alert.alert_id)
    return {
        "alert_id": alert.alert_id, "created_at": alert.created_at,
        "user_id": alert.user_id, "rule_id": alert.rule_id,
        "rule_name": state.rule_names.get(alert.rule_id, alert.title), "title": alert.title,
        "severity": alert.severity, "score": alert.score, "count": alert.count,
        "area": state.staff.area(alert.user_id), "status": d.status if d else "new",
        "assignee": d.assignee if d else None,
        "reason": alert.reasons[0] if alert.reasons else "",
        "first_seen": alert.first_seen, "last_seen": alert.last_seen,
        "version": alert.version, "updated_at": alert.updated_at,
        "case_id": state.case_of.get(alert.alert_id),
    }


def evidence_json(ev: HistoryEvent) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(ev)
    out.pop("t_ms", None)
    return out


def judged(state: ConsoleState, ev: HistoryEvent) -> dict[str, Any]:
    """An access as the API shows it, with whether its case justified it and, if not, why
    (without case facts to judge by, nothing is held against it)."""
    row = evidence_json(ev)
    why = state.case_facts.why_unjustified(ev) if state.case_facts is not None else ""
    row["justified"], row["why"] = not why, why
    return row


def detail(state: ConsoleState, alert: Alert) -> dict[str, Any]:
    """Everything the detail pane shows: reasons, evidence, model, member history, triage."""
    found = state.evidence(alert)
    member = state.alerts.of_member(alert.user_id)[-MEMBER_HISTORY:]
    info = state.staff.members.get(alert.user_id)
    d = state.triage.get(alert.alert_id)
    evidence = []
    for eid in alert.event_ids:
        ev = found.get(eid)
        if ev is None:
            continue
        evidence.append(judged(state, ev))
    return {
        "alert": msgspec.to_builtins(alert),
        "summary": summary(state, alert),
        "member": msgspec.to_builtins(info) if info else None,
        "evidence": evidence,
        "evidence_missing": [eid for eid in alert.event_ids if eid not in found],
        "history": [{"alert_id": a.alert_id, "created_at": a.created_at,
                     "first_seen": a.first_seen, "last_seen": a.last_seen,
                     "rule_id": a.rule_id, "title": a.title, "severity": a.severity,
                     "score": a.score, "status": state.triage.status_of(a.alert_id)}
                    for a in member],
        "triage": msgspec.to_builtins(d) if d else None,
        "case_id": state.case_of.get(alert.alert_id),
    }
