"""Event→alert latency at steady rates, through the broker.

For each rate a fresh pipeline (its own events, alert and DLQ topics, its own
app id, so every event is new to it): one ``accesswatch worker``, rules +
model, started and caught up (healthy, owning all 4 partitions, nothing to
read).  Then ``accesswatch replay --rate N`` feeds the force from its first
event for ``seconds``.  An alert's latency is its record's Kafka timestamp
(the worker's publish time) minus the Kafka timestamp (the producer's
CreateTime) of the event that triggered it: the latest evidence of the alert's
first version (later versions are updates, at most one per update interval, so
only first versions are timed).  Both clocks are this machine's.

For every event, not only those that raise an alert, the worker's own
``accesswatch_batch_seconds`` histogram gives how long each batch took to
handle over the same feed (decode, rules, model, publish).
"""

from __future__ import annotations

import asyncio
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import readback
from benchmarks.broker import LiveBenchError, Processes
from benchmarks.report import unavailable
from benchmarks.workers import Worker, cli, histogram


def bench_latency(procs: Processes, address: str, work: Path, events: Path, model: Path,
                  rates: tuple[int, ...], seconds: float) -> dict[str, Any]:
    with events.open("rb") as f:
        available = sum(1 for line in f if line.strip())
    return {"seconds": seconds,
            "rates": [_at_rate(procs, address, work, events, model, n, seconds, available)
                      for n in rates]}


def _at_rate(procs: Processes, address: str, work: Path, events: Path, model: Path,
             per_s: int, seconds: float, available: int) -> dict[str, Any]:
    from benchmarks.live import pipeline_env

    name = f"lat{per_s}"
    topic = f"bench.{name}.events"
    environ = pipeline_env(address, name, model, events=topic)
    cli(environ, work, "topics", "create")
    count = min(int(per_s * seconds), available)
    worker = Worker(procs, name, environ, work)
    try:
        worker.wait_healthy()
        worker.wait_owning(4)
        before = histogram(worker.port, "accesswatch_batch_seconds")
        replay = procs.start(f"{name}-replay", [
            sys.executable, "-m", "accesswatch.cli", "replay", str(events), "--rate",
            str(per_s), "--limit", str(count), "--no-progress"], environ)
        if worker.wait_for(replay, seconds * 3 + 120, f"the replay at {per_s:,}/s") != 0:
            raise LiveBenchError(f"replay at {per_s}/s failed:\n{procs.tail(name + '-replay')}")
        sent_at = _replay_rate(procs.tail(f"{name}-replay", 5))
        caught_up = time.perf_counter()
        final, done = worker.wait_consumed(count)
        behind = done - caught_up
        after = histogram(worker.port, "accesswatch_batch_seconds")
    finally:
        worker.stop()
    alerts = [(a, ts) for a, ts in
              asyncio.run(readback.alerts_with_times(address, f"bench.{name}.alerts"))
              if a.get("version", 1) == 1]  # later versions are updates, rate-limited
    triggers = {a["alert_id"]: _trigger(a) for a, _ in alerts}
    produced = asyncio.run(readback.event_times(address, topic,
                                                {t for t in triggers.values() if t}))
    latencies = sorted((ts - produced[t]) / 1000 for a, ts in alerts
                       if (t := triggers[a["alert_id"]]) in produced)
    batches = _delta(before, after)
    return {"rate": per_s, "sent": count, "replay_events_per_s": sent_at,
            "drained_after_replay_seconds": round(behind, 2),
            "processed": int(final.get("accesswatch_events_processed_total", 0)),
            "alerts": len(alerts), "timed": len(latencies),
            "latency_seconds": _quantiles(latencies),
            "batches": int(batches[-1][1]) if batches else 0,
            "batch_seconds": {"p50": _bucket_quantile(batches, 0.5),
                              "p99": _bucket_quantile(batches, 0.99)}}


