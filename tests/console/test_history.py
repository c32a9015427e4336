"""The access history: repeats, offsets, retention, honest totals, filters, look-ups."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from accesswatch.contract.events import decode_event
from console.history import DAY_MS, HOUR_MS, History, HistoryEvent

T0 = 1772438400000  # 2026-03-02T08:00:00Z


def ev(n: int, *, user: str = "u1", t_ms: int | None = None, system: str = "PNC",
       action: str = "view", subject_type: str | None = "person",
       subject: str | None = "P1", case: str | None = None) -> HistoryEvent:
    t = T0 + n * 1000 if t_ms is None else t_ms
    return HistoryEvent(f"e{n}", t, f"t{n}", user, system, action, "T1", subject_type,
                        subject, case)


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    h = History(tmp_path / "history.sqlite3", retention_days=1, commit_after_s=0)
    yield h
    h.close()


def ids(rows: list[HistoryEvent]) -> list[str]:
    return [r.event_id for r in rows]


def test_a_repeated_event_changes_nothing(history: History) -> None:
    first = history.add([ev(1), ev(2), ev(1)], {0: 3})
    again = history.add([ev(2), ev(1)], {0: 5})
    rows, total = history.timeline("u1", 0, T0 + DAY_MS)
    assert (first, again) == (2, 0)
    assert (ids(rows), total) == (["e2", "e1"], 2)
    assert history.stats()["rows"] == 2


def test_restart_resumes_from_the_stored_offsets(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    h = History(path, retention_days=0)
    h.add([ev(1)], {0: 10, 1: 4})
    h.add([ev(2)], {1: 7, 2: 1})
    h.close()
    h = History(path, retention_days=0)
    try:
        assert h.offsets() == {0: 10, 1: 7, 2: 1}
        assert h.add([ev(1), ev(2)], {0: 11}) == 0  # read again after the restart
        assert h.stats()["rows"] == 2
    finally:
        h.close()


def test_rows_and_offsets_are_stored_together(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    h = History(path, retention_days=0, commit_rows=10**9, commit_after_s=3600)
    outside = sqlite3.connect(path)  # what a restart would find
    try:
        h.add([ev(1)], {0: 1})
        h.flush()
        h.add([ev(2)], {0: 2})
        assert outside.execute("SELECT count(*), (SELECT next_offset FROM offsets) "
                               "FROM events").fetchone() == (1, 1)
        with pytest.raises(sqlite3.Error):  # a value SQLite cannot store
            h.add([msgspec.structs.replace(ev(3), result_count=object())], {0: 3})  # type: ignore[arg-type]
        # The failed batch took the uncommitted one with it, offsets included.
        h.flush()
        assert h.offsets() == {0: 1}
        assert outside.execute("SELECT count(*) FROM events").fetchone() == (1,)
        h.add([ev(2)], {0: 2})
        h.flush()
        assert outside.execute("SELECT count(*), (SELECT next_offset FROM offsets) "
                               "FROM events").fetchone() == (2, 2)
    finally:
        outside.close()
        h.close()


def test_batches_become_readable_without_a_flush(tmp_path: Path) -> None:
    h = History(tmp_path / "h.sqlite3", retention_days=0, commit_after_s=0.05)
    try:
        h.add([ev(1)], {0: 1})
        deadline = time.monotonic() + 10
        while h.timeline("u1", 0, T0 + DAY_MS)[1] == 0:
            assert time.monotonic() < deadline, "never committed"
            time.sleep(0.01)
        assert h.offsets() == {0: 1}
    finally:
        h.close()


def test_a_read_does_not_wait_for_an_open_write(tmp_path: Path) -> None:
    h = History(tmp_path / "h.sqlite3", retention_days=0, commit_after_s=0)
    h.add([ev(1)], {0: 1})
    h.commit_after_s = 3600  # the next batch stays uncommitted: its write is open
    h.add([ev(2)], {0: 2})
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.append(h.timeline("u1", 0, T0 + DAY_MS)[1]))
    reader.start()
    reader.join(timeout=5)
    try:
        assert got == [1], "the read waited for the write or saw it uncommitted"
    finally:
        h.close()


def test_prune_drops_only_events_older_than_the_retention(history: History) -> None:
    now = T0 + 10 * DAY_MS
    history.add([ev(1, t_ms=now - DAY_MS - 1), ev(2, t_ms=now - DAY_MS),
                 ev(3, t_ms=now - 1000), ev(4, t_ms=T0)], {0: 4})
    assert history.prune(now) == 2
    rows, total = history.timeline("u1", 0, now)
    assert (ids(rows), total) == (["e3", "e2"], 2)
    assert history.stats()["rows"] == 2
    assert history.prune(now) == 0


def test_retention_zero_keeps_everything(tmp_path: Path) -> None:
    h = History(tmp_path / "h.sqlite3", retention_days=0, commit_after_s=0)
    try:
        h.add([ev(1, t_ms=0)], {})
        assert h.prune(T0) == 0
        assert h.stats()["rows"] == 1
    finally:
        h.close()


@pytest.mark.parametrize(("limit", "shown"), [(3, ["e9", "e8", "e7"]), (10, None), (50, None),
                                              (0, [])])
def test_the_total_counts_every_match_when_the_limit_cuts(history: History, limit: int,
                                                          shown: list[str] | None) -> None:
    history.add([ev(n) for n in range(10)] + [ev(99, user="u2")], {0: 11})
    rows, total = history.timeline("u1", 0, T0 + DAY_MS, limit=limit)
    assert total == 10
    assert ids(rows) == (shown if shown is not None else [f"e{n}" for n in range(9, -1, -1)])


def test_the_window_includes_both_ends(history: History) -> None:
    history.add([ev(n) for n in range(5)], {0: 5})
    rows, total = history.timeline("u1", T0 + 1000, T0 + 3000)
    assert (ids(rows), total) == (["e3", "e2", "e1"], 3)


@pytest.mark.parametrize(("filters", "expected"), [
    ({"system": "NICHE"}, ["e3", "e2"]),
    ({"action": "print"}, ["e2", "e1"]),
    ({"subject_type": "vehicle"}, ["e3"]),
    ({"system": "NICHE", "action": "print"}, ["e2"]),
    ({"system": "NONE"}, []),
])
def test_timeline_filters(history: History, filters: dict[str, str],
                          expected: list[str]) -> None:
    history.add([ev(0), ev(1, action="print"), ev(2, system="NICHE", action="print"),
                 ev(3, system="NICHE", subject_type="vehicle")], {0: 4})
    rows, total = history.timeline("u1", 0, T0 + DAY_MS, limit=1, **filters)  # type: ignore[arg-type]
    assert (ids(rows), total) == (expected[:1], len(expected))
    choices = history.choices("u1", 0, T0 + DAY_MS)
    assert choices == {"system": ["NICHE", "PNC"], "action": ["print", "view"],
                       "subject_type": ["person", "vehicle"]}


def test_hourly_counts_accesses_in_event_time(history: History) -> None:
    hour = T0 - T0 % HOUR_MS
    history.add([ev(1, t_ms=hour + 5), ev(2, t_ms=hour + HOUR_MS - 1),
                 ev(3, t_ms=hour + 3 * HOUR_MS), ev(4, t_ms=hour, user="u2")], {0: 4})
    assert history.hourly("u1", 0, hour + DAY_MS) == [(hour, 2), (hour + 3 * HOUR_MS, 1)]
    assert history.newest_of("u1") == hour + 3 * HOUR_MS
    assert history.newest_of("nobody") is None


def test_who_opened_a_subject(history: History) -> None:
    history.add([ev(1, user="u1", subject="P1"), ev(2, user="u2", subject="P1"),
                 ev(3, user="u3", subject="P2"), ev(4, user="u4", subject=None),
                 ev(5, user="u5", subject="P1")], {0: 5})
    rows, total = history.subject("P1", limit=2)
    assert ([(r.event_id, r.user_id) for r in rows], total) == ([("e5", "u5"), ("e2", "u2")], 3)
    rows, total = history.subject("P1", T0 + 2000, T0 + 4000)
    assert (ids(rows), total) == (["e2"], 1)
    assert history.subject("P9") == ([], 0)


def test_opens_of_watched_subjects(history: History) -> None:
    history.add([ev(n, subject=f"P{n % 3}") for n in range(9)], {0: 9})
    assert ids(history.opens_of({"P1", "P2"}, T0 + 2000, limit=10)) == [
        "e8", "e7", "e5", "e4", "e2"]
    assert ids(history.opens_of(["P1", "P2"], 0, limit=2)) == ["e8", "e7"]
    assert history.opens_of(set(), 0, limit=10) == []


def test_an_alerts_evidence_by_member_and_time(history: History) -> None:
    history.add([ev(1), ev(2), ev(3, user="u2"), ev(4)], {0: 4})
    # Alert times are cut to the millisecond, so the span is widened a little.
    found = history.events(["e1", "e2", "e3", "e4", "e404"], "u1", T0 + 1500, T0 + 2000)
    assert sorted(found) == ["e1", "e2"]
    assert found["e2"] == ev(2)
    assert history.events([], "u1", 0, T0) == {}


def test_stats(history: History) -> None:
    assert history.stats()["rows"] == 0
    assert history.stats()["oldest"] is None
    history.add([ev(1), ev(5)], {0: 2})
    s = history.stats()
    assert (s["rows"], s["oldest"], s["newest"]) == (2, "2026-03-02T08:00:01.000Z",
                                                     "2026-03-02T08:00:05.000Z")
    assert (s["oldest_ms"], s["newest_ms"]) == (T0 + 1000, T0 + 5000)
    assert s["bytes"] > 0


def test_an_event_is_kept_without_its_query_text() -> None:
    raw = (b'{"event_id":"e1","ts":"2026-03-02T08:00:00.250+00:00","user_id":"u1",'
           b'"terminal_id":"T1","system":"PNC","action":"search","subject_type":"person",'
           b'"subject_id":"P1","query":"SMITH JOHN","case_ref":"C1","result_count":3}')
    kept = HistoryEvent.of(decode_event(raw))
    assert kept == HistoryEvent("e1", T0 + 250, "2026-03-02T08:00:00.250+00:00", "u1", "PNC",
                                "search", "T1", "person", "P1", "C1", 3)
    assert b"SMITH" not in msgspec.json.encode(kept)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(ValueError, match="schema 99"):
        History(path, retention_days=0)
