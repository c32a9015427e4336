"""One and two workers in one consumer group, measured the same way.

Each group gets its own, empty, events topic (4 partitions) and app id; its
workers are ``accesswatch worker`` with rules + model, their own metrics
ports and data dirs.  With two, one is a static member
(``ACCESSWATCH_INSTANCE_ID``), as in the scale-out test: on noida-db two
static members joining at once left one without partitions for minutes, and
a dynamic pair can leave a phantom member behind.

The topic is filled only once every worker is healthy (reference data
loaded) and the group has shared out the partitions, so the group join, the
rebalance and the reference load are left out and both workers start at
once.  ``benchmarks/bulk.py`` fills it (whole record batches, several times
what ``replay`` sends a second) while the workers read.  The rate is the
events the group processed from the start of the fill to the ``/metrics``
sample (every 0.5 s) in which every event is done, over that time; events a
worker skipped as already done after a rebalance are not counted.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from benchmarks import readback
from benchmarks.broker import LiveBenchError, Processes, wait
from benchmarks.bulk import fill
from benchmarks.readback import agreement
from benchmarks.report import unavailable
from benchmarks.workers import PARTITIONS, Worker, cli, drain_deadline

SPLIT_TIMEOUT = 180.0  # seconds for the group to share out the partitions


def bench_scale_out(procs: Processes, address: str, work: Path, force: Path, events: int,
                    model: Path) -> dict[str, Any]:
    """The same fill drained by one worker, then by two in one group."""
    from benchmarks.live import backtest_alerts, head

    feed = work / "scale.events.jsonl"
    total, _ = head(force / "events.jsonl", feed, events)
    expected = backtest_alerts(feed, force, model)
    one = _group(procs, address, work, feed, total, model, "solo", 1)
    two = _group(procs, address, work, feed, total, model, "pair", 2)
    for r in (one, two):
        r.update(readback.compare(r.pop("alerts_by_id"), expected))
    return {"events": total, "backtest_alerts": len(expected), "one": one, "two": two,
            "two_to_one": round(two["events_per_s"] / one["events_per_s"], 2)
            if one.get("events_per_s") and two.get("events_per_s") else None}


def _group(procs: Processes, address: str, work: Path, feed: Path, total: int, model: Path,
           name: str, size: int) -> dict[str, Any]:
    from benchmarks.live import pipeline_env

    topic = f"bench.{name}.events"
    base = pipeline_env(address, name, model, events=topic)
    cli(base, work, "topics", "create")
    # The first is dynamic, the others static (see the module docstring).
    workers = [Worker(procs, f"{name}-{i}",
                      {**base, "ACCESSWATCH_INSTANCE_ID": f"bench-{name}-{i}"} if i else base,
                      work) for i in range(size)]
    samples: list[tuple[float, list[float]]] = []
    try:
        started = time.perf_counter()
        for w in workers:
            w.wait_healthy()
        try:
            wait(lambda: all(w.metrics().get("accesswatch_partitions_assigned", 0)
                             for w in workers), SPLIT_TIMEOUT, "the group to share out the "
                 "partitions", every=0.5)
        except LiveBenchError:
            owned = [int(w.metrics().get("accesswatch_partitions_assigned", 0))
                     for w in workers]
            return {"workers": size, "split": False, "partitions": owned,
                    "alerts_by_id": {}, "note": f"after {SPLIT_TIMEOUT:.0f} s the workers "
                    f"still owned {' + '.join(map(str, owned))} partitions"}
        ready = time.perf_counter() - started
        owned = [int(w.metrics().get("accesswatch_partitions_assigned", 0)) for w in workers]
        t0 = time.perf_counter()
        filled = asyncio.run(fill(address, topic, feed, PARTITIONS))

        def drained() -> bool:
            ms = [w.metrics() for w in workers]
            samples.append((time.perf_counter(), [_done(m) for m in ms]))
            return sum(_read(m) for m in ms) >= total

        wait(drained, drain_deadline(total), f"{name} to process {total:,} events", every=0.5)
        owned_end = [int(w.metrics().get("accesswatch_partitions_assigned", 0))
                     for w in workers]
    finally:
        for w in workers:
            w.stop()
    t1, done = samples[-1]
    return {"workers": size, "split": True, "ready_seconds": round(ready, 1),
            "partitions": owned, "partitions_at_end": owned_end,
            "fill_seconds": filled["seconds"], "seconds": round(t1 - t0, 2),
            "events_timed": int(sum(done)), "events_per_s": round(sum(done) / (t1 - t0)),
            "done_by": [int(d) for d in done],
            "alerts_by_id": asyncio.run(readback.alert_rules(address, f"bench.{name}.alerts"))}


def _done(m: dict[str, float]) -> float:
    # Events read again after a rebalance and skipped as already done are not new work.
    return (m.get("accesswatch_events_processed_total", 0)
            - m.get("accesswatch_replay_skipped_total", 0))


def _read(m: dict[str, float]) -> float:
    return (m.get("accesswatch_events_consumed_total", 0)
            - m.get("accesswatch_replay_skipped_total", 0))


def report_scale_out(r: dict[str, Any] | None) -> str:
    """The one-and-two-workers section of ``docs/BENCHMARKS.md``."""
    title = "\n## Two workers in one group\n\n"
    if not r or "error" in r:
        return unavailable(title, r, "`--no-scale-out`, `--no-live-model` or `--live-events 0`")

    def row(g: dict[str, Any]) -> str:
        if not g["split"]:
            return f"| {g['workers']} | {g['note']} | | | | | | |"
        return (f"| {g['workers']} | {' + '.join(map(str, g['partitions']))} | "
                f"{g['ready_seconds']} | {g['fill_seconds']} | {g['events_timed']:,} | "
                f"{g['seconds']} | **{g['events_per_s']:,}** | "
                f"{' / '.join(f'{d:,}' for d in g['done_by'])} |")

    agree = "; ".join(f"{g['workers']} worker{'s' if g['workers'] > 1 else ''}: "
                      f"{agreement(g)}" for g in (r["one"], r["two"]) if g["split"])
    return title + f"""Method: for each group size a fresh events topic (4 partitions) and app id on
