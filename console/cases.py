"""Cases: one member's alerts over an episode, investigated and closed together.

A case is derived from the member's alerts by event time (``group``).  Once an
analyst records a decision, a ``CaseRecord`` pins the alerts it was about; the
compacted cases topic holds each case's latest record (keyed by ``case_id``)
and every step is also appended to the audit topic.  Closing a case as misuse
takes two people: it waits for a lead who did not propose it.

>>> at = "2026-03-02T09:00:00Z"
>>> r = decide_case(None, "C-1", "E1", ["aw-1"], "assign", by="ana", role="analyst", at=at,
...                 owner="ana")
>>> r = decide_case(r, "C-1", "E1", ["aw-1"], "close", by="ana", role="analyst", at=at,
...                 outcome="misuse", note="no case covers the opens")
>>> r.status, r.outcome, r.proposed.by
('awaiting_approval', None, 'ana')
>>> r = decide_case(r, "C-1", "E1", ["aw-1"], "approve", by="lena", role="lead", at=at)
>>> r.status, r.outcome, r.approved_by, r.version, [s.action for s in r.history]
('closed', 'misuse', 'lena', 3, ['assign', 'close', 'approve'])
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache

import msgspec

from accesswatch.core import Alert

CASE_STATUSES: tuple[str, ...] = ("new", "investigating", "referred", "awaiting_approval",
                                  "closed")
OUTCOMES: tuple[str, ...] = ("misuse", "justified", "false_positive", "no_further_action")
ACTIONS: tuple[str, ...] = ("assign", "unassign", "investigate", "refer", "note", "close",
                            "approve", "reject", "reopen")
DECIDING_ROLES = frozenset({"analyst", "lead"})
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
MAX_NOTE = 2000
MAX_NOTES = 100  # the compacted value stays well under a broker's 1 MB message limit
MAX_HISTORY = 100  # the audit topic keeps every step

# Which statuses each action may start from; the rest get a sentence from _refusal.
_FROM: dict[str, frozenset[str]] = {
    "assign": frozenset({"new", "investigating", "referred", "awaiting_approval"}),
    "unassign": frozenset({"new", "investigating", "referred", "awaiting_approval"}),
    "investigate": frozenset({"new", "referred"}),
    "refer": frozenset({"new", "investigating"}),
    "note": frozenset(CASE_STATUSES),
    "close": frozenset({"new", "investigating", "referred"}),
    "approve": frozenset({"awaiting_approval"}),
    "reject": frozenset({"awaiting_approval"}),
    "reopen": frozenset({"closed"}),
}


class CaseError(ValueError):
    """A case decision that cannot be recorded, said in words for the analyst."""


class Proposal(msgspec.Struct, omit_defaults=True):
    """An outcome waiting for a second person (closing as misuse)."""

    outcome: str
    by: str
    at: str
    note: str = ""


class Note(msgspec.Struct, omit_defaults=True):
    by: str
    at: str
    text: str


class CaseStep(msgspec.Struct, omit_defaults=True):
    action: str
    by: str
    at: str
    role: str = ""
    note: str = ""
    owner: str | None = None
    outcome: str | None = None


class CaseRecord(msgspec.Struct, omit_defaults=True):
    case_id: str
    user_id: str
    status: str
    version: int
    by: str
    at: str
    created_at: str = ""  # the first decision's time: the older record keeps a shared alert
    owner: str | None = None
    outcome: str | None = None
    alert_ids: list[str] = msgspec.field(default_factory=list)
    proposed: Proposal | None = None
    approved_by: str | None = None
    notes: list[Note] = msgspec.field(default_factory=list)
    history: list[CaseStep] = msgspec.field(default_factory=list)


class AuditStep(msgspec.Struct):
    """One appended line of the cases audit topic."""

    case_id: str
    version: int
    step: CaseStep


def decide_case(current: CaseRecord | None, case_id: str, user_id: str,
                alert_ids: Iterable[str], action: str, *, by: str, role: str, at: str,
                note: str = "", owner: str | None = None,
                outcome: str | None = None) -> CaseRecord:
    """The record after ``action``; raises ``CaseError`` for one that cannot be taken.

    ``alert_ids`` are the case's alerts as the analyst saw them: they are pinned
    to the case (with any pinned before), so regrouping never moves them out.
    """
    note, owner = note.strip(), (owner or "").strip() or None
    _check_request(current, case_id, user_id, action, role, note)
    rec = current or CaseRecord(case_id, user_id, "new", 0, by, at, created_at=at)
    if rec.status not in _FROM[action]:
        raise CaseError(_refusal(rec, action))
    status, changes = _apply(rec, action, by=by, role=role, at=at, note=note, owner=owner,
                             outcome=outcome)
    step = CaseStep(action, by, at, role, note, owner if action == "assign" else None,
                    outcome if action == "close" else None)
    notes = [*rec.notes, Note(by, at, note)][-MAX_NOTES:] if note else rec.notes
    return msgspec.structs.replace(
        rec, status=status, version=rec.version + 1, by=by, at=at,
        created_at=rec.created_at or at, alert_ids=sorted({*rec.alert_ids, *alert_ids}),
        notes=notes, history=[*rec.history, step][-MAX_HISTORY:], **changes)


def _check_request(current: CaseRecord | None, case_id: str, user_id: str, action: str,
                   role: str, note: str) -> None:
    if action not in ACTIONS:
        raise CaseError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    if role not in DECIDING_ROLES:
        raise CaseError(f"a {role or 'user without a role'} cannot change cases; "
                        "an analyst or a lead can")
    if current is not None and (current.case_id, current.user_id) != (case_id, user_id):
        raise CaseError(f"case {current.case_id} is member {current.user_id}'s, "
                        f"not {case_id} of {user_id}")
    if len(note) > MAX_NOTE:
        raise CaseError(f"the note is {len(note)} characters; at most {MAX_NOTE}")


def _apply(rec: CaseRecord, action: str, *, by: str, role: str, at: str, note: str,
           owner: str | None, outcome: str | None) -> tuple[str, dict[str, object]]:
    """The new status and the fields that change (the status is already allowed)."""
    status = rec.status
    if action == "assign":
        if owner is None:
            raise CaseError("assign needs someone to assign the case to")
        return ("investigating" if status == "new" else status), {"owner": owner}
    if action == "unassign":
        if rec.owner is None:
            raise CaseError(f"case {rec.case_id} has no owner to unassign")
        return status, {"owner": None}
    if action == "investigate":
        return "investigating", {}
    if action == "refer":
        return "referred", {}
    if action == "note":
        if not note:
            raise CaseError("write the note first: an empty note records nothing")
        return status, {}
    if action == "close":
        if outcome not in OUTCOMES:
            raise CaseError(f"close needs an outcome: one of {', '.join(OUTCOMES)}")
        if not note:
            raise CaseError("say why in a note: an outcome without a reason cannot be "
                            "reviewed")
        if outcome == "misuse":  # four eyes: a second person, a lead, approves it
            return "awaiting_approval", {"proposed": Proposal(outcome, by, at, note),
                                         "outcome": None, "approved_by": None}
        return "closed", {"outcome": outcome, "proposed": None, "approved_by": None}
    if action == "reopen":
        if rec.outcome == "misuse" and role != "lead":
            raise CaseError("only a lead can reopen a case closed as misuse: a second "
                            "person approved that outcome")
        if not note:
            raise CaseError("say why in a note: reopening a closed case must be explained")
        return "investigating", {"outcome": None, "proposed": None, "approved_by": None}
    return _review(rec, action, by=by, role=role, note=note)


def _review(rec: CaseRecord, action: str, *, by: str, role: str,
            note: str) -> tuple[str, dict[str, object]]:
    """Approve or reject the proposed outcome: four eyes, the second pair a lead's."""
    proposed = rec.proposed
    if proposed is None:
        raise CaseError(f"case {rec.case_id} has no proposed outcome to {action}")
    if action == "approve":
        if by == proposed.by:
            raise CaseError(f"a second person must approve: {by} proposed "
                            f"{proposed.outcome}, so another lead approves it")
        if role != "lead":
            raise CaseError(f"only a lead can approve closing a case as {proposed.outcome}")
        return "closed", {"outcome": proposed.outcome, "approved_by": by}
    if role != "lead" and by != proposed.by:
        raise CaseError("only a lead, or the analyst who proposed it, can reject a "
                        "proposed outcome")
    if not note:
        raise CaseError("say why in a note: the analyst needs to know why it was rejected")
    return "investigating", {"proposed": None}


