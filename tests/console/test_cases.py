"""Cases: every transition and refusal, four eyes, the rebuild from the topic, and grouping."""

from __future__ import annotations

import doctest
import random
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

import console.cases
from accesswatch.core import Alert
from console.cases import (
    ACTIONS,
    MAX_NOTE,
    CaseError,
    CaseRecord,
    audit_step,
    decide_case,
    decode_audit,
    derived_case_id,
    encode,
    group,
    rebuild,
)
from tests.console.helpers import alert

AT = "2026-03-02T09:00:00Z"
DAY = 86400.0
START = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
GAP = 7 * DAY

# (action, by, role, keyword arguments): one analyst's and one lead's steps.
Step = tuple[str, str, str, dict[str, Any]]
ASSIGN: Step = ("assign", "ana", "analyst", {"owner": "ana"})
PROPOSE: Step = ("close", "ana", "analyst", {"outcome": "misuse", "note": "no case covers it"})
APPROVE: Step = ("approve", "lena", "lead", {})
CLOSE_FP: Step = ("close", "ana", "analyst", {"outcome": "false_positive", "note": "rota"})


def run(steps: list[Step], record: CaseRecord | None = None,
        alert_ids: list[str] | None = None) -> CaseRecord:
    for action, by, role, kw in steps:
        record = decide_case(record, "C-1", "E1", alert_ids or ["aw-1"], action, by=by,
                             role=role, at=AT, **kw)
    assert record is not None
    return record


def test_the_doctests_hold() -> None:
    assert doctest.testmod(console.cases).failed == 0


@pytest.mark.parametrize(("steps", "status", "owner", "outcome"), [
    ([ASSIGN], "investigating", "ana", None),
    ([("assign", "lena", "lead", {"owner": "bob"})], "investigating", "bob", None),
    ([ASSIGN, ("assign", "ana", "analyst", {"owner": "bob"})], "investigating", "bob", None),
    ([ASSIGN, ("unassign", "ana", "analyst", {})], "investigating", None, None),
    ([("investigate", "ana", "analyst", {})], "investigating", None, None),
    ([("refer", "ana", "analyst", {})], "referred", None, None),
    ([ASSIGN, ("refer", "ana", "analyst", {})], "referred", "ana", None),
    ([("refer", "ana", "analyst", {}), ("investigate", "ana", "analyst", {})],
     "investigating", None, None),
    ([("note", "ana", "analyst", {"note": "spoke to the line manager"})], "new", None, None),
    ([CLOSE_FP], "closed", None, "false_positive"),
    ([ASSIGN, ("close", "ana", "analyst", {"outcome": "justified", "note": "case C9"})],
     "closed", "ana", "justified"),
    ([("refer", "ana", "analyst", {}),
      ("close", "ana", "analyst", {"outcome": "no_further_action", "note": "advice given"})],
     "closed", None, "no_further_action"),
    ([ASSIGN, PROPOSE], "awaiting_approval", "ana", None),
    ([ASSIGN, PROPOSE, ("assign", "lena", "lead", {"owner": "lena"})],
     "awaiting_approval", "lena", None),
    ([ASSIGN, PROPOSE, APPROVE], "closed", "ana", "misuse"),
    ([ASSIGN, PROPOSE, ("reject", "lena", "lead", {"note": "the rota shows a duty"})],
     "investigating", "ana", None),
    ([ASSIGN, PROPOSE, ("reject", "ana", "analyst", {"note": "withdrawn: wrong case"})],
     "investigating", "ana", None),
    ([CLOSE_FP, ("note", "ana", "analyst", {"note": "filed"})], "closed", None,
     "false_positive"),
    ([CLOSE_FP, ("reopen", "ana", "analyst", {"note": "new evidence"})], "investigating",
     None, None),
    ([ASSIGN, PROPOSE, APPROVE, ("reopen", "lena", "lead", {"note": "appeal upheld"})],
     "investigating", "ana", None),
])
def test_valid_transitions(steps: list[Step], status: str, owner: str | None,
                           outcome: str | None) -> None:
    record = run(steps)
    assert (record.status, record.owner, record.outcome) == (status, owner, outcome)
    assert record.version == len(record.history) == len(steps)
    assert [s.action for s in record.history] == [s[0] for s in steps]
    assert (record.by, record.at) == (steps[-1][1], AT)


