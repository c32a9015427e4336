"""The national-scale section of ``make bench``: its merge, keyed records, alert
comparison and report (the run itself needs a broker and minutes: ``make bench``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from benchmarks.broker import LiveBenchError
from benchmarks.national import (
    _keyed,
    compare_alerts,
    failure,
    merge,
    report_national,
    snapshot_used,
)
from benchmarks.run import splice

ALERT = {"alert_id": "aw-1", "created_at": "2026-03-02T09:14:03Z", "user_id": "E00412",
         "rule_id": "R01", "title": "t", "severity": "high", "score": 80.0,
         "event_ids": ["e1", "e2"], "reasons": ["r"], "first_seen": "2026-03-02T09:00:00Z",
         "last_seen": "2026-03-02T09:10:00Z", "count": 2}


def test_merge_concatenates_each_kind_and_ends_every_line(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "staff.jsonl").write_bytes(b'{"user_id":"A"}\n\n{"user_id":"B"}')  # no final newline
    (b / "staff.jsonl").write_bytes(b'{"user_id":"NU1"}\n')
    (a / "subjects.jsonl").write_bytes(b'{"subject_id":"S1"}\n')
    counts = merge([a, b], tmp_path / "out")
    assert counts == {"staff": 3, "subject": 1, "case": 0, "duty": 0}
    assert (tmp_path / "out" / "staff.jsonl").read_bytes() == (
        b'{"user_id":"A"}\n{"user_id":"B"}\n{"user_id":"NU1"}\n')


def test_keyed_lines_carry_the_key_field_and_refuse_an_invalid_record() -> None:
    rows = [b'{"duty_id":"D1","user_id":"E1","start":"2026-03-01T08:00:00Z",'
            b'"end":"2026-03-01T18:00:00Z"}\n', b"\n"]
    out = b"".join(_keyed("duty", rows))
    assert out == b"D1\t" + rows[0]
    with pytest.raises(LiveBenchError, match="duty line 1"):
        list(_keyed("duty", [b'{"duty_id":"D1"}\n']))


def test_alerts_compare_by_content_not_publish_fields() -> None:
    live = {"aw-1": {**ALERT, "created_at": "2026-12-06T10:00:00Z", "version": 3,
                     "updated_at": "2026-12-06T10:01:00Z", "subject_ids": []}}
    r = compare_alerts(live, {"aw-1": ALERT})
    assert r == {"alerts": 1, "ids_equal": True, "content_equal": True}


def test_alerts_that_differ_are_counted_by_rule_and_field() -> None:
    other = {**ALERT, "alert_id": "aw-2", "rule_id": "R02"}
    live = {"aw-1": {**ALERT, "count": 3, "event_ids": ["e1", "e2", "e3"]}}
    r = compare_alerts(live, {"aw-1": ALERT, "aw-2": other})
    assert not r["ids_equal"] and not r["content_equal"]
    assert r["only_backtest_by_rule"] == {"R02": 1} and r["only_live_by_rule"] == {}
    assert r["different_by_rule"] == {"R01": 1}
    assert r["different_fields"] == {"count": 1, "event_ids": 1}


@pytest.mark.parametrize(("existed", "said", "used"), [
    (False, [], False),
    (True, ["INFO reference data: loaded snapshot of 6,512,000 records"], True),
    (True, ["WARNING reference snapshot refused (foreign): rebuilding from the topics"], False),
    (True, ["INFO wrote reference snapshot: 6,512,000 records"], False),
    (False, ["INFO reference data: loaded snapshot"], False),
])
def test_snapshot_used_only_when_one_was_there_and_loaded(existed: bool, said: list[str],
                                                         used: bool) -> None:
    assert snapshot_used(existed, said) is used


def _result() -> dict[str, Any]:
    memory = {"rss_mb": 900.0, "peak_rss_mb": 1200.0}
    start = {"healthy_seconds": 30.0, "owning_seconds": 31.0, "at_healthy": memory,
             "after_events": memory, "events_per_s": 5000, "events_per_batch_s": 20000,
             "snapshot_before": False, "snapshot_used": False}
    same = {"alerts": 8, "ids_equal": True, "content_equal": True}
    return {"staff": 50_000, "subjects": 5_000_000, "cases": 1_250_000, "duties": 400_000,
            "padding_staff": 48_000, "padding_subjects": 4_937_675,
            "reference_records": 6_650_000, "records_on_topics": 6_650_000, "seed": 7,
            "events": 55_213, "load": "kcat", "load_seconds": 60.0, "load_records_per_s": 110_000,
            "cold": start, "restart": {**start, "owning_seconds": 8.0, "snapshot_before": True,
                                       "snapshot_used": True},
            "snapshot_mb": 400.0, "backtest_alerts": 8, "alerts_cold": {**same, "records": 12},
            "alerts_restart": {**same, "records": 12, "republished": 0}}


def test_the_report_gives_each_target_its_verdict() -> None:
    r = _result()
    text = report_national(r)
    assert text.startswith("\n## Reference data at national scale\n")
    assert text.count(": met") == 7 and "not met" not in text  # cold RSS: two rows
    together = copy.deepcopy(r)  # the worker within, but not with its second reader beside
    together["cold"].update(second_reader_peak_mb=700.0, peak_with_children_mb=1600.0)
    assert report_national(together).count("**not met**") == 2
    worse = copy.deepcopy(r)
    worse["restart"]["snapshot_used"] = False
    worse["cold"]["after_events"] = {"rss_mb": 1000.0, "peak_rss_mb": 2000.0}
    worse["alerts_restart"] = {"alerts": 9, "ids_equal": False, "content_equal": False,
                               "only_live_by_rule": {"R01": 1}, "only_backtest_by_rule": {},
                               "records": 13, "republished": 1}
    text = report_national(worse)
    assert text.count("**not met**") == 4 and "no snapshot used" in text
    assert "ids **differ**" in text and "R01 ×1" in text


def test_a_failed_run_is_reported_and_spliced_in_alone() -> None:
    r = {"error": "LiveBenchError: kcat to bench.national.ref.staff failed"}
    assert failure(r) == f"national scale failed: {r['error']}"
    assert failure(_result()) is None
    doc = "# Benchmarks\n\n## Live throughput\n\nfigures\n\n## Reproduce\n\nmake bench\n"
    once = splice(doc, report_national(r))
    assert "Failed in this run" in once and once.index("national scale") < once.index("Reproduce")
    again = splice(once, report_national(_result()))
    assert again.count("## Reference data at national scale") == 1
    assert "Failed in this run" not in again and "figures" in again