def _refusal(rec: CaseRecord, action: str) -> str:
    case, status = f"case {rec.case_id}", rec.status
    if status == "closed":
        return f"{case} is closed ({rec.outcome}); reopen it first, or add a note"
    if status == "awaiting_approval":
        who = rec.proposed.by if rec.proposed else "someone"
        return (f"{case} is awaiting a lead's approval of the outcome {who} proposed; "
                "a lead approves or rejects it first")
    if action in ("approve", "reject"):
        return f"nothing to {action}: {case} is {status}; only closing as misuse asks for it"
    if action == "reopen":
        return f"{case} is {status}, not closed"
    if action == "investigate":
        return f"{case} is already being investigated"
    return f"{case} is already {status}"


class CaseBook:
    """Every case's latest record, folded from the compacted cases topic.

    Applying the same or an older version is a no-op.  A tombstone never erases
    a case: a misconduct file is not lost to a stray delete; it is counted.
    """

    def __init__(self) -> None:
        self.records: dict[str, CaseRecord] = {}
        self.by_user: dict[str, set[str]] = defaultdict(set)
        self.ignored_tombstones = 0
        self.invalid = 0

    def get(self, case_id: str) -> CaseRecord | None:
        return self.records.get(case_id)

    def of_member(self, user_id: str) -> list[CaseRecord]:
        """The member's records, oldest first."""
        return sorted((self.records[c] for c in self.by_user.get(user_id, ())),
                      key=lambda r: (r.created_at or r.at, r.case_id))

    def apply(self, record: CaseRecord) -> bool:
        held = self.records.get(record.case_id)
        if held is not None:
            if held.version >= record.version:
                return False
            self.by_user[held.user_id].discard(held.case_id)
        self.records[record.case_id] = record
        self.by_user[record.user_id].add(record.case_id)
        return True

    def apply_record(self, key: bytes | None, value: bytes | None) -> bool:
        """One record of the compacted topic; True when it changed the book."""
        if value is None:
            self.ignored_tombstones += 1
            return False
        try:
            return self.apply(decode_case(value))
        except msgspec.DecodeError:
            self.invalid += 1  # not ours to crash on; the audit topic still has it
            return False


