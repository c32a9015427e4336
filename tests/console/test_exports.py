"""Exports: the CSV of a view, and a case's evidence pack (files, hashes, escaping)."""

from __future__ import annotations

import csv
import doctest
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

import console.exports
from console.cases import CaseView, decide_case, group
from console.exports import (
    ALERT_COLUMNS,
    PACK_FILES,
    alerts_csv,
    cases_csv,
    evidence_filename,
    evidence_pack,
)
from console.history import HistoryEvent
from console.store import StaffInfo
from console.triage import decide
from tests.console.helpers import QUERY_TEXT, alert

AT = "2026-03-02T12:00:00Z"
HOSTILE = "<script>alert(1)</script>"
FORMULAS = ["=1+2", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx"]


def test_the_doctests_hold() -> None:
    assert doctest.testmod(console.exports).failed == 0


def parse(lines: Iterator[str]) -> list[list[str]]:
    return list(csv.reader(io.StringIO("".join(lines))))


def test_alerts_csv_has_the_listing_columns_and_safe_cells() -> None:
    rows = [{"alert_id": f"aw-{n}", "reason": text, "title": "a, \"quoted\"\nline",
             "score": 70.5, "assignee": None, "case_id": "C-1"}
            for n, text in enumerate(FORMULAS)]
    table = parse(alerts_csv(rows))
    assert tuple(table[0]) == ALERT_COLUMNS and len(table) == 1 + len(rows)
    reason, title = ALERT_COLUMNS.index("reason"), ALERT_COLUMNS.index("title")
    assert [r[reason] for r in table[1:]] == ["'" + f for f in FORMULAS]
    assert {r[title] for r in table[1:]} == {"a, \"quoted\"\nline"}
    assert table[1][ALERT_COLUMNS.index("assignee")] == ""
    assert table[1][ALERT_COLUMNS.index("score")] == "70.5"


def test_alerts_csv_streams_one_row_at_a_time() -> None:
    pulled: list[int] = []

    def rows() -> Iterator[dict[str, Any]]:
        for n in range(3):
            pulled.append(n)
            yield {"alert_id": f"aw-{n}"}

    lines = alerts_csv(rows())
    assert next(lines).startswith("alert_id,") and pulled == []
    assert next(lines).startswith("aw-0,") and pulled == [0]
    assert len(list(lines)) == 2 and pulled == [0, 1, 2]


def test_cases_csv_joins_lists_with_spaces() -> None:
    table = parse(cases_csv([{"case_id": "C-1", "rule_ids": ["AW-002", "AW-013"],
                              "owner": "=evil()"}]))
    row = dict(zip(table[0], table[1], strict=True))
    assert row["rule_ids"] == "AW-002 AW-013" and row["owner"] == "'=evil()"


def test_evidence_filename_is_safe_in_a_header() -> None:
    assert evidence_filename("C-0123456789ab") == "evidence-C-0123456789ab.zip"
    assert re.fullmatch(r"evidence-[\w.-]+\.zip", evidence_filename('x"\r\n; a=<b>/..\\'))


# --- the evidence pack ---------------------------------------------------------------


def hostile_case() -> tuple[CaseView, dict[str, Any]]:
    """A case closed as misuse with a lead's approval, every free text hostile."""
    a1 = alert("aw-1", reasons=[f"opened P-204 {HOSTILE}"], title=f"Relative {HOSTILE}")
    a2 = msgspec.structs.replace(alert("aw-2", rule_id="AW-013", score=40.0),
                                 first_seen="2026-03-03T08:00:00Z",
                                 last_seen="2026-03-03T08:05:00Z")
    r = None
    for action, by, role, kw in [
            ("assign", "ana", "analyst", {"owner": "ana"}),
            ("note", "ana", "analyst", {"note": HOSTILE}),
            ("close", "ana", "analyst", {"outcome": "misuse", "note": "no case & no duty"}),
            ("approve", "lena", "lead", {"note": "agreed"})]:
        r = decide_case(r, "C-abc", "E00412", ["aw-1", "aw-2"], action, by=by, role=role,
                        at=AT, **kw)
    assert r is not None
    (view,) = group("E00412", [a1, a2], [r], 7 * 86400)
    triage = decide(None, "aw-1", "misuse", by="ana", at=AT, note=f"triage {HOSTILE}")
    timeline = [
        HistoryEvent(event_id="ev-1", t_ms=1772442600000, ts="2026-03-02T09:10:00Z",
                     user_id="E00412", system="PNC", action="view", terminal_id="T1",
                     subject_type="person", subject_id="P-204"),
        {"event_id": "ev-2", "ts": "2026-03-02T09:14:00Z", "user_id": "E00412",
         "system": "NICHE", "action": "search", "terminal_id": "T1", "query": QUERY_TEXT,
         "case_ref": f"CR-{HOSTILE}", "justified": False, "why": f"no case {HOSTILE}",
         "alert_ids": ["aw-1"]},
    ]
    kwargs: dict[str, Any] = {
        "alerts": [a2, a1], "decisions": {"aw-1": triage}, "timeline": timeline,
        "member": StaffInfo("PC", f"Unit {HOSTILE}", "North", "active"),
        "reference": {"cases": [{"case_ref": "CR-1", "assigned": ["E00412", HOSTILE]}],
                      "protected": {"P-204": ["victim"]}, "note": HOSTILE},
        "generated_by": f"lena{HOSTILE}", "at": AT, "timeline_total": 7,
        "why": lambda ev: "no case was given"}
    return view, kwargs


def unzip(pack: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(pack)) as z:
        assert z.testzip() is None
        return {name: z.read(name) for name in z.namelist()}


def test_the_pack_holds_its_files_in_order_and_the_manifest_hashes_them() -> None:
    view, kwargs = hostile_case()
    pack = evidence_pack(case=view, **kwargs)
    files = unzip(pack)
    assert list(files) == [*PACK_FILES, "manifest.json"]
    manifest = json.loads(files["manifest.json"])
    assert manifest["case_id"] == "C-abc" and manifest["generated_at"] == AT
    assert [f["name"] for f in manifest["files"]] == list(PACK_FILES)
    for entry in manifest["files"]:
        body = files[entry["name"]]
        assert entry["sha256"] == hashlib.sha256(body).hexdigest()
        assert entry["bytes"] == len(body)
    assert evidence_pack(case=view, **kwargs) == pack  # the same input, the same bytes


def test_the_pack_json_holds_the_case_alerts_triage_and_timeline() -> None:
    view, kwargs = hostile_case()
    files = unzip(evidence_pack(case=view, **kwargs))
    case = json.loads(files["case.json"])
    assert case["case"]["status"] == "closed" and case["case"]["outcome"] == "misuse"
    assert case["case"]["record"]["approved_by"] == "lena"
    assert case["member"] == {"user_id": "E00412", "role": "PC", "unit": f"Unit {HOSTILE}",
                              "area": "North", "status": "active"}
    assert [a["alert_id"] for a in json.loads(files["alerts.json"])] == ["aw-1", "aw-2"]
    triage = json.loads(files["triage.json"])
    assert [s["action"] for s in triage["case"]["history"]] == [
        "assign", "note", "close", "approve"]
    assert list(triage["alerts"]) == ["aw-1"]
    timeline = json.loads(files["timeline.json"])
    assert timeline["total"] == 7
    first, second = timeline["events"]
    assert "t_ms" not in first and first["why"] == "no case was given"
    assert first["justified"] is False
    assert second["why"] == f"no case {HOSTILE}" and "query" not in second
    assert json.loads(files["reference.json"])["protected"] == {"P-204": ["victim"]}


def test_no_file_in_the_pack_holds_query_text() -> None:
    view, kwargs = hostile_case()
    for name, body in unzip(evidence_pack(case=view, **kwargs)).items():
        assert QUERY_TEXT.encode() not in body, name


def test_the_summary_escapes_every_hostile_value_and_runs_nothing() -> None:
    view, kwargs = hostile_case()
    page = unzip(evidence_pack(case=view, **kwargs))["summary.html"].decode()
    assert "<script" not in page.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # Every place a hostile value went: note, reason, title, unit, why, case ref, reference,
    # triage note, the generating user.
    assert page.count("&lt;script&gt;") >= 9
    assert "<title>Evidence pack: case C-abc</title>" in page
    assert "default-src &#x27;none&#x27;" not in page and "default-src 'none'" in page
    assert not re.search(r"""(?:src|href)\s*=|@import|url\(""", page)
    for text in ("misuse proposed by ana", "approved by lena", "E00412", "North",
                 "2 of 7 accesses", "no case was given", "AW-013", "Case history",
                 "Triage of its alerts", "Reference facts", "Risk"):
        assert text in page, text
    for name in PACK_FILES[:-1]:
        assert name in page


@pytest.mark.parametrize(("steps", "says"), [
    ([], "none"),
    ([("close", "ana", "analyst", {"outcome": "misuse", "note": "no duty"})],
     "awaiting a lead&#x27;s approval"),
    ([("close", "ana", "analyst", {"outcome": "justified", "note": "case CR-1"})],
     "not needed"),
])
def test_the_summary_says_where_the_approval_stands(steps: list[tuple[str, str, str, dict]],
                                                    says: str) -> None:
    a = alert("aw-1")
    r = None
    for action, by, role, kw in steps:
        r = decide_case(r, "C-x", "E00412", ["aw-1"], action, by=by, role=role, at=AT, **kw)
    (view,) = group("E00412", [a], [r] if r else [], 7 * 86400)
    pack = evidence_pack(case=view, alerts=[a], decisions={}, timeline=[], member=None,
                         reference={}, generated_by="ana", at=AT)
    page = unzip(pack)["summary.html"].decode()
    assert re.search(r"<dt>Approval</dt><dd>[^<]*" + re.escape(says), page)
    assert "not in the staff directory" in page and "0 accesses" in page
