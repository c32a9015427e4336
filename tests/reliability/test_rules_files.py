"""Item 6: a bad rule pack never runs.

At start, a pack that fails validation stops the worker with a non-zero exit
and the file, line and rule id on stderr.  At hot reload, a bad pack is
refused: a log line naming file, line and rule, ``accesswatch_rules_reload_
failures_total`` up, and the last good pack stays in force (it still raises
its alerts).  A good pack then replaces it.  (The model side of hot reload is
tests/streams/test_hot_reload.py.)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec
import pytest

from accesswatch.contract.timestamps import format_ts
from accesswatch.ops.produce import event_key
from accesswatch.rules import load_rules
from streams.settings import Settings
from tests.reliability.harness import Force, pipeline_env, prepare, published
from tests.streams.conftest import wait_until
from tests.streams.live import WorkerProcess, aw, kcat_produce, total

pytestmark = pytest.mark.broker
DEFAULT = Path(load_rules().source).read_text()
# An unknown key in rule AW-013 (line numbers are checked against the file itself).
BAD = DEFAULT.replace("    condition: unknown\n", "    condition: unknown\n    window: 5d\n", 1)


def bad_line() -> int:
    return BAD.splitlines().index("    window: 5d") + 1


def swap_in(text: str, target: Path) -> None:
    tmp = target.with_name(target.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, target)  # atomic, as a deployment would do it


def rules_version(w: WorkerProcess) -> str | None:
    for key in w.metrics():
        if key.startswith("accesswatch_rules_info{"):
            return dict(part.split("=", 1) for part in key[len("accesswatch_rules_info{"):-1]
                        .split(","))["version"]
    return None


def test_a_bad_pack_stops_the_worker_at_start_naming_file_line_and_rule(
        broker: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    env = pipeline_env(broker, tmp_path, rules_path=str(bad))
    started = time.monotonic()
    done = aw(env, "worker", "--web-port", "0", "--metrics-port", "0", cwd=tmp_path)
    assert done.returncode != 0
    assert f"{bad}:{bad_line()} rule AW-013:" in done.stderr, done.stderr
    assert "window" in done.stderr
    assert time.monotonic() - started < 30, "it stops at once, before the broker"


def unknown_account_event(n: int) -> bytes:
    return msgspec.json.encode({"event_id": f"rules-{n}", "ts": format_ts(time.time()),
                                "user_id": f"NOT-STAFF-{n}", "terminal_id": "T-RULES",
                                "system": "PNC", "action": "search", "query": "rules"})


def test_a_bad_pack_at_reload_is_refused_and_the_last_good_stays(
        broker: str, force: Force, tmp_path: Path) -> None:
    live = tmp_path / "rules.yaml"
    live.write_text(DEFAULT)
    env = pipeline_env(broker, tmp_path, rules_path=str(live), reload_interval="0.3")
    s = prepare(env, force, tmp_path)
    w = WorkerProcess(env, tmp_path, "rules-worker")
    try:
        w.wait_ready()
        good = rules_version(w)
        assert good == load_rules(live).version

        swap_in(BAD, live)
        wait_until(lambda: total(w.metrics(), "accesswatch_rules_reload_failures_total") >= 1,
                   30, "the bad pack refused")
        assert rules_version(w) == good
        line = next(ln for ln in w.log.read_text().splitlines() if "reload refused" in ln)
        assert f"{live}:{bad_line()} rule AW-013:" in line, line

        # The last good pack still works: an account not in the directory raises AW-013.
        first = unknown_account_event(1)
        kcat_produce(s.servers[0], s.topic_events, [(event_key(first), first)])
        wait_until(lambda: ("AW-013", "NOT-STAFF-1") in raised(s), 30,
                   "AW-013 from the last good pack")

        # A good pack replaces it: here one that retires AW-013.
        retired = DEFAULT.replace("    condition: unknown\n",
                                  "    condition: unknown\n    status: deprecated\n", 1)
        swap_in(retired, live)
        wait_until(lambda: rules_version(w) == load_rules(live).version, 30, "the new pack")
        second = unknown_account_event(2)
        kcat_produce(s.servers[0], s.topic_events, [(event_key(second), second)])
        wait_until(lambda: total(w.metrics(), "accesswatch_events_processed_total") >= 2, 30,
                   "the second event processed")
        assert ("AW-013", "NOT-STAFF-2") not in raised(s)
        assert w.proc.poll() is None
    finally:
        w.stop()


def raised(s: Settings) -> set[tuple[str, str]]:
    """(rule id, member) of every alert on the topic."""
    return {(a["rule_id"], a["user_id"]) for a in published(s)}