def rebuild(records: Iterable[tuple[bytes | None, bytes | None]]) -> CaseBook:
    """A book from the compacted topic's records, in offset order."""
    book = CaseBook()
    for key, value in records:
        book.apply_record(key, value)
    return book


encode = msgspec.json.encode
_case = msgspec.json.Decoder(CaseRecord)
_audit = msgspec.json.Decoder(AuditStep)


def decode_case(raw: bytes) -> CaseRecord:
    return _case.decode(raw)


def decode_audit(raw: bytes) -> AuditStep:
    return _audit.decode(raw)


def audit_step(record: CaseRecord) -> AuditStep:
    """The audit line for the step that made ``record``."""
    return AuditStep(record.case_id, record.version, record.history[-1])


# --- grouping ------------------------------------------------------------------------


class CaseView(msgspec.Struct):
    """A case as the console lists it: its alerts in event time and its record, if any."""

    case_id: str
    user_id: str
    alert_ids: list[str]
    alerts: int
    first_seen: str  # event time of its alerts; "" when none of its alerts is held
    last_seen: str
    risk: float
    severity: str  # the highest of its alerts; "" when none is held
    rule_ids: list[str]
    status: str
    version: int = 0
    owner: str | None = None
    outcome: str | None = None
    proposed_by: str | None = None
    approved_by: str | None = None
    updated_at: str | None = None
    previous_case_id: str | None = None
    record: CaseRecord | None = None


def derived_case_id(user_id: str, alert_id: str) -> str:
    """The id of a case that its earliest alert started.

    >>> derived_case_id("E1", "aw-1")
    'C-340777a977b1'
    """
    return "C-" + hashlib.blake2b(f"{user_id}|{alert_id}".encode(), digest_size=6).hexdigest()


def risk_of(scores: Iterable[float]) -> float:
    """Noisy-or of alert scores (0-100): the chance at least one of them is right.

    >>> risk_of([50.0, 50.0]), risk_of([]), risk_of([100.0, 10.0])
    (75.0, 0.0, 100.0)
    """
    # Sorted: the float product, and so the rounding, must not depend on input order.
    rest = math.prod(1.0 - min(max(s, 0.0), 100.0) / 100.0 for s in sorted(scores))
    return round(100.0 * (1.0 - rest), 1)


@lru_cache(maxsize=1 << 16)
def seconds(ts: str) -> float:
    """An ISO-8601 time as POSIX seconds; a time without a zone is UTC."""
    t = datetime.fromisoformat(ts)
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


class _Growing:
    """A case while ``group`` fills it."""

    __slots__ = ("alerts", "case_id", "end", "record", "start")

    def __init__(self, case_id: str, record: CaseRecord | None) -> None:
        self.case_id, self.record = case_id, record
        self.alerts: list[Alert] = []
        self.start, self.end = math.inf, -math.inf

    @property
    def closed(self) -> bool:
        return self.record is not None and self.record.status == "closed"

    def add(self, alert: Alert) -> None:
        self.alerts.append(alert)
        self.start = min(self.start, seconds(alert.first_seen))
        self.end = max(self.end, seconds(alert.last_seen))


