"""Live figures through a real broker, in the same ``make bench`` run as the backtest.

On a fresh noida-db broker (fresh data dir): topics from ``accesswatch topics
create``, ``access.events`` (4 partitions) pre-loaded with the first N events of
the generated force by ``accesswatch replay --rate 0``, reference data by
``accesswatch load-ref``, and a model trained on the force's days 1-7 by
``accesswatch train``.  Then, one after another, each reading the whole topic
from the start (the Faust apps each with their own consumer group):

- a raw aiokafka consumer: the client's ceiling;
- the naive Faust agent (``benchmarks/naive_agent.py``), one event at a time, no work;
- one ``accesswatch worker``, rules only, per-user state in a changelogged table;
- one ``accesswatch worker``, rules + model.

The naive agent and the two workers take turns ``repeats`` times; the best of
each is reported.  A rate is events counted between the first and the last
progress sample over the time between them, so start-up and group join are
not counted: the agent's samples come from Faust's monitor, the raw consumer's
from its own loop.  A worker's counter moves a batch at a time (with the fast
path a batch can be a whole fetch), so its rate is a drain: the events it
processed from its ``/healthz`` first answering (reference data loaded; events
are held until then) to the ``/metrics`` sample (every 0.2 s) in which it has
read them all.

With ``--baseline REV`` an earlier revision's worker, rules only, takes its turns
too; then the two are started together ``side_by_side`` times and drain the same
events at the same moment, so the host's noise falls on both alike.

Then, on the same broker: two workers in one group (``benchmarks/scale_out.py``),
event→alert latency at steady rates (``benchmarks/latency.py``) and the
worker's memory (``benchmarks/memory.py``).  Every process started here is
stopped by pid, on failure too, and the broker brought down.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import readback
from benchmarks.broker import LiveBenchError, Processes, free_port, noida_version, session, wait
from benchmarks.workers import ROOT, TOPIC, Worker, cli, cpu_seconds, drain_deadline, env, get

Samples = list[tuple[float, float]]  # (seconds, events so far)


@dataclass
class LiveOptions:
    """What the live part of ``make bench`` runs; run.py's flags set it."""

    events: int = 500_000
    repeats: int = 5
    model: bool = True  # the rules + model worker; scale-out, latency and memory use it too
    scale_out: bool = True
    latency_rates: tuple[int, ...] = (1000, 5000)
    latency_seconds: float = 40
    memory_forces: list[Path] = field(default_factory=list)  # forces to size the worker on
    baseline: str | None = None  # a git revision whose worker takes turns with this one
    side_by_side: int = 4  # turns of this worker and the baseline's draining at once


def cpu_ratio(rules: list[dict[str, Any]], model: list[dict[str, Any]]) -> float:
    """Rules-only CPU per event over rules + model CPU per event, the least of each."""
    best_rules = min(r["cpu_us_per_event"] for r in rules)
    best_model = min(r["cpu_us_per_event"] for r in model)
    return round(best_rules / best_model, 2) if best_model else 0.0


def rate(samples: Samples) -> dict[str, float]:
    """Events between the first and last sample, over the time between them."""
    (t0, n0), (t1, n1) = samples[0], samples[-1]
    seconds = t1 - t0
    return {"events_timed": int(n1 - n0), "seconds": round(seconds, 2),
            "events_per_s": round((n1 - n0) / seconds) if seconds > 0 else 0}


def bench_live(force: Path, opts: LiveOptions, cache: Path) -> dict[str, Any]:
    """The live figures for ``results.json`` (see the module docstring)."""
    with session(cache, "live") as (work, procs, address):
        return _run(force, opts, address, work, procs)


