"""Out-of-order delivery, live: one worker draining the time-ordered feed, then the delivered one.

On its own fresh noida-db broker (so ``--only delivery`` needs nothing else):
the force's first N events (time order) and the same lines as the feeds
deliver them (``benchmarks/delivery.py``, repeats included) each go to their
own events topic (4 partitions) by ``accesswatch replay --rate 0``, which
keys by ``user_id`` and keeps each member's lines in file order, as the feeds
would; reference data by ``accesswatch load-ref``; a model trained on the
force's days 1-7.  Then ``accesswatch worker`` processes drain one topic or the
other from the start, timed as in ``benchmarks/live.py`` (``/healthz`` first
answering to the ``/metrics`` sample in which every record is read), rules only
and rules + model, the two topics swapping places every turn.  Each run's
alerts are read back and compared with the backtest's on the time-ordered
events: the contract says delivery order changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import readback
from benchmarks.broker import Processes, noida_version, session
from benchmarks.delivery import deliver
from benchmarks.delivery_bench import ORDERS, stats_json
from benchmarks.workers import cli, env

TOPICS = {"in_order": "bench.in-order.events", "delivered": "bench.delivered.events"}


def bench_delivery_live(
    force: Path, cache: Path, events: int, turns: int, seed: int = 1, model: bool = True
) -> dict[str, Any]:
    """The live figures for ``results.json``'s ``delivery.live``; every process stopped
    by pid and the broker brought down, on failure too (its logs then kept)."""
    with session(cache, "delivery-live") as (work, procs, address):
        return _run(force, work, procs, address, events, turns, seed, model)


def _run(
    force: Path,
    work: Path,
    procs: Processes,
    address: str,
    events: int,
    turns: int,
    seed: int,
    model: bool,
) -> dict[str, Any]:
    from benchmarks.live import _worker, backtest_alerts, head

    files = {"in_order": work / "in_order.jsonl", "delivered": work / "delivered.jsonl"}
    lines, span = head(force / "events.jsonl", files["in_order"], events)
    stats = deliver(files["in_order"], files["delivered"], seed=seed)
    records = {"in_order": lines, "delivered": lines + stats.repeats}
    for order in ORDERS:
        setup = env(address, "bench-setup", events=TOPICS[order])
        cli(setup, work, "topics", "create")
        cli(setup, work, "replay", str(files[order]), "--rate", "0", "--no-progress")
    cli(env(address, "bench-setup"), work, "load-ref", str(force))
    configs: list[tuple[str, Path | None]] = [("rules_only", None)]
    if model:
        trained = work / "model.skops"
        cli(env(address, "bench-setup"), work, "train", str(force / "events.jsonl"), "--ref",
            str(force), "--out", str(trained), "--days", "7")
        configs.append(("rules_model", trained))
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {
        (c, o): [] for c, _ in configs for o in ORDERS
    }
    for turn in range(turns):
        for order in ORDERS if turn % 2 == 0 else ORDERS[::-1]:
            for config, served in configs:
                r = _worker(procs, address, work, records[order], f"{config}-{order}-{turn}",
                            served, events=TOPICS[order])
                # The force's events over the drain, repeats not counted: a ratio of times.
                r["events_per_s"] = round(lines / r["seconds"]) if r["seconds"] else 0
                r["records"] = records[order]
                runs[config, order].append(r)
    out: dict[str, Any] = {"broker": noida_version(), "events": lines, "event_time_span": span,
                           "partitions": 4, "turns": turns, "seed": seed,
                           "feed": stats_json(stats)}
    for config, served in configs:
        expected = backtest_alerts(files["in_order"], force, served)
        out[config] = _summary(runs, config, expected)
    return out


def _summary(runs: dict[tuple[str, str], list[dict[str, Any]]], config: str,
             expected: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"backtest_alerts": len(expected)}
    for order in ORDERS:
        mine = runs[config, order]
        for r in mine:
            r.update(readback.compare(r.pop("alerts_by_id"), expected))
        best = max(mine, key=lambda r: r["events_per_s"])
        out[order] = {**best, "runs": [r["events_per_s"] for r in mine],
                      "all_alerts_equal_backtest": all(r["alerts_equal_backtest"] for r in mine),
                      "rejected_runs": [r["rejected"] for r in mine]}
    a, b = out["in_order"], out["delivered"]
    out["delivered_to_in_order"] = (round(b["events_per_s"] / a["events_per_s"], 3)
                                    if a["events_per_s"] else None)
    out["pairs"] = [round(d["events_per_s"] / i["events_per_s"], 3) if i["events_per_s"] else None
                    for i, d in zip(runs[config, "in_order"], runs[config, "delivered"],
                                    strict=True)]
    return out
