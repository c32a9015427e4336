"""A stuck worker is seen: its lag keeps growing on /metrics and the alerts fire (issue 16).

A worker handles events, then its batch handling is stalled by the test hook
``ACCESSWATCH_STALL_FILE`` (while the file exists it takes no batch; its timers,
lag and ``/metrics`` carry on, as in a worker stuck on a slow dependency) and
events keep arriving.  The lag of every partition it owns must keep growing on
its ``/metrics``, and a real Prometheus loaded with deploy/prometheus/alerts.yml
must fire ``AccesswatchConsumerLagGrowing`` and ``AccesswatchThroughputZero``.

Prometheus cannot be hurried, so the rules' durations are scaled down a
minute to a second (``for: 15m`` becomes ``for: 15s``, ``[10m]`` becomes
``[10s]``); the expressions, labels and thresholds are the file's own.  The
real durations are tested by promtool (alerts_test.yml, "stalled").  Then the
file goes, and the worker drains what waited.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import PROMETHEUS
from tests.deploy.test_live_metrics import prometheus_config
from tests.streams.conftest import wait_until
from tests.streams.live import WorkerProcess, live_force, run_prometheus

pytestmark = pytest.mark.broker

ALERTS = ("AccesswatchConsumerLagGrowing", "AccesswatchThroughputZero")


def minutes_as_seconds(rules_text: str) -> str:
    """alerts.yml with every duration in minutes read as seconds (expressions unchanged)."""
    return re.sub(r"\b(\d+)m\b", r"\1s", rules_text)


def lags(worker: WorkerProcess) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    status, text = worker.get("/metrics")
    assert status == 200  # served while stalled
    return {s.labels["partition"]: s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == "accesswatch_consumer_lag"}


def firing(base: str) -> set[str]:
    try:
        with urllib.request.urlopen(f"{base}/api/v1/alerts", timeout=5) as r:
            alerts = json.loads(r.read())["data"]["alerts"]
    except OSError:
        return set()
    return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}


class Feed:
    """``accesswatch replay`` at a steady rate, over and over, until stopped."""

    def __init__(self, env: dict[str, str], path: Path, rate: int) -> None:
        self.stopped = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.thread = threading.Thread(target=self._run, args=(env, path, rate), daemon=True)
        self.thread.start()

    def _run(self, env: dict[str, str], path: Path, rate: int) -> None:
        import os

        while not self.stopped.is_set():
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "accesswatch.cli", "replay", str(path), "--rate",
                 str(rate), "--no-progress"], cwd=path.parent, env={**os.environ, **env},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.proc.wait()

    def stop(self) -> None:
        self.stopped.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.thread.join(30)


def test_a_stalled_worker_shows_growing_lag_and_fires_the_alerts(
        broker: str, tmp_path: Path) -> None:
    stall = tmp_path / "stall"
    env, _, force = live_force(broker, tmp_path, staff=120, seed=5, stall_file=str(stall))
    events = force / "events.jsonl"
    rules = tmp_path / "alerts.yml"
    rules.write_text(minutes_as_seconds((PROMETHEUS / "alerts.yml").read_text()))
    config = yaml.safe_load(prometheus_config(0))
    config["rule_files"] = [str(rules)]

    worker = WorkerProcess(env, tmp_path)
    feed: Feed | None = None
    try:
        worker.wait_ready()
        [job] = config["scrape_configs"]
        job["static_configs"] = [{"targets": [f"127.0.0.1:{worker.metrics_port}"]}]
        with run_prometheus(tmp_path, worker.metrics_port, yaml.safe_dump(config)) as base:
            feed = Feed(env, events, rate=2000)
            # Working: events handled, lag measured on all four partitions.
            wait_until(lambda: len(lags(worker)) == 4 and worker.metrics().get(
                "accesswatch_events_consumed_total", 0) > 1000, 60, "the worker to handle events")
            assert not firing(base) & set(ALERTS)

            stall.touch()
            first = wait_until(lambda: (lg := lags(worker)) and min(lg.values()) > 1000 and lg,
                               90, "lag above 1,000 on every partition", every=0.5)
            consumed = worker.metrics()["accesswatch_events_consumed_total"]
            later = wait_until(lambda: (lg := lags(worker)) and all(
                lg[p] > first[p] + 500 for p in first) and lg, 60, "the lag to keep growing",
                every=0.5)
            assert sorted(later) == ["0", "1", "2", "3"]
            assert worker.metrics()["accesswatch_events_consumed_total"] == consumed
            status, health = worker.get("/healthz")
            assert status == 200 and json.loads(health)["partitions"] == [0, 1, 2, 3]
            wait_until(lambda: set(ALERTS) <= firing(base), 120,
                       f"Prometheus to fire {', '.join(ALERTS)}", every=1)

            stall.unlink()
            feed.stop()
            wait_until(lambda: max(lags(worker).values()) == 0, 120,
                       "the worker to drain what waited", every=0.5)
    finally:
        if feed is not None:
            feed.stop()
        stall.unlink(missing_ok=True)
        assert worker.stop() == 0, worker.tail()