@pytest.mark.parametrize(("steps", "step", "says"), [
    ([], ("close", "ana", "analyst", {"outcome": "misuse"}), "say why in a note"),
    ([], ("close", "ana", "analyst", {"outcome": "justified", "note": "  "}),
     "say why in a note"),
    ([], ("close", "ana", "analyst", {"note": "why"}), "close needs an outcome"),
    ([], ("close", "ana", "analyst", {"outcome": "fine", "note": "why"}),
     "close needs an outcome"),
    ([], ("assign", "ana", "analyst", {}), "needs someone"),
    ([], ("assign", "ana", "analyst", {"owner": "  "}), "needs someone"),
    ([], ("unassign", "ana", "analyst", {}), "no owner to unassign"),
    ([], ("note", "ana", "analyst", {}), "empty note"),
    ([], ("note", "ana", "analyst", {"note": "x" * (MAX_NOTE + 1)}), "at most 2000"),
    ([], ("delete", "ana", "analyst", {}), "unknown action"),
    ([], ("assign", "vic", "viewer", {"owner": "vic"}), "a viewer cannot change cases"),
    ([], ("approve", "lena", "lead", {}), "nothing to approve"),
    ([], ("reject", "lena", "lead", {"note": "no"}), "nothing to reject"),
    ([], ("reopen", "ana", "analyst", {"note": "again"}), "not closed"),
    ([ASSIGN], ("investigate", "ana", "analyst", {}), "already being investigated"),
    ([("refer", "ana", "analyst", {})], ("refer", "ana", "analyst", {}), "already referred"),
    ([ASSIGN, PROPOSE], ("close", "ana", "analyst", {"outcome": "justified", "note": "x"}),
     "awaiting a lead's approval of the outcome ana proposed"),
    ([ASSIGN, PROPOSE], PROPOSE, "awaiting a lead's approval"),
    ([ASSIGN, PROPOSE], ("investigate", "ana", "analyst", {}), "awaiting a lead's approval"),
    ([ASSIGN, PROPOSE], ("refer", "ana", "analyst", {}), "awaiting a lead's approval"),
    ([ASSIGN, PROPOSE], ("reject", "lena", "lead", {}), "say why in a note"),
    ([ASSIGN, PROPOSE], ("reject", "bob", "analyst", {"note": "no"}), "only a lead"),
    ([CLOSE_FP], ("reopen", "ana", "analyst", {}), "reopening a closed case must be"),
    ([ASSIGN, PROPOSE, APPROVE], ("reopen", "ana", "analyst", {"note": "appeal"}),
     "only a lead can reopen a case closed as misuse"),
])
def test_refused_transitions(steps: list[Step], step: Step, says: str) -> None:
    record = run(steps) if steps else None
    with pytest.raises(CaseError, match=says):
        run([step], record)


@pytest.mark.parametrize("action", [a for a in ACTIONS if a not in ("reopen", "note")])
def test_a_closed_case_takes_only_reopen_or_a_note(action: str) -> None:
    closed = run([ASSIGN, CLOSE_FP])
    kw = {"owner": "bob", "outcome": "justified", "note": "why"}
    with pytest.raises(CaseError, match="is closed"):
        run([(action, "lena", "lead", kw)], closed)


