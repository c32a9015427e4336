"""The consultation log against the real broker (issue 20, item 1): a running console
records each read, the export gives back exactly those records, a lead reads them,
the analyst's opens reach the access-event topic as ``ACCESSWATCH`` accesses, and
``/metrics`` counts them.

Each test writes the log to a topic of its own (``ACCESSWATCH_TOPIC_CONSULTATIONS``),
so other tests' reads on a shared broker are never in it.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from console.auth import hash_password
from console.config import ConsoleSettings, console_topic_specs
from streams.settings import Settings
from streams.topics import create_topics
from tests.console.helpers import PASSWORDS
from tests.console.live import ConsoleProcess, Session, alert, event, producer, send
from tests.console.test_trust_live import scrape
from tests.streams.conftest import wait_until
from tests.streams.live import aw, read_topic

pytestmark = pytest.mark.broker
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
ANA_STAFF_ID = "E09990"  # ana's id in the staff directory; lena has none
MEMBER, SUBJECT, OTHER = "E1", "P-LIVE-2", "E2"  # E1 is alerted on; E2 opened P-LIVE-2
WHY = "complaint 2026/114 ✓"  # free text, percent-encoded UTF-8 on the wire


def users_file(path: Path) -> Path:
    path.write_text(
        "session_minutes: 60\nusers:\n"
        f'  lena: {{role: lead, password: "{hash_password(PASSWORDS["lena"], n=2**10)}"}}\n'
        f'  ana: {{role: analyst, password: "{hash_password(PASSWORDS["ana"], n=2**10)}", '
        f"staff_id: {ANA_STAFF_ID}}}\n")
    return path


def read(session: Session, path: str, why: str | None = None) -> tuple[int, Any]:
    """GET ``path`` as ``session``, saying why in ``X-Accesswatch-Purpose`` if ``why``."""
    headers = {"X-Accesswatch-Purpose": urllib.parse.quote(why)} if why is not None else {}
    req = urllib.request.Request(f"{session.url}{path}", headers=headers)
    try:
        with session.opener.open(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def utc(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def export(env: dict[str, str], cwd: Path, start: str, end: str, *more: str
           ) -> list[dict[str, Any]]:
    done = aw(env, "console", "consultations", "--from", start, "--to", end, "--format", "json",
              *more, cwd=cwd)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert f"{len(records)} consultations written" in done.stderr
    return records


def test_reads_are_recorded_exported_shown_to_a_lead_and_judged_as_access_events(
        live_settings: Settings, live_env: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**live_env, "ACCESSWATCH_TOPIC_CONSULTATIONS":
           f"{live_env['ACCESSWATCH_APP_ID']}.console.consultations"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = ConsoleSettings(_env_file=None)  # type: ignore[call-arg]
    assert s.consultations_topic == env["ACCESSWATCH_TOPIC_CONSULTATIONS"]
    assert s.console_audit_as_events  # on by default
    create_topics(s)
    create_topics(s, console_topic_specs(s))
    p = producer(s)
    send(p, s.topic_alerts, MEMBER, alert("aw-live-c1", MEMBER, "AW-002", "Relative's record",
                                          "high", 70.0, NOW, ["ev-live-1"], ["no case"]))
    send(p, s.topic_events, MEMBER, event("ev-live-1", MEMBER, NOW, "view", "P-LIVE-1", None))
    send(p, s.topic_events, OTHER, event("ev-live-2", OTHER, NOW, "view", SUBJECT, None))
    p.close()
    console = ConsoleProcess(env, tmp_path, users_file(tmp_path / "users.yaml"))
    try:
        console.wait_ready()
        start = utc(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        ana = Session(console.url, "ana", PASSWORDS["ana"])
        assert read(ana, "/api/alerts/aw-live-c1")[0] == 200  # the alert is its own purpose
        refused, said = read(ana, f"/api/subjects/{SUBJECT}", "")
        assert refused == 428 and said["purpose_required"] is True  # no reason: not read
        assert read(ana, f"/api/subjects/{SUBJECT}", WHY)[0] == 200
        assert read(ana, f"/api/members/{MEMBER}/timeline", "aw-live-c1")[0] == 200
        assert read(ana, "/api/consultations")[0] == 403  # a lead's, and not recorded
        end = utc(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))

        # The export reproduces exactly those three reads, in order.
        records = export(env, tmp_path, start, end)
        assert [(c["user"], c["role"], c["staff_id"], c["address"], c["route"])
                for c in records] == [
            ("ana", "analyst", ANA_STAFF_ID, "127.0.0.1", route)
            for route in ("/api/alerts/{alert_id}", "/api/subjects/{subject_id}",
                          "/api/members/{user_id}/timeline")]
        alert_read, subject_read, timeline_read = records
        assert [c["purpose"] for c in records] == [
            {"case_id": None, "alert_id": "aw-live-c1", "text": None},
            {"case_id": None, "alert_id": None, "text": WHY},
            {"case_id": None, "alert_id": "aw-live-c1", "text": None}]
        assert "aw-live-c1" in alert_read["what"]["ids"]["alert"]
        assert MEMBER in alert_read["what"]["ids"]["member"]
        assert subject_read["what"]["ids"]["subject"][0] == SUBJECT
        assert timeline_read["what"]["ids"]["member"][0] == MEMBER
        assert all(start <= c["at"] < end for c in records)
        assert len({c["id"] for c in records}) == 3
        # Only the subject's: the one read that showed P-LIVE-2; the member's: two.
        assert export(env, tmp_path, start, end, "--subject", SUBJECT) == [subject_read]
        assert export(env, tmp_path, start, end, "--subject", MEMBER) == [alert_read,
                                                                         timeline_read]
        assert export(env, tmp_path, start, end, "--user", "lena") == []
        assert export(env, tmp_path, end, utc(dt.datetime.now(dt.UTC) + dt.timedelta(
            hours=1))) == []

        # The analyst's opens, judged as everyone's accesses: on the access-event topic.
        def audited() -> list[dict[str, Any]]:
            return [e for e in (json.loads(r.value) for r in read_topic(s, s.topic_events))
                    if e["system"] == "ACCESSWATCH"]

        opens = audited()
        assert [(e["event_id"], e["user_id"], e["action"], e["subject_type"], e["subject_id"])
                for e in opens] == [
            (f"aw-console-{subject_read['id']}", ANA_STAFF_ID, "view", "person", SUBJECT),
            (f"aw-console-{timeline_read['id']}", ANA_STAFF_ID, "view", "other", MEMBER)]
        assert opens[0]["terminal_id"] == "console:127.0.0.1" and opens[0]["query"] is None

        # A lead sees the same records, newest first, once the console has read them back.
        lena = Session(console.url, "lena", PASSWORDS["lena"])

        def lead_view() -> list[dict[str, Any]]:
            status, body = read(lena, f"/api/consultations?from={start}&to={end}")
            assert status == 200, body
            return list(body["consultations"])

        wait_until(lambda: len(lead_view()) == 3, 30, "the lead's view to fold the log")
        assert lead_view() == records[::-1]

        # Counted on /metrics by kind, never by whom; lena's open has no staff id.
        assert read(lena, f"/api/subjects/{SUBJECT}", WHY)[0] == 200
        got = scrape(console.url)
        assert got['accesswatch_console_consultations_total{kind="subject"}'] == 2.0
        assert got['accesswatch_console_consultations_total{kind="timeline"}'] == 1.0
        assert got['accesswatch_console_consultations_total{kind="alert"}'] == 1.0
        assert got['accesswatch_console_consultations_total{kind="consultations"}'] >= 2.0
        assert got["accesswatch_console_consultations_no_staff_id_total"] == 1.0
        assert got["accesswatch_console_consultations_failed_total"] == 0.0
        assert len(audited()) == 2  # lena's open was not produced as an access
        assert console.stop() == 0
        log = console.log.read_text()
        assert WHY not in log and SUBJECT not in log
    finally:
        console.stop()
