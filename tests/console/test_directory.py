"""Cases, protected subjects and the watch-list, folded from their topics."""

from __future__ import annotations

import msgspec
import pytest

from accesswatch.contract.events import AccessEvent, decode_event
from accesswatch.contract.reference import decode_reference
from accesswatch.core.context import justifying_case_problem
from accesswatch.reference import ReferenceData
from console.directory import (
    CaseFacts,
    Protected,
    ProtectedSubjects,
    WatchEntry,
    WatchError,
    WatchItem,
    Watchlist,
    encode,
    watch_entry,
)
from console.history import HistoryEvent

T0 = 1772438400000  # 2026-03-02T08:00:00Z
HOUR = 3_600_000
GRACE_S = 48 * 3600
AT = "2026-03-02T09:00:00Z"
CASES = {
    "OPEN": {"status": "open", "assigned_users": ["u1"], "subject_ids": ["P1"],
             "opened_at": "2026-03-01T08:00:00Z"},
    "ANY": {"status": "open", "assigned_users": ["u1"]},
    "SHUT": {"status": "closed", "assigned_users": ["u1"], "opened_at": "2026-02-01T08:00:00Z",
             "closed_at": "2026-02-27T08:00:00Z"},
    "RECENT": {"status": "closed", "assigned_users": ["u1"], "closed_at": "2026-03-01T08:00:00Z"},
    "LATER": {"status": "open", "assigned_users": ["u1"], "opened_at": "2026-03-03T08:00:00Z"},
}


def case(ref: str) -> bytes:
    return msgspec.json.encode({"case_ref": ref, **CASES[ref]})


@pytest.fixture
def facts() -> CaseFacts:
    facts = CaseFacts(GRACE_S)
    for ref in CASES:
        assert facts.apply_record(ref.encode(), case(ref))
    return facts


def access(case_ref: str | None, *, user: str = "u1", subject: str | None = "P1",
           t_ms: int = T0) -> HistoryEvent:
    return HistoryEvent("e1", t_ms, "2026-03-02T08:00:00Z", user, "PNC", "view", "T1",
                        "person", subject, case_ref)


@pytest.mark.parametrize(("event", "why"), [
    (access("OPEN"), ""),
    (access("ANY", subject="P7"), ""),  # a case listing no subjects covers any
    (access("RECENT"), ""),  # closed a day ago: within the grace
    (access(None), "no case was given"),
    (access(""), "no case was given"),
    (access("NOPE"), "the case given (NOPE) does not exist"),
    (access("OPEN", user="u2"), "they are not assigned to the case given (OPEN)"),
    (access("OPEN", subject="P2"), "the case given (OPEN) does not list that record"),
    (access("SHUT"), "the case given (SHUT) was not open at the time"),
    (access("LATER"), "the case given (LATER) was not open at the time"),
    (access("RECENT", t_ms=T0 + 25 * HOUR), "the case given (RECENT) was not open at the time"),
])
def test_why_an_access_was_not_justified(facts: CaseFacts, event: HistoryEvent,
                                         why: str) -> None:
    assert facts.why_unjustified(event) == why


def test_it_says_what_the_core_says(facts: CaseFacts) -> None:
    ref = ReferenceData()
    for name in CASES:
        ref.apply("case", name, decode_reference("case", case(name)))
    for case_ref in (*CASES, None, "NOPE"):
        for user in ("u1", "u2"):
            for subject in ("P1", "P2", None):
                for t_ms in (T0 - 40 * 24 * HOUR, T0, T0 + 3 * 24 * HOUR):
                    ev = access(case_ref, user=user, subject=subject, t_ms=t_ms)
                    core = justifying_case_problem(_core_event(ev), subject, ref, GRACE_S)
                    assert facts.why_unjustified(ev) == core, ev


def _core_event(ev: HistoryEvent) -> AccessEvent:
    raw = {"event_id": ev.event_id, "ts": "2026-03-02T08:00:00Z", "user_id": ev.user_id,
           "terminal_id": "T1", "system": "PNC", "action": "view",
           "subject_id": ev.subject_id, "case_ref": ev.case_ref}
    event = decode_event(msgspec.json.encode(raw))
    event.t = ev.t_ms / 1000
    return event


def test_a_case_is_described_as_judged(facts: CaseFacts) -> None:
    assert facts.describe("SHUT") == {
        "case_ref": "SHUT", "status": "closed", "area": None, "assigned_users": ["u1"],
        "subject_ids": [], "opened_at": "2026-02-01T08:00:00.000Z",
        "closed_at": "2026-02-27T08:00:00.000Z"}
    assert facts.describe("NOPE") is None


def test_case_updates_and_tombstones_apply(facts: CaseFacts) -> None:
    assert facts.apply_record(b"OPEN", msgspec.json.encode(
        {"case_ref": "OPEN", **CASES["OPEN"], "assigned_users": ["u2"]}))
    assert facts.why_unjustified(access("OPEN")) == (
        "they are not assigned to the case given (OPEN)")
    assert facts.apply_record(b"OPEN", None)
    assert facts.why_unjustified(access("OPEN")) == "the case given (OPEN) does not exist"
    assert len(facts) == len(CASES) - 1


