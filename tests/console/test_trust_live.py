"""Trust what the console reads, against the real broker (issue 20, item 4).

A forged decision, a tampered one, a tombstone, ``reasons: []`` and a bad
``created_at`` are produced straight to the topics, as someone with write access
could.  Each leaves the feed working, is counted on ``/metrics`` and listed for a
lead, and none survives a restart either.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from console.config import ConsoleSettings, console_topic_specs
from console.triage import decide, encode
from streams.settings import Settings
from streams.topics import create_topics
from tests.console.helpers import PASSWORDS, users_yaml
from tests.console.live import ConsoleProcess, Session, alert, producer, send
from tests.streams.conftest import wait_until
from tests.streams.live import read_topic

pytestmark = pytest.mark.broker
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
MARK = "NEIGHBOUR-SMITH-12-ACACIA"  # in the bad alerts: never in a log line or a response
STEPS = [{"action": "acknowledge"}, {"action": "assign", "assignee": "ana"},
         {"action": "unassign"}, {"action": "misuse", "note": "no case covers it"},
         {"action": "reopen"}]


def scrape(url: str) -> dict[str, float]:
    """The console's /metrics, with no session, as Prometheus reads it."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"(accesswatch_console_\w+(?:\{[^}]*\})?) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


REFUSED = {
    'accesswatch_console_triage_rejected_total{reason="unsigned"}': 1.0,
    'accesswatch_console_triage_rejected_total{reason="bad_signature"}': 1.0,
    'accesswatch_console_triage_rejected_total{reason="tombstone"}': 1.0,
    'accesswatch_console_quarantined_total{reason_class="empty_list",topic="alerts"}': 1.0,
    'accesswatch_console_quarantined_total{reason_class="bad_timestamp",topic="alerts"}': 1.0,
}


def refused_counts(url: str) -> dict[str, float]:
    got = scrape(url)
    return {name: got.get(name, 0.0) for name in REFUSED}


def test_forged_tampered_and_erased_decisions_and_bad_alerts_are_refused_and_counted(
        live_settings: Settings, live_env: dict[str, str], tmp_path: Path) -> None:
    s = ConsoleSettings(_env_file=None)  # type: ignore[call-arg]
    create_topics(s)
    create_topics(s, console_topic_specs(s))
    p = producer(s)
    good = alert("aw-t-good", "E1", "AW-002", "Relative's record", "high", 70.0, NOW,
                 ["t-e1"], ["no case justified it"])
    send(p, s.topic_alerts, "E1", good)
    send(p, s.topic_alerts, "E1", {**good, "alert_id": "aw-t-empty", "reasons": []})
    send(p, s.topic_alerts, "E2", {**good, "alert_id": "aw-t-time", "user_id": "E2",
                                   "created_at": f"yesterday {MARK}"})
    users = users_yaml(tmp_path / "users.yaml")
    console = ConsoleProcess(live_env, tmp_path, users)
    try:
        console.wait_ready()
        ana = Session(console.url, "ana", PASSWORDS["ana"])
        version = 0
        for step in STEPS:
            status, out = ana.post("/api/alerts/aw-t-good/triage", {**step, "version": version})
            assert status == 200, out
            version = out["triage"]["version"]
        assert version == 5

        # Straight to the triage topic: a forged decision, a tampered copy, a tombstone.
        held = decide(None, "aw-t-good", "acknowledge", by="ana", at="2026-03-02T10:00:00Z")
        forged = decide(held, "aw-t-good", "false_positive", by="lena",
                        at="2026-03-02T10:01:00Z", note="nothing to see")
        forged.version = 99
        send(p, s.triage_topic, "aw-t-good", json.loads(encode(forged)))
        values = [json.loads(r.value) for r in read_topic(s, s.triage_topic)]
        assert ["sig" in v for v in values] == [True] * 5 + [False]  # the console signs
        tampered = {**values[4], "by": "lena", "version": 100}
        send(p, s.triage_topic, "aw-t-good", tampered)
        send(p, s.triage_topic, "aw-t-good", None)
        wait_until(lambda: refused_counts(console.url) == REFUSED, 30,
                   "the console to count every refused record")

        lena = Session(console.url, "lena", PASSWORDS["lena"])
        _feed_works(lena)
        quarantine = lena.get("/api/quarantine")
        assert quarantine["total"] == 5
        assert {(r["topic"], r["reason_class"]) for r in quarantine["records"]} == {
            (s.topic_alerts, "empty_list"), (s.topic_alerts, "bad_timestamp"),
            (s.triage_topic, "unsigned"), (s.triage_topic, "bad_signature"),
            (s.triage_topic, "tombstone")}
        assert MARK not in json.dumps(quarantine)
        assert console.stop() == 0
        log = console.log.read_text()
        assert log.count("quarantined") == 5 and MARK not in log

        # After a restart the same records are refused again, and the signed ones verify.
        console = ConsoleProcess(live_env, tmp_path, users, name="console-2")
        console.wait_ready()
        wait_until(lambda: refused_counts(console.url) == REFUSED, 30,
                   "the restarted console to count the same records")
        _feed_works(Session(console.url, "lena", PASSWORDS["lena"]))
    finally:
        console.stop()
        p.close()


def _feed_works(lena: Session) -> None:
    listed = lena.get("/api/alerts")
    assert [a["alert_id"] for a in listed["alerts"]] == ["aw-t-good"]
    detail: dict[str, Any] = lena.get("/api/alerts/aw-t-good")
    triage = detail["triage"]
    assert (triage["version"], triage["by"], triage["status"]) == (5, "ana", "acknowledged")
    assert [h["action"] for h in triage["history"]] == [st["action"] for st in STEPS]
    assert lena.get("/api/cases")["cases"]