def test_closing_as_misuse_waits_for_a_lead_who_did_not_propose_it() -> None:
    proposed = run([ASSIGN, PROPOSE])
    assert proposed.proposed is not None and proposed.proposed.by == "ana"
    assert proposed.outcome is None and proposed.approved_by is None
    with pytest.raises(CaseError, match="only a lead can approve"):
        run([("approve", "bob", "analyst", {})], proposed)
    with pytest.raises(CaseError, match="a second person must approve"):
        run([("approve", "ana", "analyst", {})], proposed)
    # A lead's own proposal needs another lead.
    by_lead = run([("close", "lena", "lead", {"outcome": "misuse", "note": "clear"})])
    assert by_lead.status == "awaiting_approval"
    with pytest.raises(CaseError, match="a second person must approve: lena proposed"):
        run([APPROVE], by_lead)
    approved = run([("approve", "lars", "lead", {"note": "agreed"})], by_lead)
    assert (approved.status, approved.outcome, approved.approved_by) == (
        "closed", "misuse", "lars")
    last = approved.history[-1]
    assert (last.action, last.by, last.role, last.note) == ("approve", "lars", "lead", "agreed")
    assert approved.proposed is not None and approved.proposed.by == "lena"


def test_reject_returns_the_case_and_clears_the_proposal() -> None:
    rejected = run([ASSIGN, PROPOSE, ("reject", "lena", "lead", {"note": "duty roster"})])
    assert rejected.proposed is None and rejected.status == "investigating"
    # Proposed again after a rejection, it needs approving again.
    again = run([PROPOSE], rejected)
    assert again.status == "awaiting_approval" and again.approved_by is None
    assert run([APPROVE], again).approved_by == "lena"


def test_reopening_clears_the_outcome_and_the_approval() -> None:
    reopened = run([ASSIGN, PROPOSE, APPROVE, ("reopen", "lars", "lead", {"note": "appeal"})])
    assert (reopened.outcome, reopened.approved_by, reopened.proposed) == (None, None, None)
    closed = run([CLOSE_FP], reopened)
    assert closed.outcome == "false_positive" and closed.version == 5


def test_versions_count_notes_keep_and_alerts_are_pinned() -> None:
    one = run([("note", "ana", "analyst", {"note": "first look"})], alert_ids=["aw-2", "aw-1"])
    two = run([("assign", "lena", "lead", {"owner": "ana", "note": "yours"})], one,
              alert_ids=["aw-3"])
    assert (one.version, two.version) == (1, 2)
    assert one.alert_ids == ["aw-1", "aw-2"] and two.alert_ids == ["aw-1", "aw-2", "aw-3"]
    assert [(n.by, n.text) for n in two.notes] == [("ana", "first look"), ("lena", "yours")]
    assert two.created_at == AT and two.history[-1].owner == "ana"


def test_a_record_belongs_to_one_case_and_member() -> None:
    record = run([ASSIGN])
    with pytest.raises(CaseError, match="member E1's"):
        decide_case(record, "C-1", "E2", [], "refer", by="ana", role="analyst", at=AT)
    with pytest.raises(CaseError, match="member E1's"):
        decide_case(record, "C-2", "E1", [], "refer", by="ana", role="analyst", at=AT)


# --- the book ------------------------------------------------------------------------


def test_book_is_version_monotonic_and_ignores_tombstones() -> None:
    one = run([ASSIGN])
    two = run([CLOSE_FP], one)
    other = decide_case(None, "C-2", "E2", ["aw-9"], "refer", by="ana", role="analyst", at=AT)
    book = rebuild([(b"C-1", encode(one)), (b"C-2", encode(other)), (b"C-1", encode(two)),
                    (b"C-1", encode(one)),  # a stale replay: ignored
                    (b"C-1", None), (b"C-2", None),  # tombstones never erase a case
                    (b"C-3", b"not json"), (b"C-4", b'{"case_id": 4}')])
    assert book.get("C-1") == two and book.get("C-2") == other
    assert set(book.records) == {"C-1", "C-2"}
    assert (book.ignored_tombstones, book.invalid) == (2, 2)
    assert book.of_member("E1") == [two] and book.of_member("E404") == []
    assert not book.apply(two) and not book.apply(one)
    assert book.apply_record(b"C-1", encode(run([("note", "ana", "analyst",
                                                  {"note": "x"})], two)))
    assert book.get("C-1").version == 3  # type: ignore[union-attr]


