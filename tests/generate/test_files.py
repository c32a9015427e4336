"""The generated files: determinism, the wire contract, ordering and ids."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from accesswatch.generate import generate_force
from tests.generate.gen_feed import SMALL, START, Feed, instant, schema_dir

FILES = (
    "events.jsonl",
    "staff.jsonl",
    "subjects.jsonl",
    "cases.jsonl",
    "duties.jsonl",
    "labels.json",
)
SCHEMAS = {
    "events.jsonl": "access_event",
    "staff.jsonl": "staff",
    "subjects.jsonl": "subject",
    "cases.jsonl": "case",
    "duties.jsonl": "duty",
}


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((schema_dir() / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def invalid_lines(path: pathlib.Path, schema: str) -> list[str]:
    v = validator(schema)
    bad = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad.append(line)
            continue
        if next(v.iter_errors(record), None) is not None:
            bad.append(line)
    return bad


def test_format_checker_rejects_zoneless_time() -> None:
    # Guards the schema tests below: without rfc3339-validator, date-time is not checked at all.
    v = validator("duty")
    assert not v.is_valid(
        {"duty_id": "d", "user_id": "u", "start": "2026-03-02T07:00:00", "end": "x"}
    )


def test_same_seed_same_bytes_and_new_seed_differs(tmp_path: pathlib.Path, feed: Feed) -> None:
    again = tmp_path / "again"
    other = tmp_path / "other"
    # Another process with another string-hash seed: set iteration order must not matter.
    script = (
        "import datetime, pathlib; from accesswatch.generate import generate_force; "
        f"generate_force(pathlib.Path({str(again)!r}), **{SMALL!r})"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run(
        [sys.executable, "-c", script], check=True, env=env, cwd=pathlib.Path(__file__).parents[2]
    )
    generate_force(other, **{**SMALL, "seed": SMALL["seed"] + 1})
    for name in FILES:
        assert (again / name).read_bytes() == (feed.path / name).read_bytes(), name
    assert (other / "events.jsonl").read_bytes() != (feed.path / "events.jsonl").read_bytes()
    assert (other / "staff.jsonl").read_bytes() != (feed.path / "staff.jsonl").read_bytes()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_line_meets_the_contract(feed: Feed, name: str) -> None:
    assert invalid_lines(feed.path / name, SCHEMAS[name]) == []


def test_labels_have_exactly_the_agreed_shape(feed: Feed) -> None:
    labels = feed.labels
    assert set(labels) == {"generator", "seed", "staff", "days", "incidents"}
    assert (labels["seed"], labels["staff"], labels["days"]) == (
        SMALL["seed"],
        SMALL["staff"],
        SMALL["days"],
    )
    assert isinstance(labels["generator"], str) and labels["generator"]
    ids = [i["incident_id"] for i in labels["incidents"]]
    assert len(ids) == len(set(ids))
    for inc in labels["incidents"]:
        assert set(inc) == {
            "incident_id",
            "scenario",
            "user_id",
            "event_ids",
            "first_ts",
            "last_ts",
        }
        times = [feed.by_id[e]["_t"] for e in inc["event_ids"]]
        assert instant(inc["first_ts"]) == pytest.approx(min(times))
        assert instant(inc["last_ts"]) == pytest.approx(max(times))


def test_events_sorted_by_instant_with_unique_ids(feed: Feed) -> None:
    times = [e["_t"] for e in feed.events]
    assert times == sorted(times)
    ids = [e["event_id"] for e in feed.events]
    assert len(ids) == len(set(ids))
    start = START.timestamp()
    assert start <= times[0] and times[-1] < start + SMALL["days"] * 86400


def test_keys_are_unique(feed: Feed) -> None:
    for name, key in (
        ("staff.jsonl", "user_id"),
        ("subjects.jsonl", "subject_id"),
        ("cases.jsonl", "case_ref"),
        ("duties.jsonl", "duty_id"),
    ):
        keys = [json.loads(line)[key] for line in (feed.path / name).read_text().splitlines()]
        assert len(keys) == len(set(keys)), name


def test_references_resolve(feed: Feed) -> None:
    for e in feed.events:
        assert e["user_id"] in feed.staff
        if e.get("subject_id"):
            assert e["subject_id"] in feed.subjects
            assert feed.subjects[e["subject_id"]]["subject_type"] == e["subject_type"]
    for c in feed.cases.values():
        assert all(u in feed.staff for u in c["assigned_users"])
        assert all(s in feed.subjects for s in c.get("subject_ids", []))
        assert (c["status"] == "closed") == (c.get("closed_at") is not None)
    for person, user in feed.staff_person_ids.items():
        assert feed.subjects[person]["subject_type"] == "person", user


def test_summary_counts_match_files(feed: Feed) -> None:
    s = feed.summary
    assert s["events"] == len(feed.events)
    assert s["staff"] == len(feed.staff) == SMALL["staff"]
    assert s["subjects"] == len(feed.subjects)
    assert s["cases"] == len(feed.cases)
    assert s["duties"] == sum(len(v) for v in feed.duties.values())
    assert sum(s["incidents"].values()) == len(feed.labels["incidents"])


def test_invalid_lines_are_exactly_the_requested_number(tmp_path: pathlib.Path) -> None:
    generate_force(tmp_path, staff=60, days=3, seed=3, invalid_lines=5)
    bad = invalid_lines(tmp_path / "events.jsonl", "access_event")
    assert len(bad) == 5
    labelled = {
        e
        for i in json.loads((tmp_path / "labels.json").read_text())["incidents"]
        for e in i["event_ids"]
    }
    for line in bad:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            assert record.get("event_id") not in labelled


def test_realistic_volume_and_mix(feed: Feed) -> None:
    per_member_day = len(feed.events) / SMALL["staff"] / SMALL["days"]
    assert 10 < per_member_day < 60
    actions = [e["action"] for e in feed.events if e["event_id"] not in feed.labelled]
    assert actions.count("view") + actions.count("search") > 0.85 * len(actions)
    assert 0 < actions.count("export") < actions.count("print") < actions.count("update")
    assert {e["system"] for e in feed.events} >= {"PNC", "PND", "NICHE", "ATHENA", "STORM"}
