"""The console's Kafka side against the real broker: the webhook sink, the ECS export, start-up."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from console.config import ConsoleSettings, console_topic_specs
from console.triage import decide, encode
from streams.settings import Settings
from streams.topics import create_topics
from tests.console.helpers import users_yaml
from tests.console.live import ConsoleProcess, alert, producer, send, version
from tests.streams.conftest import wait_until
from tests.streams.live import aw


class FlakySiem:
    """An HTTP receiver on loopback that answers 503 to the first ``failures`` posts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.posts: list[tuple[int, dict[str, Any]]] = []  # (status answered, document)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = 503 if len(outer.posts) < outer.failures else 200
                outer.posts.append((status, doc))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def delivered(self, alert_id: str) -> int:
        return sum(1 for status, doc in self.posts
                   if status == 200 and doc["event"]["id"] == alert_id)

    def versions(self, alert_id: str) -> list[tuple[int, bool]]:
        """(version, marked as an update) of each document taken for ``alert_id``."""
        return [(doc["accesswatch"]["alert"]["version"], doc["accesswatch"]["alert"]["update"])
                for status, doc in self.posts if status == 200 and doc["event"]["id"] == alert_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


pytestmark = pytest.mark.broker
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def _topics(s: ConsoleSettings) -> None:
    create_topics(s)
    create_topics(s, console_topic_specs(s))


def test_the_webhook_retries_until_the_siem_takes_an_alert_and_never_resends_it(
        live_settings: Settings, live_env: dict[str, str], tmp_path: Path) -> None:
    s = ConsoleSettings(_env_file=None)  # type: ignore[call-arg]
    _topics(s)
    siem = FlakySiem(failures=2)
    users = users_yaml(tmp_path / "users.yaml")
    p = producer(s)
    first = alert("aw-hook-1", "E1", "AW-011", "Leaver account used", "critical", 85.0, NOW,
                  ["e1"], ["account E1 is marked leaver"])
    send(p, s.topic_alerts, "E1", first)
    console = ConsoleProcess(live_env, tmp_path, users, "--webhook-url", siem.url)
    try:
        console.wait_ready()
        wait_until(lambda: siem.delivered("aw-hook-1"), 30, "the SIEM to take the first alert")
        assert [status for status, _ in siem.posts] == [503, 503, 200]
        assert siem.posts[-1][1]["rule"]["id"] == "AW-011"
        assert siem.posts[-1][1]["event"]["kind"] == "alert"
        assert console.stop() == 0
        # Offsets were committed after delivery: a restart sends only what is new.
        console = ConsoleProcess(live_env, tmp_path, users, "--webhook-url", siem.url,
                                 name="console-2")
        console.wait_ready()
        send(p, s.topic_alerts, "E2", alert("aw-hook-2", "E2", "AW-010", "Off duty", "medium",
                                            50.0, NOW, ["e2"], ["accessed off duty"]))
        wait_until(lambda: siem.delivered("aw-hook-2"), 30, "the SIEM to take the second alert")
        assert siem.delivered("aw-hook-1") == 1
        assert "webhook attempt 1 failed (HTTP 503)" in (tmp_path / "console.log").read_text()
    finally:
        console.stop()
        siem.close()
        p.close()


def test_the_webhook_sends_each_higher_version_once_and_never_an_older_one(
        live_settings: Settings, live_env: dict[str, str], tmp_path: Path) -> None:
    s = ConsoleSettings(_env_file=None)  # type: ignore[call-arg]
    _topics(s)
    siem = FlakySiem(failures=0)
    users = users_yaml(tmp_path / "users.yaml")
    p = producer(s)
    v1 = alert("aw-grow", "E1", "AW-008", "Opened many records", "high", 70.0, NOW, ["e1"],
               ["opened 40 records in an hour"])
    # Replays and a second worker after a rebalance: older and equal versions come late.
    for n in (1, 2, 2, 1, 3, 2):
        send(p, s.topic_alerts, "E1", version(v1, n))
    console = ConsoleProcess(live_env, tmp_path, users, "--webhook-url", siem.url)
    try:
        console.wait_ready()
        wait_until(lambda: siem.delivered("aw-grow") >= 3, 30, "the SIEM to take version 3")
        assert siem.versions("aw-grow") == [(1, False), (2, True), (3, True)]
        last = siem.posts[-1][1]
        assert last["accesswatch"]["alert"]["count"] == 3 and last["accesswatch"]["alert"][
            "updated_at"] == version(v1, 3)["updated_at"]
        assert console.stop() == 0
        # After a restart it still knows version 3 was sent: a late version 2 stays unsent.
        send(p, s.topic_alerts, "E1", version(v1, 2))
        send(p, s.topic_alerts, "E1", version(v1, 4))
        console = ConsoleProcess(live_env, tmp_path, users, "--webhook-url", siem.url,
                                 name="console-2")
        console.wait_ready()
        wait_until(lambda: siem.delivered("aw-grow") >= 4, 30, "the SIEM to take version 4")
        assert siem.versions("aw-grow") == [(1, False), (2, True), (3, True), (4, True)]
    finally:
        console.stop()
        siem.close()
        p.close()


def test_export_ecs_writes_every_alert_with_its_decision(
        live_settings: Settings, live_env: dict[str, str], tmp_path: Path) -> None:
    s = ConsoleSettings(_env_file=None)  # type: ignore[call-arg]
    _topics(s)
    p = producer(s)
    send(p, s.topic_ref_staff, "E1", {"user_id": "E1", "surname": "X", "role": "constable",
                                      "unit": "Response", "area": "North", "status": "active"})
    for n in range(3):
        send(p, s.topic_alerts, "E1", alert(f"aw-x{n}", "E1", "AW-002", "Relative's record",
                                            "high", 70.0, NOW, [f"e{n}"], ["no case"]))
    grows = alert("aw-x1", "E1", "AW-002", "Relative's record", "high", 70.0, NOW, ["e1"],
                  ["no case"])
    for n in (3, 2, 1):  # v3 first: the v2 and the v1 replayed after it must not win
        send(p, s.topic_alerts, "E1", version(grows, n))
    d = decide(None, "aw-x1", "false_positive", by="lena", at="2026-03-02T10:00:00Z",
               note="their own case after all")
    p.send(s.triage_topic, key=b"aw-x1", value=encode(d)).get(timeout=30)
    p.close()
    out = tmp_path / "alerts.ecs.ndjson"
    done = aw(live_env, "console", "export-ecs", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3 alerts written as ECS" in done.stderr
    docs = {doc["event"]["id"]: doc for doc in map(json.loads, out.read_text().splitlines())}
    assert set(docs) == {"aw-x0", "aw-x1", "aw-x2"}
    assert len(out.read_text().splitlines()) == 3  # one document an alert, however re-published
    assert docs["aw-x1"]["accesswatch"]["alert"]["version"] == 3
    assert docs["aw-x1"]["accesswatch"]["alert"]["count"] == 3
    assert docs["aw-x0"]["accesswatch"]["alert"]["version"] == 1
    assert docs["aw-x1"]["accesswatch"]["triage"]["status"] == "false_positive"
    assert docs["aw-x0"]["accesswatch"]["member"]["area"] == "North"
    assert all(doc["event"]["kind"] == "alert" and doc["@timestamp"] for doc in docs.values())


def test_the_console_refuses_to_start_without_a_sound_users_file(tmp_path: Path) -> None:
    env = {"ACCESSWATCH_BOOTSTRAP_SERVERS": "127.0.0.1:1", "ACCESSWATCH_BROKER_WAIT": "1"}
    missing = aw(env, "console", "--port", "0", cwd=tmp_path)
    assert missing.returncode == 2 and "give a users file" in missing.stderr
    plain = tmp_path / "users.yaml"
    plain.write_text("users:\n  bob: {role: analyst, password: hunter2hunter2}\n")
    refused = aw(env, "console", "--users", str(plain), cwd=tmp_path)
    assert refused.returncode == 2
    assert "user bob: password must be a hash" in refused.stderr
    assert "Traceback" not in refused.stderr
