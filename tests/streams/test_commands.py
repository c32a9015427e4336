"""The live CLI commands against the real broker, and without one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from accesswatch.core import Alert
from accesswatch.ops.tail import HELP, format_alert, render
from console.versions import LatestVersions
from streams.settings import Settings
from streams.topics import create_topics
from tests.streams.conftest import free_port
from tests.streams.live import aw, produce, read_topic

ALERT = Alert(alert_id="aw-1", created_at="2026-03-02T09:14:03Z", user_id="E00412",
              rule_id="AW-011", title="Access from a suspended or leaver account",
              severity="critical", score=85.0, event_ids=["e1"],
              reasons=["account E00412 is marked leaver in the staff directory"],
              first_seen="2026-03-02T09:14:00Z", last_seen="2026-03-02T09:14:00Z", count=1)


def version(n: int) -> Alert:
    """ALERT re-published with more evidence: version ``n``, ``n`` events."""
    return msgspec.structs.replace(ALERT, version=n, count=n, updated_at=f"2026-03-02T10:0{n}:00Z",
                                   event_ids=[f"e{i}" for i in range(1, n + 1)])


def test_a_missing_broker_is_said_plainly_not_as_a_traceback(tmp_path: Path) -> None:
    env = {"ACCESSWATCH_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
           "ACCESSWATCH_BROKER_WAIT": "2"}
    for command in (["topics", "create"], ["worker", "--metrics-port", "0", "--web-port", "0"]):
        done = aw(env, *command, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "no Kafka broker reachable at 127.0.0.1:" in done.stderr
        assert "retrying in" in done.stderr
        assert "Traceback" not in done.stderr


def test_alert_lines_show_severity_member_title_and_first_reason() -> None:
    plain = format_alert(ALERT, colour=False)
    assert plain.splitlines()[0].split() == ["09:14:03", "CRITICAL", "E00412", "AW-011",
                                             "Access", "from", "a", "suspended", "or",
                                             "leaver", "account"]
    assert ALERT.reasons[0] in plain.splitlines()[1]
    assert "\033[" not in plain
    assert "\033[1;97;41mCRITICAL" in format_alert(ALERT, colour=True)


def test_an_update_is_marked_and_stamped_with_when_it_was_published() -> None:
    head, reason = format_alert(version(3), colour=False).splitlines()
    assert head.split()[:4] == ["10:03:00", "CRITICAL", "E00412", "AW-011"]
    assert head.endswith("leaver account  [v3 update, 3 events]")
    assert ALERT.reasons[0] in reason
    assert "update" not in format_alert(ALERT, colour=False)


@pytest.mark.parametrize("as_json", [False, True], ids=["lines", "json"])
def test_tail_shows_each_version_once_and_never_an_older_after_a_newer(as_json: bool) -> None:
    shown = LatestVersions(limit=100)
    arriving = [ALERT, version(2), ALERT, version(2), version(3), version(2)]
    out = [render(msgspec.json.encode(a), shown, as_json=as_json, colour=False)
           for a in arriving]
    printed = [line for line in out if line is not None]
    assert len(printed) == 3 and out[2] is None and out[3] is None and out[5] is None
    if as_json:
        assert [msgspec.json.decode(line, type=Alert).version for line in printed] == [1, 2, 3]
    else:
        assert ["update" in line for line in printed] == [False, True, True]
        assert "[v3 update, 3 events]" in printed[2]
    broken = render(b"{not json", shown, as_json=as_json, colour=False)
    assert broken == ("{not json" if as_json else "(an alert that does not match the alert schema)")


def test_the_help_says_how_updates_are_shown() -> None:
    assert "update" in HELP and "older" in HELP and "version" in HELP


@pytest.mark.broker
def test_load_ref_publishes_keyed_records_and_refuses_bad_lines(
        live_settings: Settings, live_env: dict[str, str], tmp_path: Path) -> None:
    create_topics(live_settings)
    ref = tmp_path / "ref"
    ref.mkdir()
    good = {"user_id": "E1", "surname": "Okafor", "role": "constable", "unit": "Response",
            "area": "North", "status": "active"}
    (ref / "staff.jsonl").write_bytes(msgspec.json.encode(good) + b'\n{"user_id": "E2"}\n'
                                      b"\n[1, 2\n")
    done = aw(live_env, "load-ref", str(ref), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "staff.jsonl:2:" in done.stderr and "staff.jsonl:4:" in done.stderr
    assert "subjects.jsonl: not found" in done.stderr
    records = read_topic(live_settings, live_settings.topic_ref_staff)
    assert [(r.key, r.value) for r in records] == [(b"E1", msgspec.json.encode(good))]


@pytest.mark.broker
def test_replay_keys_events_by_member_and_keeps_pace(
        live_settings: Settings, live_env: dict[str, str], tmp_path: Path) -> None:
    create_topics(live_settings)
    lines = [msgspec.json.encode({"event_id": f"e{i}", "user_id": f"E{i % 3}"}) for i in range(40)]
    lines.append(b"not json")
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    started = time.monotonic()
    done = aw(live_env, "replay", str(path), "--rate", "100", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started >= 0.4  # 41 events at 100/s
    assert "41 events sent" in done.stderr
    records = read_topic(live_settings, live_settings.topic_events)
    assert sorted(r.value for r in records) == sorted(lines)
    assert {r.key for r in records} == {b"E0", b"E1", b"E2", None}


@pytest.mark.broker
def test_alerts_tail_prints_what_arrives(live_settings: Settings, live_env: dict[str, str],
                                         tmp_path: Path) -> None:
    create_topics(live_settings)
    produce(live_settings, live_settings.topic_alerts, b"E00412", msgspec.json.encode(ALERT))
    tail = subprocess.run(
        [sys.executable, "-m", "accesswatch.cli", "alerts", "tail", "--from-beginning",
         "--max", "1", "--color", "never"], cwd=tmp_path, env={**os.environ, **live_env},
        capture_output=True, text=True, timeout=60)
    assert tail.returncode == 0, tail.stderr
    assert "CRITICAL" in tail.stdout and "E00412" in tail.stdout
    assert ALERT.reasons[0] in tail.stdout


@pytest.mark.broker
def test_alerts_tail_prints_updates_and_skips_versions_already_overtaken(
        live_settings: Settings, live_env: dict[str, str], tmp_path: Path) -> None:
    create_topics(live_settings)
    other = msgspec.structs.replace(ALERT, alert_id="aw-2", user_id="E9")
    for a in (ALERT, version(2), ALERT, version(2), version(3), version(2), other):
        produce(live_settings, live_settings.topic_alerts, a.user_id.encode(),
                msgspec.json.encode(a))
    # Were the stale versions printed, the four lines would run out before v3 and aw-2.
    tail = subprocess.run(
        [sys.executable, "-m", "accesswatch.cli", "alerts", "tail", "--from-beginning",
         "--max", "4", "--idle-exit", "10", "--color", "never"], cwd=tmp_path,
        env={**os.environ, **live_env}, capture_output=True, text=True, timeout=60)
    assert tail.returncode == 0, tail.stderr
    heads = tail.stdout.splitlines()[::2]
    # One member's alerts keep their order; another member's may come before or after.
    marks = [h.partition("  [")[2] for h in heads if h.split()[2] == "E00412"]
    assert marks == ["", "v2 update, 2 events]", "v3 update, 3 events]"]
    assert sum(h.split()[2] == "E9" for h in heads) == 1
