"""Item 3: the broker goes away mid-stream and comes back; the worker carries on by itself.

A broker of this test's own (the session's is shared) is stopped with
``noida-db down`` between two halves of the feed, with the worker running,
and started again on the same port and data directory.  The worker must say
so (a log line each way, ``accesswatch_broker_up`` 0 then 1), keep running
without help, and finish the feed with nothing lost or repeated: every event
committed, the alert topic equal to the backtest's alert ids, each once.

The broker stops once the first half is committed, not while the worker is
writing: noida-db 0.2.3 loses writes it has acknowledged when ``down`` lands
in the middle of them (measured: 30 of 6,117 ``acks=all`` writes gone after
the restart), which no client can make up for, and a Kafka broker does not.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import (
    Figures,
    Force,
    Ledger,
    alerts_settled,
    assert_every_output_once,
    committed_offsets,
    consumed,
    dead_letters,
    duplicates,
    pipeline_env,
    prepare,
    produce,
    published,
    quietly,
    wait_committed_to_end,
)
from tests.streams.conftest import NOIDA, _accepts, free_port, wait_until
from tests.streams.live import WorkerProcess, total

pytestmark = pytest.mark.broker


class Broker:
    """A noida-db Kafka of our own: ``down`` keeps its data, ``up`` brings it back."""

    def __init__(self, data: Path) -> None:
        self.data, self.port = data, free_port()
        self.address = f"127.0.0.1:{self.port}"

    def up(self) -> None:
        done = subprocess.run([str(NOIDA), "up", "--only", "kafka", "--kafka-port",
                               str(self.port), "--data-dir", str(self.data)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        wait_until(lambda: _accepts(self.port), 30, f"noida-db on {self.address}")

    def down(self) -> None:
        subprocess.run([str(NOIDA), "down", "--data-dir", str(self.data)], capture_output=True,
                       timeout=60)
        wait_until(lambda: not _accepts(self.port), 30, f"noida-db on {self.address} to stop")


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "noida")
    b.up()
    try:
        yield b
    finally:
        b.down()


def broker_up(w: WorkerProcess) -> float | None:
    status, _ = w.get("/metrics")
    return w.metrics().get("accesswatch_broker_up") if status == 200 else None


def test_worker_rides_out_a_broker_restart(own_broker: Broker, force: Force, ledger: Ledger,
                                           tmp_path: Path) -> None:
    env = pipeline_env(own_broker.address, tmp_path)
    s = prepare(env, force, tmp_path)
    n = len(force.lines)
    half = n // 2
    produce(s, force, force.lines[:half])
    w = WorkerProcess(env, tmp_path, "outage-worker")
    try:
        w.wait_ready()
        wait_committed_to_end(s)  # the first half done and committed
        own_broker.down()
        wait_until(lambda: broker_up(w) == 0, 30, "accesswatch_broker_up to drop to 0")
        at_outage = consumed(w)
        own_broker.up()
        wait_until(lambda: broker_up(w) == 1, 60, "accesswatch_broker_up back to 1")
        produce(s, force, force.lines[half:])
        settled = quietly(lambda: wait_committed_to_end(s, timeout=120))
        settled = settled and quietly(lambda: wait_until(
            lambda: alerts_settled(s, force), 30, "every alert at the backtest's content",
            every=0.3))
        assert w.proc.poll() is None, "the worker kept running"
        records, dlq, m = published(s), dead_letters(s), w.metrics()
        ids = [a["alert_id"] for a in records]
        log = w.log.read_text(errors="replace")
    finally:
        w.stop()

    committed = sum(committed_offsets(s).values())
    unique_dlq = {(p, o) for p, o, _ in dlq}
    ledger.add(Figures(
        "broker down and up again", sent=n, processed=committed - len(unique_dlq),
        dead_lettered=len(unique_dlq), lost=n - committed, duplicate_alerts=duplicates(records),
        alerts=len(set(ids)), notes=[
            f"down after {int(at_outage):,} events",
            f"alerts missing {len(force.expected - set(ids))}, "
            f"unexpected {len(set(ids) - force.expected)}",
            f"consumed {int(total(m, 'accesswatch_events_consumed_total')):,}, skipped "
            f"{int(total(m, 'accesswatch_replay_skipped_total')):,} done before"]))
    assert settled, "the pipeline did not settle"
    assert f"broker at {own_broker.address} is unreachable" in log
    assert f"broker at {own_broker.address} is reachable again" in log
    assert committed == n
    assert_every_output_once(records, dlq, force)
