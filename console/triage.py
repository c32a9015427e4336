"""Triage decisions: what analysts decided about an alert, who decided and when.

The compacted ``access.alerts.triage`` topic holds one ``Decision`` per alert
(keyed by ``alert_id``), carrying its recent history; every step is also
appended to ``access.alerts.triage.audit``.  On start the console folds the
compacted topic back into a ``TriageBook``.

>>> d = decide(None, "aw-1", "acknowledge", by="alice", at="2026-03-02T09:00:00Z")
>>> d = decide(d, "aw-1", "misuse", by="bob", at="2026-03-02T09:05:00Z", note="no case")
>>> d.status, d.version, [e.action for e in d.history]
('misuse', 2, ['acknowledge', 'misuse'])
"""

from __future__ import annotations

import csv
import io
from typing import Literal

import msgspec

from accesswatch.core import Alert

Action = Literal["acknowledge", "assign", "unassign", "justified", "misuse", "false_positive",
                 "reopen"]
Status = Literal["new", "acknowledged", "justified", "misuse", "false_positive"]
ACTIONS: tuple[str, ...] = ("acknowledge", "assign", "unassign", "justified", "misuse",
                            "false_positive", "reopen")
STATUSES: tuple[str, ...] = ("new", "acknowledged", "justified", "misuse", "false_positive")
OUTCOMES = frozenset({"justified", "misuse", "false_positive"})
MAX_NOTE = 2000
MAX_HISTORY = 50  # the audit topic keeps every step; the compacted value the latest


class TriageError(ValueError):
    """A decision that cannot be recorded, said in words for the analyst."""


class Step(msgspec.Struct, omit_defaults=True):
    action: str
    by: str
    at: str
    note: str = ""
    assignee: str | None = None


class Decision(msgspec.Struct, omit_defaults=True):
    alert_id: str
    status: str
    by: str
    at: str
    version: int
    note: str = ""
    assignee: str | None = None
    history: list[Step] = msgspec.field(default_factory=list)


class AuditRecord(msgspec.Struct):
    """One appended line of the audit topic."""

    alert_id: str
    version: int
    step: Step


def decide(current: Decision | None, alert_id: str, action: str, *, by: str, at: str,
           note: str = "", assignee: str | None = None) -> Decision:
    """The decision after ``action``; raises ``TriageError`` for one that makes no sense."""
    note = note.strip()
    if action not in ACTIONS:
        raise TriageError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    if len(note) > MAX_NOTE:
        raise TriageError(f"the note is {len(note)} characters; at most {MAX_NOTE}")
    if action in OUTCOMES and not note:
        raise TriageError("say why in a note: an outcome without a reason cannot be reviewed")
    if action == "assign" and not assignee:
        raise TriageError("assign needs someone to assign it to")
    status = current.status if current else "new"
    if action == "reopen" and status not in OUTCOMES:
        raise TriageError("only an alert with an outcome can be reopened")
    if action == "unassign" and not (current and current.assignee):
        raise TriageError("this alert is not assigned to anyone")
    if action in OUTCOMES:
        status = action
    elif status == "new" or action == "reopen":
        status = "acknowledged"  # assigning an alert acknowledges it too
    step = Step(action, by, at, note, assignee if action == "assign" else None)
    history = [*(current.history if current else []), step][-MAX_HISTORY:]
    return Decision(alert_id=alert_id, status=status, by=by, at=at,
                    version=(current.version if current else 0) + 1,
                    note=note or (current.note if current else ""),
                    assignee=assignee if action == "assign" else
                    None if action == "unassign" else (current.assignee if current else None),
                    history=history)


class TriageBook:
    """Every alert's current decision; applying the same or an older version is a no-op."""

    def __init__(self) -> None:
        self.decisions: dict[str, Decision] = {}

    def get(self, alert_id: str) -> Decision | None:
        return self.decisions.get(alert_id)

    def apply(self, decision: Decision) -> bool:
        held = self.decisions.get(decision.alert_id)
        if held is not None and held.version >= decision.version:
            return False
        self.decisions[decision.alert_id] = decision
        return True

    def apply_record(self, key: bytes | None, value: bytes | None) -> bool:
        """One record of the compacted topic.  A tombstone changes nothing: a decision is
        never erased (one would wipe an alert's whole triage history)."""
        if value is None:
            return False
        try:
            return self.apply(decode_decision(value))
        except msgspec.DecodeError:
            return False  # not ours to crash on; the audit topic still has it

    def status_of(self, alert_id: str) -> str:
        held = self.decisions.get(alert_id)
        return held.status if held else "new"


def rebuild(records: list[tuple[bytes | None, bytes | None]]) -> TriageBook:
    """A book from the compacted topic's records, in offset order."""
    book = TriageBook()
    for key, value in records:
        book.apply_record(key, value)
    return book


_decision = msgspec.json.Decoder(Decision)
encode = msgspec.json.encode


def decode_decision(raw: bytes) -> Decision:
    return _decision.decode(raw)


FP_COLUMNS = ("alert_id", "rule_id", "user_id", "severity", "score", "created_at",
              "first_seen", "last_seen", "decided_by", "decided_at", "note", "event_ids",
              "subject_ids", "model_version")


def false_positives(book: TriageBook, alerts: dict[str, Alert]) -> list[dict[str, object]]:
    """Alerts marked false positive, with the decision: input for allow-lists and retraining."""
    rows: list[dict[str, object]] = []
    for d in sorted(book.decisions.values(), key=lambda d: d.at):
        alert = alerts.get(d.alert_id)
        if d.status != "false_positive" or alert is None:
            continue
        rows.append({
            "alert_id": alert.alert_id, "rule_id": alert.rule_id, "user_id": alert.user_id,
            "severity": alert.severity, "score": alert.score, "created_at": alert.created_at,
            "first_seen": alert.first_seen, "last_seen": alert.last_seen,
            "decided_by": d.by, "decided_at": d.at, "note": d.note,
            "event_ids": list(alert.event_ids), "subject_ids": list(alert.subject_ids),
            "model_version": (alert.model or {}).get("version"),
            "model": alert.model,
        })
    return rows


def false_positives_csv(rows: list[dict[str, object]]) -> str:
    out = io.StringIO()
    # CRLF, as RFC 4180: with "\n" a cell holding a bare "\r" is left unquoted.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FP_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in FP_COLUMNS])
    return out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    text = str(value)
    # A note opened in a spreadsheet must not run as a formula (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