def _run(force: Path, opts: LiveOptions, address: str, work: Path,
         procs: Processes) -> dict[str, Any]:
    from benchmarks.latency import bench_latency
    from benchmarks.memory import bench_memory
    from benchmarks.scale_out import bench_scale_out

    events = work / "events.jsonl"
    lines, span = head(force / "events.jsonl", events, opts.events)
    setup = env(address, "bench-setup")
    cli(setup, work, "topics", "create")
    started = time.perf_counter()
    cli(setup, work, "replay", str(events), "--rate", "0", "--no-progress")
    preload = time.perf_counter() - started
    cli(setup, work, "load-ref", str(force))
    model = None
    if opts.model:
        model = work / "model.skops"
        started = time.perf_counter()
        cli(setup, work, "train", str(force / "events.jsonl"), "--ref", str(force), "--out",
            str(model), "--days", "7")
        train_seconds = time.perf_counter() - started

    raw = max((asyncio.run(_raw_consume(address, lines)) for _ in range(3)),
              key=lambda r: r["events_per_s"])
    tree = None
    if opts.baseline:
        try:
            tree = checkout(opts.baseline, work / "baseline")
        except LiveBenchError as e:  # a tree without that history: the rest still runs
            print(f"benchmarks: no baseline worker ({e}); BENCH_BASELINE= skips it",
                  file=sys.stderr)
    naive: list[dict[str, Any]] = []
    workers: list[dict[str, Any]] = []
    baseline: list[dict[str, Any]] = []
    with_model: list[dict[str, Any]] = []
    for i in range(opts.repeats):
        naive.append(_naive(procs, address, work, lines, f"naive-{i}", uvloop=False))
        # The workers swap places every turn: the broker's data grows with each run (its
        # topics, changelogs and alerts), so none always runs first or last.
        runs = ["rules"] + (["model"] if model else []) + (["baseline"] if tree else [])
        for kind in runs[i % len(runs):] + runs[: i % len(runs)]:
            if kind == "rules":
                workers.append(_worker(procs, address, work, lines, f"worker-{i}"))
            elif kind == "model":
                with_model.append(_worker(procs, address, work, lines, f"model-{i}", model))
            else:
                run = _worker(procs, address, work, lines, f"baseline-{i}", tree=tree)
                run.pop("alerts_by_id")  # its rules are its own: not compared
                baseline.append(run)
    together = [side_by_side(procs, address, work, lines, tree, i)
                for i in range(opts.side_by_side if tree else 0)]
    naive_uvloop = _naive(procs, address, work, lines, "naive-uvloop", uvloop=True)
    expected = backtest_alerts(events, force)
    for w in workers:
        w.update(readback.compare(w.pop("alerts_by_id"), expected))
    best_naive = max(naive, key=lambda r: r["events_per_s"])
    best_worker = max(workers, key=lambda r: r["events_per_s"])
    out: dict[str, Any] = {
        "broker": noida_version(), "events": lines, "event_time_span": span,
        "partitions": 4,
        "preload": {"seconds": round(preload, 1), "events_per_s": round(lines / preload)},
        "raw_aiokafka": raw,
        "naive_faust_agent": {**best_naive, "runs": [r["events_per_s"] for r in naive]},
        "naive_faust_agent_uvloop": naive_uvloop,
        "worker": {**best_worker, "runs": [r["events_per_s"] for r in workers]},
        "backtest_alerts": len(expected),
        "worker_to_naive": ratio(best_worker, best_naive, 2),
        # each worker run over the naive run just before it: the load they shared
        "worker_to_naive_pairs": [ratio(w, n, 2) for w, n in zip(workers, naive, strict=True)],
        "worker_to_raw": ratio(best_worker, raw, 3),
    }
    if baseline:
        best_baseline = max(baseline, key=lambda r: r["events_per_s"])
        out.update({
            "baseline": {**best_baseline, "revision": opts.baseline,
                         "runs": [r["events_per_s"] for r in baseline],
                         "cpu_us_per_event": [r["cpu_us_per_event"] for r in baseline]},
            "worker_to_baseline": ratio(best_worker, best_baseline, 2),
            # each rules-only run over the baseline run of its turn
            "worker_to_baseline_pairs": [ratio(w, b, 2) for w, b in zip(workers, baseline,
                                                                         strict=False)],
            "worker_cpu_us_per_event": [r["cpu_us_per_event"] for r in workers],
        })
    if together:
        out["side_by_side"] = {
            "turns": together,
            # this worker over the baseline's, turn by turn, and the median turn
            "events_per_s": [t["events_per_s_ratio"] for t in together],
            "cpu": [t["cpu_ratio"] for t in together],
            "median_events_per_s": round(statistics.median(
                t["events_per_s_ratio"] for t in together), 3),
            "median_cpu": round(statistics.median(t["cpu_ratio"] for t in together), 3),
        }
    if model is None:
        return out
    expected_model = backtest_alerts(events, force, model)
    for w in with_model:
        w.update(readback.compare(w.pop("alerts_by_id"), expected_model))
    best_model = max(with_model, key=lambda r: r["events_per_s"])
    out.update({
        "train_seconds": round(train_seconds, 1),
        "worker_model": {**best_model, "runs": [r["events_per_s"] for r in with_model]},
        "backtest_model_alerts": len(expected_model),
        "model_to_rules": ratio(best_model, best_worker, 2),
        # each model run over the rules-only run of its turn
        "model_to_rules_pairs": [ratio(m, w, 2) for m, w in zip(with_model, workers,
                                                                 strict=False)],
        "model_to_naive": ratio(best_model, best_naive, 2),
        "model_to_raw": ratio(best_model, raw, 3),
        # The same comparison in the workers' own CPU per event (least of each, and pair
        # by pair): it leaves out waiting, not a core slowed by the host's other load.
        "cpu_us_per_event": {"rules": [r["cpu_us_per_event"] for r in workers],
                             "model": [r["cpu_us_per_event"] for r in with_model]},
        "model_to_rules_cpu": cpu_ratio(workers, with_model),
        "model_to_rules_cpu_pairs": [cpu_ratio([w], [m])
                                     for m, w in zip(with_model, workers, strict=False)],
    })
    steps = [("scale_out", opts.scale_out,
              lambda: bench_scale_out(procs, address, work, force, 2 * lines, model)),
             ("latency", bool(opts.latency_rates),
              lambda: bench_latency(procs, address, work, force / "events.jsonl", model,
                                    opts.latency_rates,
                                    opts.latency_seconds)),
             ("memory", bool(opts.memory_forces),
              lambda: bench_memory(procs, address, work, opts.memory_forces, model))]
    for key, wanted, step in steps:
        if wanted:
            # One part failing leaves the others' figures standing; run.py reports it.
            try:
                out[key] = step()
            except LiveBenchError as e:
                out[key] = {"error": str(e)}
    return out