def test_the_audit_line_is_the_step_that_made_the_record() -> None:
    record = run([ASSIGN, PROPOSE])
    line = decode_audit(encode(audit_step(record)))
    assert (line.case_id, line.version, line.step.action, line.step.outcome) == (
        "C-1", 2, "close", "misuse")


# --- grouping ------------------------------------------------------------------------


def at(alert_id: str, day: float, *, days: float = 0.0, score: float = 50.0,
       severity: str = "medium", rule_id: str = "AW-002", user_id: str = "E1") -> Alert:
    """An alert whose evidence spans ``day`` to ``day + days`` (days after 2 March 2026)."""
    a = alert(alert_id, user_id=user_id, rule_id=rule_id, severity=severity, score=score)
    return msgspec.structs.replace(a, first_seen=iso(day), last_seen=iso(day + days))


def iso(day: float) -> str:
    return datetime.fromtimestamp(START + day * DAY, UTC).isoformat().replace("+00:00", "Z")


def record(case_id: str, alert_ids: list[str], *, steps: list[Step] | None = None,
           when: str = AT, user_id: str = "E1") -> CaseRecord:
    r = None
    for action, by, role, kw in steps or [ASSIGN]:
        r = decide_case(r, case_id, user_id, alert_ids, action, by=by, role=role, at=when,
                        **kw)
    assert r is not None
    return r


def shape(views: list[console.cases.CaseView]) -> list[tuple[str, list[str]]]:
    return [(v.case_id, v.alert_ids) for v in views]


def test_alerts_within_the_gap_form_one_case_and_beyond_it_another() -> None:
    alerts = [at("aw-1", 0), at("aw-2", 6.9), at("aw-3", 13.8, days=1), at("aw-4", 21.9)]
    views = group("E1", alerts, [], GAP)
    first = derived_case_id("E1", "aw-1")
    second = derived_case_id("E1", "aw-4")
    assert shape(views) == [(first, ["aw-1", "aw-2", "aw-3"]), (second, ["aw-4"])]
    assert (views[0].first_seen, views[0].last_seen) == (alerts[0].first_seen,
                                                         alerts[2].last_seen)
    assert views[0].previous_case_id is None and views[1].previous_case_id == first
    assert first.startswith("C-") and len(first) == 14
    # Just beyond the gap from the last alert's end: a case of its own.
    assert len(group("E1", [at("aw-1", 0), at("aw-2", 7.01)], [], GAP)) == 2


def test_a_case_has_the_noisy_or_risk_the_top_severity_and_its_rules() -> None:
    alerts = [at("aw-1", 0, score=50, severity="medium", rule_id="AW-013"),
              at("aw-2", 1, score=20, severity="critical", rule_id="AW-002"),
              at("aw-3", 2, score=50, severity="low", rule_id="AW-013")]
    (view,) = group("E1", alerts, [], GAP)
    assert view.risk == 80.0  # 1 - 0.5 * 0.8 * 0.5
    assert view.severity == "critical" and view.rule_ids == ["AW-002", "AW-013"]
    assert (view.status, view.version, view.owner, view.record, view.alerts) == (
        "new", 0, None, None, 3)


def test_only_the_members_latest_alerts_count() -> None:
    newer = msgspec.structs.replace(at("aw-1", 0, score=90), version=2)
    views = group("E1", [at("aw-1", 0, score=10), newer, at("aw-9", 0, user_id="E2")], [],
                  GAP)
    assert shape(views) == [(derived_case_id("E1", "aw-1"), ["aw-1"])]
    assert views[0].risk == 90.0


