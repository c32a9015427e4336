"""Item 2: two workers share the partitions; stop one mid-stream and the other takes all.

Both workers join one consumer group and split the 4 partitions.  Part of the
feed is on the topic before they start; the rest arrives by ``accesswatch
replay`` while they run.  Midway, worker A is stopped (SIGTERM: it leaves the
group, as a scaled-down pod does) and worker B must own all 4 partitions and
finish the feed.  The alert topic must then hold exactly the backtest's alert
ids (the single-worker answer), each once, and the group must have committed
every event.

(noida-db never expires a member that stops heartbeating, so a SIGKILLed
member would hold its partitions for ever there; kill -9 is item 1's test,
where the restarted worker takes its place by its instance id.)
"""

from __future__ import annotations

import os
import subprocess
import sys
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
    wait_committed_to_end,
)
from tests.streams.conftest import wait_until
from tests.streams.live import WorkerProcess, total

pytestmark = pytest.mark.broker


def owned(w: WorkerProcess) -> float:
    return w.metrics().get("accesswatch_partitions_assigned", 0.0)


def test_survivor_takes_every_partition_and_the_alerts_match(
        broker: str, force: Force, ledger: Ledger, tmp_path: Path) -> None:
    env = pipeline_env(broker, tmp_path)
    s = prepare(env, force, tmp_path)
    n = len(force.lines)
    head = int(n * 0.4)
    produce(s, force, force.lines[:head])
    rest = tmp_path / "rest.jsonl"
    rest.write_bytes(b"\n".join(force.lines[head:]) + b"\n")

    # A leaves as a scaled-down worker does: a dynamic member says goodbye (a static one,
    # with an instance id, waits to be replaced).  B is static because noida-db expires no
    # member: the duplicate JoinGroup aiokafka sends when a commit meets the rebalance
    # would otherwise leave a phantom member holding the group.
    a = WorkerProcess(env, tmp_path, "scale-a")
    b = WorkerProcess({**env, "ACCESSWATCH_INSTANCE_ID": "worker-b"}, tmp_path, "scale-b")
    replay: subprocess.Popen[bytes] | None = None
    try:
        a.wait_ready()
        b.wait_ready()
        def split() -> tuple[float, float] | None:
            x, y = owned(a), owned(b)
            return (x, y) if x + y == 4 and x and y else None

        shared = wait_until(split, 60, "the two workers to split the partitions")
        wait_until(lambda: consumed(a) + consumed(b) >= head, 60, "the preloaded events")
        replay = subprocess.Popen(
            [sys.executable, "-m", "accesswatch.cli", "replay", str(rest), "--rate", "3000",
             "--no-progress"], cwd=tmp_path, env={**os.environ, **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(lambda: consumed(a) + consumed(b) >= 0.6 * n, 60, "60 % consumed")
        a_consumed = consumed(a)
        assert a.stop() == 0, a.tail()
        wait_until(lambda: owned(b) == 4, 60, "the survivor to own all 4 partitions")
        assert replay.wait(120) == 0
        wait_committed_to_end(s)
        wait_until(lambda: alerts_settled(s, force), 60, "every alert at the backtest's content",
                   every=0.3)
        mb = b.metrics()
        records, dlq = published(s), dead_letters(s)
        ids = [a["alert_id"] for a in records]
    finally:
        if replay is not None and replay.poll() is None:
            replay.kill()
        a.stop()
        b.stop()

    committed = sum(committed_offsets(s).values())
    unique_dlq = {(p, o) for p, o, _ in dlq}
    ledger.add(Figures(
        "scale-out, one of two stopped", sent=n, processed=committed - len(unique_dlq),
        dead_lettered=len(unique_dlq), lost=n - committed, duplicate_alerts=duplicates(records),
        alerts=len(set(ids)),
        notes=[f"partitions {int(shared[0])}+{int(shared[1])}, then 0+4",
               f"A consumed {int(a_consumed):,}, "
               f"B {int(total(mb, 'accesswatch_events_consumed_total')):,}",
               f"B skipped {int(total(mb, 'accesswatch_replay_skipped_total'))} done before"]))
    assert committed == n
    assert_every_output_once(records, dlq, force)
