"""The investigation workspace against the real broker: the history fed from
``access.events``, judgements from ``ref.cases``, protected subjects from
``ref.subjects``, and cases that survive a restart (and a stray tombstone)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from console.config import ConsoleSettings, console_topic_specs
from streams.settings import Settings
from streams.topics import create_topics
from tests.console.helpers import PASSWORDS, QUERY_TEXT, users_yaml
from tests.console.live import ConsoleProcess, Session, alert, event, producer, send
from tests.streams.conftest import wait_until

pytestmark = pytest.mark.broker
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)


def test_history_cases_and_the_subjects_side_from_the_topics_and_over_a_restart(
        live_settings: Settings, live_env: dict[str, str], tmp_path: Path) -> None:
    s = ConsoleSettings(_env_file=None)  # type: ignore[call-arg]
    create_topics(s)
    create_topics(s, console_topic_specs(s))
    p = producer(s)
    for user, area in (("E1", "North"), ("E2", "South")):
        send(p, s.topic_ref_staff, user, {"user_id": user, "surname": "X", "role": "constable",
                                          "unit": "Response", "area": area, "status": "active"})
    send(p, s.topic_ref_cases, "CASE-1", {"case_ref": "CASE-1", "status": "open",
                                          "assigned_users": ["E1"], "subject_ids": ["P-1"],
                                          "opened_at": "2026-02-01T00:00:00Z"})
    send(p, s.topic_ref_subjects, "P-VIC", {"subject_id": "P-VIC", "subject_type": "person",
                                            "surname": "Y", "flags": ["victim"]})
    events = [
        event("w-e1", "E1", T0, "view", "P-1", "CASE-1"),          # justified
        event("w-e2", "E1", T0 + MIN, "view", "P-VIC", None),      # no case
        event("w-e3", "E2", T0 + 2 * MIN, "view", "P-VIC", "CASE-1"),  # not assigned
        event("w-e4", "E1", T0 + 3 * MIN, "search", None, None),
    ]
    for e in [*events, events[1]]:  # a repeated delivery of w-e2
        send(p, s.topic_events, e["user_id"], e)
    p.send(s.topic_events, key=b"E1", value=b"\xff not json").get(timeout=30)  # poison
    send(p, s.topic_alerts, "E1", alert("aw-w1", "E1", "AW-006", "Victim's record opened",
                                        "high", 70.0, T0 + 5 * MIN, ["w-e2"],
                                        ["opened a victim's record with no case"],
                                        first_seen=T0 + MIN))
    users = users_yaml(tmp_path / "users.yaml")
    console = ConsoleProcess(live_env, tmp_path, users)
    try:
        console.wait_ready()
        ana = Session(console.url, "ana", PASSWORDS["ana"])
        wait_until(lambda: ana.get("/api/me")["history"]["rows"] == 4, 30,
                   "the history to hold the four distinct events")

        line = ana.get("/api/members/E1/timeline")
        assert [e["event_id"] for e in line["events"]] == ["w-e1", "w-e2", "w-e4"]
        judged = {e["event_id"]: (e["justified"], e["why"]) for e in line["events"]}
        assert judged["w-e1"] == (True, "")
        assert judged["w-e2"] == (False, "no case was given")
        assert line["events"][1]["alert_ids"] == ["aw-w1"]
        assert QUERY_TEXT not in str(line)

        side = ana.get("/api/subjects/P-VIC")
        assert side["subject"]["flags"] == ["victim"]
        assert [(a["user_id"], a["justified"]) for a in side["accesses"]] == [
            ("E2", False), ("E1", False)]
        assert "not assigned" in side["accesses"][0]["why"]
        watch = ana.get("/api/watchlist")
        assert [w["subject_id"] for w in watch["subjects"]] == ["P-VIC"]
        assert {o["event_id"] for o in watch["opens"]} == {"w-e2", "w-e3"}

        case_id = ana.get("/api/alerts")["alerts"][0]["case_id"]
        status, out = ana.post(f"/api/cases/{case_id}", {"action": "assign", "owner": "ana"})
        assert status == 200, out
        assert console.stop() == 0

        # A stray tombstone on the cases topic, and one more event, while it is down.
        p.send(s.cases_topic, key=case_id.encode(), value=None).get(timeout=30)
        send(p, s.topic_events, "E1", event("w-e5", "E1", T0 + 9 * MIN, "view", "P-2", None))
        console = ConsoleProcess(live_env, tmp_path, users, name="console-2")
        console.wait_ready()
        lena = Session(console.url, "lena", PASSWORDS["lena"])
        wait_until(lambda: lena.get("/api/me")["history"]["rows"] == 5, 30,
                   "the history to read on from where it stopped")
        case: dict[str, Any] = lena.get(f"/api/cases/{case_id}")
        assert case["case"]["owner"] == "ana" and case["record"]["version"] == 1
        assert "ignored a tombstone" in console.tail(200)
        assert [e["event_id"] for e in lena.get("/api/members/E1/timeline")["events"]] == [
            "w-e1", "w-e2", "w-e4", "w-e5"]
    finally:
        console.stop()
        p.close()