def side_by_side(procs: Processes, address: str, work: Path, total: int, tree: Path,
                 turn: int) -> dict[str, Any]:
    """This worker and the baseline's, rules only, started together and draining the same
    pre-loaded events at the same time (each its own consumer group): whatever the host
    does to one it does to the other.  Each is timed from its ``/healthz`` first answering
    to the ``/metrics`` sample in which it has read every event, and its own CPU over that
    span.  Ratios are this worker's events/s over the baseline's, and the baseline's CPU
    an event over this one's: above 1, this one is faster."""
    workers = []
    for name, t in ((f"pair{turn}-worker", None), (f"pair{turn}-baseline", tree)):
        environ = pipeline_env(address, name)
        if t is not None:
            environ["PYTHONPATH"] = os.pathsep.join([str(t), environ["PYTHONPATH"]])
        cli(environ, work, "topics", "create")
        workers.append(Worker(procs, name, environ, work))
    began: dict[str, tuple[float, float]] = {}
    ended: dict[str, tuple[float, float]] = {}

    def drained() -> bool:
        for w in workers:
            if w.name in ended:
                continue
            w.check()
            if w.name not in began:
                if get(w.port, "/healthz")[0] == 200:
                    began[w.name] = (time.perf_counter(), cpu_seconds(w.proc.pid))
                continue
            if w.metrics().get("accesswatch_events_consumed_total", 0) >= total:
                ended[w.name] = (time.perf_counter(), cpu_seconds(w.proc.pid))
        return len(ended) == len(workers)

    try:
        wait(drained, 180 + drain_deadline(total), f"two workers to read {total:,} events",
             every=0.05)
    finally:
        for w in workers:
            w.stop()
    runs = []
    for w in workers:
        (t0, c0), (t1, c1) = began[w.name], ended[w.name]
        runs.append({"events_per_s": round(total / (t1 - t0)),
                     "cpu_us_per_event": round((c1 - c0) / total * 1e6, 2)})
    this, base = runs
    return {"worker": this, "baseline": base,
            "events_per_s_ratio": round(this["events_per_s"] / base["events_per_s"], 3),
            "cpu_ratio": round(base["cpu_us_per_event"] / this["cpu_us_per_event"], 3)}


def ratio(a: dict[str, Any], b: dict[str, Any], digits: int) -> float | None:
    # None when a reader took every event in one sample (too few events to time).
    return round(a["events_per_s"] / b["events_per_s"], digits) if b["events_per_s"] else None


def head(source: Path, dest: Path, n: int) -> tuple[int, list[str]]:
    """The first ``n`` events of ``source`` into ``dest``: (how many, [first ts, last ts])."""
    count, first, last = 0, b"", b""
    with source.open("rb") as src, dest.open("wb") as out:
        for line in src:
            if line.strip():
                out.write(line)
                first, last = first or line, line
                count += 1
                if count == n:
                    break
    return count, [json.loads(line)["ts"] for line in (first, last) if line]


