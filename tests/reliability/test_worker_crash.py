"""Item 1: ``kill -9`` a worker in the middle of a replay, start another, lose and repeat nothing.

The first 30 % of the feed is on the topic before the worker starts; the rest
arrives by ``accesswatch replay`` at a steady rate while the worker runs.  Past
60 % consumed the worker gets SIGKILL: no commit, no flush.  A second worker
then finishes the feed from the committed offsets and the changelog.

Accounting: the first worker's committed offsets plus everything the second
consumed must cover every event sent (nothing lost; the second starts exactly
where the group committed), every invalid line must be on the DLQ, and the
alert topic must hold exactly the backtest's alert ids, each once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

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
    differences,
    duplicates,
    end_offsets,
    kill9,
    pipeline_env,
    prepare,
    produce,
    published,
    quietly,
    wait_committed_to_end,
)
from tests.streams.conftest import wait_until
from tests.streams.live import WorkerProcess, total

pytestmark = pytest.mark.broker


# The only guarantee the worker offers (exactly_once is refused: see the Reliability
# section of docs/live-pipeline.md).
GUARANTEE = "at_least_once"


def test_kill_9_mid_replay_loses_nothing_and_repeats_no_alert(
        broker: str, force: Force, ledger: Ledger, tmp_path) -> None:  # type: ignore[no-untyped-def]
    guarantee = GUARANTEE
    # The restarted worker keeps its instance id, as a pod or systemd unit would: the group
    # hands it the partitions at once instead of waiting out the dead member's session.
    env = pipeline_env(broker, tmp_path, processing_guarantee=guarantee, instance_id="worker-0")
    s = prepare(env, force, tmp_path)
    n = len(force.lines)
    head = int(n * 0.3)
    produce(s, force, force.lines[:head])
    rest = tmp_path / "rest.jsonl"
    rest.write_bytes(b"\n".join(force.lines[head:]) + b"\n")

    w1 = WorkerProcess(env, tmp_path, "crash-worker1")
    replay: subprocess.Popen[bytes] | None = None
    w2: WorkerProcess | None = None
    try:
        w1.wait_ready()
        wait_until(lambda: consumed(w1) >= head, 60, "the preloaded 30 % consumed")
        replay = subprocess.Popen(
            [sys.executable, "-m", "accesswatch.cli", "replay", str(rest), "--rate", "3000",
             "--no-progress"], cwd=tmp_path, env={**os.environ, **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        last = wait_until(lambda: (m := w1.metrics()) and total(
            m, "accesswatch_events_consumed_total") >= 0.6 * n and m, 60, "60 % consumed",
            every=0.02)
        kill9(w1)
        at_kill = committed_offsets(s)
        w1_consumed = total(last, "accesswatch_events_consumed_total")
        assert replay.poll() is None, "the kill must land while the replay is still sending"

        w2 = WorkerProcess(env, tmp_path, "crash-worker2")
        w2.wait_ready()
        assert replay.wait(120) == 0, replay.stderr.read().decode() if replay.stderr else ""
        caught_up = quietly(lambda: wait_committed_to_end(s, timeout=90))
        settled = caught_up and quietly(lambda: wait_until(
            lambda: alerts_settled(s, force), 30, "every alert at the backtest's content",
            every=0.3))
        ends = end_offsets(s, s.topic_events)
        m2 = w2.metrics()
        records = published(s)
        ids = [a["alert_id"] for a in records]
        dlq = dead_letters(s)
    finally:
        if replay is not None and replay.poll() is None:
            replay.kill()
        if w1.proc.poll() is None:
            w1.stop()
        if w2 is not None:
            w2.stop()

    assert w2.proc.returncode == 0, w2.tail()
    sent = sum(ends.values())
    w2_consumed = total(m2, "accesswatch_events_consumed_total")
    w2_processed = total(m2, "accesswatch_events_processed_total")
    w2_rejected = total(m2, "accesswatch_events_rejected_total")
    done_by_w1 = sum(at_kill.values())
    replayed = int(w1_consumed - done_by_w1)
    unique_dlq = {(p, o): v for p, o, v in dlq}
    missing, extra = force.expected - set(ids), set(ids) - force.expected
    committed = sum(committed_offsets(s).values())
    # A worker that finds a partition handed over past its commit restarts itself in place
    # (streams/gaps.py): its counters start again, so the committed offsets do the counting.
    restarts = w2.log.read_text(errors="replace").count("accesswatch.worker: restarting (")
    unaccounted = sent - committed if restarts else sent - done_by_w1 - int(w2_consumed)
    figures = ledger.add(Figures(
        f"kill -9 mid-replay ({guarantee})", sent=sent,
        processed=committed - len(unique_dlq),
        dead_lettered=len(unique_dlq), lost=unaccounted,
        duplicate_alerts=duplicates(records), alerts=len(set(ids)),
        notes=[f"first worker had consumed {int(w1_consumed):,}, committed {done_by_w1:,}; "
               f"{replayed:,} read again after the kill",
               f"duplicate dead letters {len(dlq) - len(unique_dlq)}",
               f"alerts missing {len(missing)}, unexpected {len(extra)}",
               f"events committed {committed:,} of {sent:,}",
               f"second worker restarted itself {restarts} times"]))
    assert caught_up, f"the group did not commit to the end: {figures.line()}"
    assert settled, (f"alerts did not reach the backtest's content: {figures.line()}; "
                     f"{differences(records, force)}")

    assert sent == n and committed == sent
    assert 0 < done_by_w1 < n, "the kill should land after a commit and before the end"
    if not restarts:  # it starts where the group committed and reads each event once
        assert w2_consumed == sent - done_by_w1
    assert w2_consumed == w2_processed + w2_rejected
    assert figures.lost == 0
    # Every invalid line is on the DLQ, with its source position, once.
    assert Counter(unique_dlq.values()) == Counter(force.invalid)
    assert len(dlq) == len(unique_dlq), "a dead letter was written twice"
    # No alert lost (nor invented from a lost state), no version repeated, and the
    # newest version of each equal to the backtest's in content.
    assert_every_output_once(records, dlq, force)
