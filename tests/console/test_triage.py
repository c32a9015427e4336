"""Triage decisions: what each action does, what is refused, and the rebuild from the topic."""

from __future__ import annotations

import csv
import io

import pytest

from console.triage import (
    MAX_HISTORY,
    AuditRecord,
    TriageBook,
    TriageError,
    decide,
    encode,
    false_positives,
    false_positives_csv,
    rebuild,
)
from tests.console.helpers import alert

AT = "2026-03-02T09:00:00Z"


@pytest.mark.parametrize(("steps", "status", "assignee"), [
    ([("acknowledge", "", None)], "acknowledged", None),
    ([("assign", "", "bob")], "acknowledged", "bob"),
    ([("misuse", "no case", None)], "misuse", None),
    ([("justified", "case C-1 covers it", None)], "justified", None),
    ([("false_positive", "roster was wrong", None)], "false_positive", None),
    ([("assign", "", "bob"), ("misuse", "no case", None)], "misuse", "bob"),
    ([("misuse", "no case", None), ("acknowledge", "", None)], "misuse", None),
    ([("misuse", "no case", None), ("justified", "case found later", None)], "justified", None),
])
def test_actions_set_status_and_assignee(steps: list[tuple[str, str, str | None]], status: str,
                                         assignee: str | None) -> None:
    d = None
    for action, note, who in steps:
        d = decide(d, "aw-1", action, by="alice", at=AT, note=note, assignee=who)
    assert d is not None
    assert (d.status, d.assignee, d.version, len(d.history)) == (status, assignee, len(steps),
                                                                  len(steps))
    assert all(step.by == "alice" and step.at == AT for step in d.history)


@pytest.mark.parametrize(("action", "note", "assignee", "says"), [
    ("misuse", "", None, "say why in a note"),
    ("false_positive", "   ", None, "say why in a note"),
    ("justified", "", None, "say why in a note"),
    ("assign", "", None, "needs someone"),
    ("delete", "", None, "unknown action"),
    ("misuse", "x" * 2001, None, "at most 2000"),
])
def test_senseless_decisions_are_refused(action: str, note: str, assignee: str | None,
                                         says: str) -> None:
    with pytest.raises(TriageError, match=says):
        decide(None, "aw-1", action, by="alice", at=AT, note=note, assignee=assignee)


def test_history_is_bounded_but_the_version_counts_on() -> None:
    d = None
    for _ in range(MAX_HISTORY + 5):
        d = decide(d, "aw-1", "acknowledge", by="alice", at=AT)
    assert d is not None and d.version == MAX_HISTORY + 5 and len(d.history) == MAX_HISTORY


def test_rebuild_keeps_the_latest_version_per_alert_and_ignores_tombstones() -> None:
    one = decide(None, "aw-1", "acknowledge", by="alice", at=AT)
    two = decide(one, "aw-1", "misuse", by="bob", at=AT, note="no case")
    other = decide(None, "aw-2", "false_positive", by="carol", at=AT, note="test account")
    gone = decide(None, "aw-3", "acknowledge", by="carol", at=AT)
    records = [(b"aw-1", encode(one)), (b"aw-2", encode(other)), (b"aw-1", encode(two)),
               (b"aw-3", encode(gone)), (b"aw-1", encode(one)),  # a stale replay: ignored
               (b"aw-9", b"not json"), (b"aw-3", None)]
    book = rebuild(records)
    assert set(book.decisions) == {"aw-1", "aw-2", "aw-3"}  # a tombstone erases nothing
    assert book.get("aw-1") == two and book.status_of("aw-1") == "misuse"
    assert book.status_of("aw-2") == "false_positive" and book.status_of("aw-404") == "new"


def test_applying_the_same_version_twice_changes_nothing() -> None:
    book = TriageBook()
    d = decide(None, "aw-1", "acknowledge", by="alice", at=AT)
    assert book.apply(d) and not book.apply(d)


def test_audit_records_carry_who_and_when() -> None:
    d = decide(None, "aw-1", "misuse", by="bob", at=AT, note="no case")
    raw = encode(AuditRecord(d.alert_id, d.version, d.history[-1]))
    assert b'"by":"bob"' in raw and AT.encode() in raw and b'"version":1' in raw


def test_false_positives_export_as_csv_without_formulas() -> None:
    a, b = alert("aw-1"), alert("aw-2")
    book = TriageBook()
    book.apply(decide(None, "aw-1", "false_positive", by="alice", at=AT,
                      note="=HYPERLINK(\"http://x\") roster gap"))
    book.apply(decide(None, "aw-2", "misuse", by="alice", at=AT, note="real"))
    rows = false_positives(book, {"aw-1": a, "aw-2": b})
    assert [r["alert_id"] for r in rows] == ["aw-1"]
    table = list(csv.DictReader(io.StringIO(false_positives_csv(rows))))
    assert len(table) == 1
    assert table[0]["rule_id"] == "AW-002" and table[0]["decided_by"] == "alice"
    assert table[0]["event_ids"] == "ev-1 ev-2"
    assert table[0]["note"].startswith("'=HYPERLINK")