the same broker; `accesswatch worker` processes, rules + model, each with its own metrics
port and data dir (with two, the second a static member, `ACCESSWATCH_INSTANCE_ID`, as
in the scale-out test: on noida-db two static members joining at once left one without
partitions for minutes). The topic is filled only once every worker is healthy
(reference data loaded) and each owns partitions (`accesswatch_partitions_assigned`),
so the join, the rebalance and the reference load are left out and the workers start
together. `benchmarks/bulk.py` fills it with the force's first {r['events']:,} events
(whole record batches, several times what `replay --rate 0` sends, keyed and
partitioned as `replay` does) while the workers read. The rate is the events the group
processed (the sum of the workers' `accesswatch_events_processed_total`, less any
skipped as already done after a rebalance) from the start of the fill to the
`/metrics` sample (every 0.5 s) in which every event is done, over that time: a
worker's counter moves a whole batch at a time, so a drain is what can be timed.
"s to
ready": from start to every worker healthy and owning partitions.

| workers | partitions | s to ready | fill s | events | seconds | events/s | done by each |
|---:|---|---:|---:|---:|---:|---:|---|
{row(r["one"])}
{row(r["two"])}

Two workers ÷ one: **{r['two_to_one']}**. Alerts the same set as the rules + model
backtest's on the same events ({r['backtest_alerts']:,}): {agree}. This machine has 2
cores, shared by the broker, the filling producer, both workers and other jobs, so the
gain from a second worker here is bounded by them and varies with the machine's other
load; on separate machines each worker brings its own cores (`docs/scaling.md`).
"""