def _trigger(alert: dict[str, Any]) -> str | None:
    """The id of the event that raised ``alert``'s first version: its latest evidence,
    last of its ``event_ids`` (unless they were cut at 100)."""
    ids = alert["event_ids"]
    return str(ids[-1]) if ids and alert["count"] == len(ids) else None


def _replay_rate(log: str) -> float | None:
    # "45,000 events sent to … in 45.1 s (998/s); 0 failed"
    found = re.search(r"\(([\d,]+)/s\)", log)
    return float(found.group(1).replace(",", "")) if found else None


def _quantiles(xs: list[float]) -> dict[str, float | None]:
    def nearest_rank(q: float) -> float | None:
        return round(xs[max(0, math.ceil(q * len(xs)) - 1)], 3) if xs else None

    return {"p50": nearest_rank(0.5), "p99": nearest_rank(0.99),
            "max": round(xs[-1], 3) if xs else None}


def _delta(before: list[tuple[float, float]],
           after: list[tuple[float, float]]) -> list[tuple[float, float]]:
    was = dict(before)
    return [(le, n - was.get(le, 0.0)) for le, n in after]


def _bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus' ``histogram_quantile``: linear within the bucket holding quantile ``q``."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    want, lower, below = q * buckets[-1][1], 0.0, 0.0
    for le, n in buckets:
        if n >= want:
            if math.isinf(le):
                return lower  # past the last finite bound: all Prometheus can say
            return round(lower + (le - lower) * (want - below) / max(n - below, 1e-9), 4)
        lower, below = le, n
    return None


HEADER = ("| events/s asked | sent at | events | alerts | timed | p50 ms | p99 ms | max ms "
          "| worker done s after replay | batches | batch p50 ms | batch p99 ms |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def report_latency(r: dict[str, Any] | None) -> str:
    """The latency section of ``docs/BENCHMARKS.md``."""
    title = "\n## Event→alert latency at steady rates\n\n"
    if not r or "error" in r:
        return unavailable(title, r, "`--no-latency`, `--no-live-model` or `--live-events 0`")

    def ms(x: float | None) -> str:
        return "—" if x is None else f"{x * 1000:,.0f}"

    rows = "\n".join(
        f"| {x['rate']:,} | {x['replay_events_per_s'] or 0:,.0f} | {x['sent']:,} | "
        f"{x['alerts']:,} | {x['timed']:,} | **{ms(x['latency_seconds']['p50'])}** | "
        f"**{ms(x['latency_seconds']['p99'])}** | {ms(x['latency_seconds']['max'])} | "
        f"{x['drained_after_replay_seconds']} | {x['batches']:,} | "
        f"{ms(x['batch_seconds']['p50'])} | {ms(x['batch_seconds']['p99'])} |"
        for x in r["rates"])
    return title + f"""Method: for each rate a fresh pipeline on the same broker (its own events,
alert and DLQ topics and app id, so every event is new to it): one `accesswatch worker`,
rules + model, started and caught up (healthy, owning all 4 partitions, nothing to read). Then
`accesswatch replay FILE --rate N --limit N×{r['seconds']:g}` feeds the force from its
first event for {r['seconds']:g} s. An alert's latency is the Kafka timestamp of its
record (the worker's publish time) minus the Kafka timestamp (producer CreateTime) of
the event that triggered it: the event whose id the alert id is made from. Both
clocks are this machine's. p50 and p99 are nearest-rank over the alerts timed, so
with a few dozen alerts p99 is close to the max. For every event, the worker's
`accesswatch_batch_seconds` histogram over the same feed gives the time each batch
took to handle (decode, rules, model, publish), as Prometheus' `histogram_quantile`
would (interpolated within buckets); an event also waits for its batch to fill
(`BATCH_WAIT`, 0.1 s at most) and for the fetch.

{HEADER}
{rows}

The target is 250 ms at p99 from event to alert (README; Prometheus alert
`AccesswatchAlertLatencyHigh`).
"""
