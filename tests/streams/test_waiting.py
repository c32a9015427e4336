"""Waiting is visible (issue 16): health and metrics from the first second.

A worker started with no broker to reach still serves ``/metrics`` and
``/healthz`` at once: 503 naming what it waits for, ``accesswatch_broker_up``
0, and a log line saying so; it stops cleanly on SIGTERM.  Then, on a real
broker, /healthz names each wait in turn until it says ok.
"""

from __future__ import annotations

import json
from pathlib import Path

from streams.settings import Settings
from streams.topics import create_topics
from tests.streams.conftest import free_port, unique_env, wait_until
from tests.streams.live import WorkerProcess, aw


def health(worker: WorkerProcess) -> tuple[int, dict[str, object]]:
    status, body = worker.get("/healthz")
    return status, (json.loads(body) if body else {})


def test_a_worker_without_a_broker_says_so_from_the_first_second(tmp_path: Path) -> None:
    env = {"ACCESSWATCH_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # nothing listens
           "ACCESSWATCH_DATA_DIR": str(tmp_path / "faust")}
    worker = WorkerProcess(env, tmp_path)
    try:
        status, body = wait_until(lambda: (h := health(worker))[0] and h, 20,
                                  "the worker's /healthz to answer")
        assert status == 503
        assert body["waiting_for"] == "broker" and body["ok"] is False
        assert worker.metrics()["accesswatch_broker_up"] == 0
        wait_until(lambda: "no Kafka broker reachable" in worker.log.read_text(), 20,
                   "the log to say what it waits for")
    finally:
        code = worker.stop()
    assert code in (0, -15), worker.tail()  # SIGTERM in the wait: a clean stop
    assert "Traceback" not in worker.log.read_text()


def test_health_names_each_wait_until_ready(broker: str, tmp_path: Path) -> None:
    env = {**unique_env(broker), "ACCESSWATCH_DATA_DIR": str(tmp_path / "faust")}
    settings = Settings.model_validate({k.removeprefix("ACCESSWATCH_").lower(): v
                                        for k, v in env.items()})
    create_topics(settings)
    worker = WorkerProcess(env, tmp_path)
    try:
        seen: list[object] = []

        def ready() -> bool:
            status, body = health(worker)
            if body and (not seen or seen[-1] != body["waiting_for"]):
                seen.append(body["waiting_for"])
            return status == 200

        wait_until(ready, 60, "the worker to be ready")
        assert seen[-1] is None and set(seen) <= {"broker", "reference data", "group", None}
        wait_until(lambda: "INFO accesswatch.worker: ready" in worker.log.read_text(), 10,
                   "the log line saying the worker is ready")
        assert "assigned events partitions [0, 1, 2, 3]" in worker.log.read_text()
    finally:
        assert worker.stop() == 0, worker.tail()


def test_missing_topics_stop_the_worker_with_one_line(broker: str, tmp_path: Path) -> None:
    """Topics not created yet: the worker says what to run, not a traceback."""
    env = {**unique_env(broker), "ACCESSWATCH_DATA_DIR": str(tmp_path / "faust")}
    done = aw(env, "worker", "--metrics-port", str(free_port()), cwd=tmp_path)
    assert done.returncode == 2
    assert "accesswatch topics create" in done.stderr and "Traceback" not in done.stderr