async def _raw_consume(address: str, total: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=address, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(4)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        samples: Samples = []
        got, deadline = 0, time.monotonic() + 300
        while got < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            got += sum(len(records) for records in batch.values())
            if got:
                samples.append((time.perf_counter(), got))
            if time.monotonic() > deadline:
                raise LiveBenchError(f"raw consumer read {got:,} of {total:,} events in 300 s")
        return {**rate(samples), "loop": "asyncio"}
    finally:
        await consumer.stop()


def _naive(procs: Processes, address: str, work: Path, total: int, name: str,
           uvloop: bool) -> dict[str, Any]:
    progress = work / f"{name}.progress"
    progress.touch()
    environ = {**env(address, name), "AW_BENCH_BROKER": address, "AW_BENCH_TOPIC": TOPIC,
               "AW_BENCH_APP_ID": f"bench-{name}", "AW_BENCH_DATA_DIR": str(work / name),
               "AW_BENCH_PROGRESS": str(progress)}
    loop = ["--loop", "uvloop"] if uvloop else []
    proc = procs.start(name, [sys.executable, "-m", "benchmarks.naive_agent", *loop, "worker",
                              "--web-host", "127.0.0.1", "--web-port", str(free_port())],
                       environ)
    try:
        def done() -> bool:
            if proc.poll() is not None:
                raise LiveBenchError(f"{name} exited with {proc.returncode}:\n"
                                     f"{procs.tail(name)}")
            samples = _progress(progress)
            return bool(samples) and samples[-1][1] >= total

        wait(done, drain_deadline(total), f"{name} to read {total:,} events", every=0.2)
    finally:
        procs.stop(proc)
    samples = _progress(progress)
    reached = next(i for i, (_, n) in enumerate(samples) if n >= total)
    return {**rate(samples[:reached + 1]), "loop": "uvloop" if uvloop else "asyncio"}


def _progress(path: Path) -> Samples:
    """The naive agent's complete ``<time> <events>`` lines (the last may be half written)."""
    text = path.read_text()
    return [(float(t), float(n)) for t, n in
            (line.split() for line in text[:text.rfind("\n") + 1].splitlines())]


def pipeline_env(address: str, name: str, model: Path | None = None,
                 **topics: str) -> dict[str, str]:
    """A worker's environment: app id ``bench-NAME``, its own alert and DLQ topics."""
    environ = env(address, f"bench-{name}", alerts=f"bench.{name}.alerts",
                  dlq=f"bench.{name}.dlq", **topics)
    if model is not None:
        environ["ACCESSWATCH_MODEL_PATH"] = str(model)
    return environ


def checkout(revision: str, into: Path) -> Path:
    """The tree of ``revision`` of this repository, unpacked into ``into`` (``git archive``)."""
    import subprocess

    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise LiveBenchError(f"git archive {revision}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def _worker(procs: Processes, address: str, work: Path, total: int, name: str,
            model: Path | None = None, events: str = TOPIC,
            tree: Path | None = None) -> dict[str, Any]:
    environ = pipeline_env(address, name, model, events=events)
    if tree is not None:  # another revision's code first on the path: its CLI, its worker
        environ["PYTHONPATH"] = os.pathsep.join([str(tree), environ["PYTHONPATH"]])
    cli(environ, work, "topics", "create")  # this run's changelog, alert and DLQ topics
    worker = Worker(procs, name, environ, work)
    try:
        ready = worker.wait_healthy()
        cpu_ready, machine_ready = cpu_seconds(worker.proc.pid), cpu_seconds()
        memory_ready = worker.memory()
        final, done = worker.wait_consumed(total)
        cpu = cpu_seconds(worker.proc.pid) - cpu_ready
        machine = cpu_seconds() - machine_ready
        memory_done = worker.memory()
    finally:
        worker.stop()
    batches = final.get("accesswatch_batch_size_count", 0) or 1
    return {
        # From ready (events held until then) to every event read: a drain, because the
        # processed counter moves a batch at a time and a batch can be a whole fetch.
        **rate([(ready, 0), (done, final.get("accesswatch_events_processed_total", 0))]),
        "loop": "uvloop", "batches": int(batches),
        "mean_batch_size": round(final.get("accesswatch_batch_size_sum", 0) / batches),
        "batch_seconds": round(final.get("accesswatch_batch_seconds_sum", 0), 2),
        "rejected": int(final.get("accesswatch_events_rejected_total", 0)),
        "alerts": int(final.get("accesswatch_alerts_total", 0)),
        # The worker's own CPU over the drain, and the machine's (every core: the broker,
        # this benchmark and anything else running), to tell the worker's cost from the
        # load around it.
        "cpu_seconds": round(cpu, 2),
        "cpu_us_per_event": round(cpu / total * 1e6, 2) if total else 0.0,
        "machine_cpu_seconds": round(machine, 2),
        "changelog_records": asyncio.run(readback.record_count(
            address, f"bench-{name}-user-state-changelog")),
        "alerts_by_id": asyncio.run(readback.alert_rules(address, f"bench.{name}.alerts")),
        "memory_ready": memory_ready, "memory_done": memory_done,
    }


def backtest_alerts(events: Path, force: Path, model: Path | None = None) -> dict[str, str]:
    """The alerts the backtest raises on ``events`` (id → rule id): what a worker must publish."""
    from accesswatch.backtest import run_backtest
    from accesswatch.reference import load_reference_dir
    from accesswatch.rules import load_rules

    ref, _ = load_reference_dir(force)
    loaded = None
    if model is not None:
        from models import load_model

        loaded = load_model(model)
    alerts = run_backtest(events, ref, load_rules(), model=loaded).alerts
    return {aid: a.rule_id for aid, a in alerts.items()}