@pytest.mark.parametrize(("key", "value"), [
    (b"X", b"{not json"),
    (b"X", b"\xff\xfe"),
    (b"X", b'{"case_ref":"X","status":"maybe","assigned_users":[]}'),
    (b"X", b'{"case_ref":"X","status":"open","assigned_users":[],"opened_at":"yesterday"}'),
    (b"OTHER", b'{"case_ref":"X","status":"open","assigned_users":["u1"]}'),
    (None, None),
    (b"X", b"[" * 100_000),
])
def test_invalid_case_records_are_refused(facts: CaseFacts, key: bytes | None,
                                          value: bytes | None) -> None:
    assert facts.apply_record(key, value) is False
    assert facts.why_unjustified(access("X")) == "the case given (X) does not exist"


def subject(sid: str, *flags: str, kind: str = "person") -> bytes:
    return msgspec.json.encode({"subject_id": sid, "subject_type": kind, "surname": "Smith",
                                "postcode": "LS1 4AP", "flags": list(flags)})


def test_only_protected_subjects_are_held() -> None:
    subjects = ProtectedSubjects()
    assert subjects.apply_record(b"P1", subject("P1", " Victim ", "firearms"))
    assert subjects.apply_record(b"P2", subject("P2", "stolen"))
    assert subjects.apply_record(b"V1", subject("V1", "vip", "staff", kind="vehicle"))
    assert subjects.subjects == {"P1": Protected("person", ("victim",)),
                                 "V1": Protected("vehicle", ("staff", "vip"))}
    assert "Smith" not in repr(subjects.subjects)


def test_protection_follows_updates_and_tombstones() -> None:
    subjects = ProtectedSubjects()
    subjects.apply_record(b"P1", subject("P1", "victim"))
    subjects.apply_record(b"P2", subject("P2", "restricted"))
    assert subjects.apply_record(b"P1", subject("P1"))  # flag removed
    assert subjects.apply_record(b"P2", None)
    assert subjects.apply_record(b"P3", None)  # never held: nothing to do
    assert subjects.subjects == {}


@pytest.mark.parametrize(("key", "value"), [
    (b"P9", b"{"),
    (b"P9", b'{"subject_id":"P9","subject_type":"planet","flags":["vip"]}'),
    (b"OTHER", subject("P9", "vip")),
    (b"\xff", subject("P9", "vip")),
    (None, None),
])
def test_invalid_subject_records_are_refused(key: bytes | None, value: bytes | None) -> None:
    subjects = ProtectedSubjects()
    assert subjects.apply_record(key, value) is False
    assert subjects.subjects == {}


def entry(sid: str, reason: str = "victim of DV", by: str = "lena", at: str = AT) -> bytes:
    return encode(watch_entry(sid, reason, by=by, at=at))


@pytest.fixture
def watchlist() -> Watchlist:
    subjects = ProtectedSubjects()
    subjects.apply_record(b"P1", subject("P1", "victim"))
    subjects.apply_record(b"P2", subject("P2", "vip", "staff"))
    return Watchlist(subjects)


def test_the_watch_list_merges_the_reference_and_the_console(watchlist: Watchlist) -> None:
    assert watchlist.apply_record(b"P2", entry("P2", "chief constable's family"))
    assert watchlist.apply_record(b"P3", entry("P3", "witness", by="ana"))
    assert watchlist.entries() == [
        WatchItem("P1", "reference", "person", ("victim",), "flagged victim"),
        WatchItem("P2", "console", "person", ("staff", "vip"), "chief constable's family",
                  "lena", AT),
        WatchItem("P3", "console", None, (), "witness", "ana", AT),
    ]
    assert watchlist.subject_ids() == {"P1", "P2", "P3"}
    assert watchlist.get("P4") is None


def test_a_tombstone_takes_a_console_entry_off(watchlist: Watchlist) -> None:
    watchlist.apply_record(b"P2", entry("P2"))
    watchlist.apply_record(b"P3", entry("P3"))
    assert watchlist.apply_record(b"P2", None)
    assert watchlist.apply_record(b"P3", None)
    assert [(i.subject_id, i.source) for i in watchlist.entries()] == [
        ("P1", "reference"), ("P2", "reference")]


def test_a_later_entry_replaces_an_earlier_one(watchlist: Watchlist) -> None:
    watchlist.apply_record(b"P3", entry("P3", "first"))
    watchlist.apply_record(b"P3", entry("P3", "second", by="ana"))
    assert watchlist.added == {"P3": WatchEntry("P3", "second", "ana", AT)}


@pytest.mark.parametrize(("key", "value"), [
    (b"P3", b"not json"),
    (b"P3", b'{"subject_id":"P3","reason":"x","by":"lena"}'),
    (b"P3", b'{"subject_id":"P3","reason":"x","by":"lena","at":"last week"}'),
    (b"P3", b'{"subject_id":"","reason":"x","by":"lena","at":"2026-03-02T09:00:00Z"}'),
    (b"P3", msgspec.json.encode({"subject_id": "P3", "reason": "x" * 501, "by": "lena",
                                 "at": AT})),
    (b"P4", b'{"subject_id":"P3","reason":"x","by":"lena","at":"2026-03-02T09:00:00Z"}'),
    (None, None),
])
def test_invalid_watch_records_are_refused(watchlist: Watchlist, key: bytes | None,
                                           value: bytes | None) -> None:
    assert watchlist.apply_record(key, value) is False
    assert watchlist.added == {}


@pytest.mark.parametrize(("sid", "reason", "problem"), [
    ("", "why", "subject id"),
    ("P" * 129, "why", "subject id"),
    ("P1", "  ", "say why"),
    ("P1", "x" * 501, "longer than 500"),
])
def test_a_new_entry_is_checked(sid: str, reason: str, problem: str) -> None:
    with pytest.raises(WatchError, match=problem):
        watch_entry(sid, reason, by="lena", at=AT)