def group(user_id: str, alerts: Iterable[Alert], records: Iterable[CaseRecord],
          gap_s: float) -> list[CaseView]:
    """The member's cases, by event time, whatever order ``alerts`` come in.

    Alerts pinned in a record stay in its case (the earliest-created record wins
    one pinned twice).  The others, earliest first, join the nearest case that is
    not closed whose window, widened by ``gap_s`` each side, meets theirs; else
    they start a case of their own.  A closed case takes no new alerts.

    >>> def a(i, t): return Alert(i, t, "E1", "AW-002", "t", "high", 60.0, [], [], t, t, 1)
    >>> views = group("E1", [a("aw-2", "2026-03-03T09:00:00Z"), a("aw-1",
    ...     "2026-03-02T09:00:00Z"), a("aw-3", "2026-03-20T09:00:00Z")], [], gap_s=7 * 86400)
    >>> [(v.alert_ids, v.risk, v.status) for v in views]
    [(['aw-1', 'aw-2'], 84.0, 'new'), (['aw-3'], 60.0, 'new')]
    >>> views[1].previous_case_id == views[0].case_id == derived_case_id("E1", "aw-1")
    True
    """
    held = _latest_alerts(a for a in alerts if a.user_id == user_id)
    cases: dict[str, _Growing] = {}
    for record in _latest_records(r for r in records if r.user_id == user_id):
        case = cases[record.case_id] = _Growing(record.case_id, record)
        for alert_id in record.alert_ids:
            alert = held.pop(alert_id, None)
            if alert is not None:
                case.add(alert)
    for alert in sorted(held.values(), key=lambda a: (seconds(a.first_seen), a.alert_id)):
        start, end = seconds(alert.first_seen), seconds(alert.last_seen)
        near = [(max(0.0, start - c.end, c.start - end), c.start, c.case_id)
                for c in cases.values()
                if c.alerts and not c.closed and start <= c.end + gap_s
                and end >= c.start - gap_s]
        if near:
            cases[min(near)[2]].add(alert)
        else:
            _start(cases, user_id, alert.alert_id).add(alert)
    return _views(user_id, cases.values())


def _start(cases: dict[str, _Growing], user_id: str, alert_id: str) -> _Growing:
    case_id, n = derived_case_id(user_id, alert_id), 1
    # A record may already hold the derived id (its alerts pinned elsewhere, say);
    # if it is closed the new case needs another id, derived the same way every time.
    while case_id in cases and cases[case_id].closed:
        n += 1
        case_id = derived_case_id(user_id, f"{alert_id}|{n}")
    return cases.setdefault(case_id, _Growing(case_id, None))


def _latest_alerts(alerts: Iterable[Alert]) -> dict[str, Alert]:
    held: dict[str, Alert] = {}
    for a in alerts:
        other = held.get(a.alert_id)
        if other is None or (a.version, a.updated_at or "") > (other.version,
                                                                 other.updated_at or ""):
            held[a.alert_id] = a
    return held


def _latest_records(records: Iterable[CaseRecord]) -> list[CaseRecord]:
    latest: dict[str, CaseRecord] = {}
    for r in records:
        if r.case_id not in latest or r.version > latest[r.case_id].version:
            latest[r.case_id] = r
    return sorted(latest.values(), key=lambda r: (r.created_at or r.at, r.case_id))


def _views(user_id: str, cases: Iterable[_Growing]) -> list[CaseView]:
    timed = sorted((c for c in cases if c.alerts), key=lambda c: (c.start, c.case_id))
    untimed = sorted((c for c in cases if not c.alerts), key=lambda c: c.case_id)
    views, previous = [], None
    for c in [*timed, *untimed]:
        views.append(_view(user_id, c, previous if c.alerts else None))
        previous = c.case_id if c.alerts else previous
    return views


def _view(user_id: str, c: _Growing, previous: str | None) -> CaseView:
    alerts = sorted(c.alerts, key=lambda a: (seconds(a.first_seen), a.alert_id))
    r = c.record
    times = [a.updated_at or a.created_at for a in alerts] + ([r.at] if r else [])
    return CaseView(
        case_id=c.case_id, user_id=user_id, alert_ids=[a.alert_id for a in alerts],
        alerts=len(alerts),
        first_seen=min((a.first_seen for a in alerts), key=seconds, default=""),
        last_seen=max((a.last_seen for a in alerts), key=seconds, default=""),
        risk=risk_of(a.score for a in alerts),
        severity=max((a.severity for a in alerts), key=SEVERITY_RANK.__getitem__, default=""),
        rule_ids=sorted({a.rule_id for a in alerts}),
        status=r.status if r else "new", version=r.version if r else 0,
        owner=r.owner if r else None, outcome=r.outcome if r else None,
        proposed_by=r.proposed.by if r and r.proposed else None,
        approved_by=r.approved_by if r else None,
        updated_at=max(times, key=seconds, default=None), previous_case_id=previous, record=r)