def test_pinned_alerts_stay_in_their_case() -> None:
    # aw-3 is a month later, but the case's record pinned it: it stays.
    pinned = record("C-pinned", ["aw-1", "aw-3"])
    alerts = [at("aw-1", 0), at("aw-2", 1), at("aw-3", 30), at("aw-4", 31)]
    views = group("E1", alerts, [pinned], GAP)
    assert shape(views) == [("C-pinned", ["aw-1", "aw-2", "aw-3", "aw-4"])]
    assert views[0].status == "investigating" and views[0].record == pinned


def test_an_alert_pinned_twice_stays_with_the_earlier_record() -> None:
    early = record("C-early", ["aw-1", "aw-2"], when="2026-03-02T09:00:00Z")
    late = record("C-late", ["aw-2", "aw-3"], when="2026-03-03T09:00:00Z")
    alerts = [at("aw-1", 0), at("aw-2", 1), at("aw-3", 20)]
    for records in ([early, late], [late, early]):
        assert shape(group("E1", alerts, records, GAP)) == [
            ("C-early", ["aw-1", "aw-2"]), ("C-late", ["aw-3"])]


def test_an_unpinned_alert_joins_the_nearest_open_case() -> None:
    left = record("C-left", ["aw-1"])
    right = record("C-right", ["aw-3"])
    alerts = [at("aw-1", 0), at("aw-3", 10), at("aw-2", 7)]
    assert shape(group("E1", alerts, [left, right], GAP)) == [
        ("C-left", ["aw-1"]), ("C-right", ["aw-2", "aw-3"])]


def test_a_closed_case_takes_no_new_alerts() -> None:
    closed = record("C-closed", ["aw-1"], steps=[ASSIGN, CLOSE_FP])
    alerts = [at("aw-1", 0), at("aw-2", 1), at("aw-3", 2)]
    views = group("E1", alerts, [closed], GAP)
    fresh = derived_case_id("E1", "aw-2")
    assert shape(views) == [("C-closed", ["aw-1"]), (fresh, ["aw-2", "aw-3"])]
    assert views[0].status == "closed" and views[0].outcome == "false_positive"
    assert views[1].status == "new" and views[1].previous_case_id == "C-closed"


def test_a_closed_case_holding_the_derived_id_does_not_swallow_a_new_one() -> None:
    derived = derived_case_id("E1", "aw-1")
    closed = record(derived, ["aw-0"], steps=[ASSIGN, CLOSE_FP])  # aw-0 no longer held
    views = group("E1", [at("aw-1", 0)], [closed], GAP)
    assert [v.case_id for v in views][1:] == [derived]
    assert views[0].alert_ids == ["aw-1"] and views[0].case_id != derived
    assert views[1].alerts == 0 and views[1].first_seen == "" and views[1].severity == ""


def test_a_record_whose_alerts_are_gone_is_still_listed() -> None:
    gone = record("C-gone", ["aw-old"])
    views = group("E1", [at("aw-1", 0)], [gone], GAP)
    assert shape(views) == [(derived_case_id("E1", "aw-1"), ["aw-1"]), ("C-gone", [])]
    assert views[1].status == "investigating" and views[1].previous_case_id is None


def test_grouping_does_not_depend_on_the_order_things_arrive_in() -> None:
    rng = random.Random(19)
    alerts = [at(f"aw-{n:03d}", rng.uniform(0, 90), days=rng.choice([0, 0.5, 3]),
                 score=rng.uniform(5, 95), severity=rng.choice(["low", "high"]))
              for n in range(120)]
    alerts += [at("aw-tie-b", 40), at("aw-tie-a", 40)]  # the same time: the id decides
    records = [record("C-a", ["aw-005", "aw-050"]),
               record("C-b", ["aw-050", "aw-090"], when="2026-03-05T00:00:00Z"),
               record("C-c", ["aw-100"], steps=[ASSIGN, CLOSE_FP])]
    expected = group("E1", alerts, records, GAP)
    assert len(expected) > 3 and sum(v.alerts for v in expected) == len(alerts)
    for _ in range(20):
        rng.shuffle(alerts)
        rng.shuffle(records)
        assert group("E1", alerts, records, GAP) == expected
