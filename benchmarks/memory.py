"""A worker's memory with a whole force's reference data, at two force sizes.

For each force a fresh pipeline on the same broker (its own ``ref.*``,
events, alert and DLQ topics and app id): ``accesswatch load-ref`` puts the
force's reference data on its topics, one ``accesswatch worker`` (rules +
model) starts and reads all of it; once healthy and owning its partitions its
VmRSS and VmHWM (peak) are read from ``/proc/PID/status``.  Then
``accesswatch replay --rate 0`` feeds the force's first day of events, which
touches the members on duty that day and builds their per-user state, and the
memory is read again once the worker has processed them all.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from accesswatch.contract.timestamps import parse_ts
from benchmarks.broker import LiveBenchError, Processes
from benchmarks.report import unavailable
from benchmarks.workers import Worker, cli

DAY = 86400.0
REF_KINDS = ("staff", "subjects", "cases", "duties")


class _Ts(msgspec.Struct):
    ts: str


def bench_memory(procs: Processes, address: str, work: Path, forces: list[Path],
                 model: Path) -> dict[str, Any]:
    return {"forces": [_size(procs, address, work, f, model) for f in forces]}


def _size(procs: Processes, address: str, work: Path, force: Path,
          model: Path) -> dict[str, Any]:
    from benchmarks.live import pipeline_env

    counts = {k: _lines(force / f"{k}.jsonl") for k in REF_KINDS}
    name = f"mem{counts['staff']}"
    events = work / f"{name}.events.jsonl"
    day = first_day(force / "events.jsonl", events)
    environ = pipeline_env(address, name, model, events=f"bench.{name}.events",
                           **{f"ref_{k}": f"bench.{name}.ref.{k}" for k in REF_KINDS})
    cli(environ, work, "topics", "create")
    started = time.perf_counter()
    cli(environ, work, "load-ref", str(force))
    load_ref = time.perf_counter() - started
    worker = Worker(procs, name, environ, work)
    try:
        started = time.perf_counter()
        worker.wait_healthy(timeout=900)
        worker.wait_owning(4)
        ready_seconds = time.perf_counter() - started
        ready = worker.memory()
        held = worker.metrics().get("accesswatch_reference_records", 0)
        replay = procs.start(f"{name}-replay", [
            sys.executable, "-m", "accesswatch.cli", "replay", str(events), "--rate", "0",
            "--no-progress"], environ)
        if worker.wait_for(replay, 900, f"the replay of {day:,} events") != 0:
            raise LiveBenchError(f"replay for {name} failed:\n{procs.tail(name + '-replay')}")
        final, _ = worker.wait_consumed(day)
        done = worker.memory()
    finally:
        worker.stop()
    return {"staff": counts["staff"], "subjects": counts["subjects"], "cases": counts["cases"],
            "duties": counts["duties"], "reference_records_held": int(held),
            "load_ref_seconds": round(load_ref, 1), "ready_seconds": round(ready_seconds, 1),
            "events": day, "users_seen": _users(events),
            "processed": int(final.get("accesswatch_events_processed_total", 0)),
            "after_reference": ready, "after_events": done}


def first_day(source: Path, dest: Path) -> int:
    """The events of ``source``'s first 24 hours (it is sorted by ``ts``) into ``dest``."""
    decoder = msgspec.json.Decoder(_Ts)
    count, end = 0, None
    with source.open("rb") as src, dest.open("wb") as out:
        for line in src:
            if not line.strip():
                continue
            t = parse_ts(decoder.decode(line).ts)
            end = t + DAY if end is None else end
            if t >= end:
                break
            out.write(line)
            count += 1
    return count


def _lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


class _User(msgspec.Struct):
    user_id: str


def _users(events: Path) -> int:
    decoder = msgspec.json.Decoder(_User)
    with events.open("rb") as f:
        return len({decoder.decode(line).user_id for line in f if line.strip()})


HEADER = ("| staff | subjects | cases | duty periods | RSS after reference load MB "
          "| events (first day) | members active | RSS after events MB | peak RSS MB "
          "| seconds to healthy |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def report_memory(r: dict[str, Any] | None) -> str:
    """The memory section of ``docs/BENCHMARKS.md``."""
    title = "\n## Worker memory\n\n"
    if not r or "error" in r:
        return unavailable(title, r, "`--no-memory`, `--no-live-model` or `--live-events 0`")
    rows = "\n".join(
        f"| {f['staff']:,} | {f['subjects']:,} | {f['cases']:,} | {f['duties']:,} | "
        f"{f['after_reference']['rss_mb']:,.0f} | {f['events']:,} | {f['users_seen']:,} | "
        f"{f['after_events']['rss_mb']:,.0f} | **{f['after_events']['peak_rss_mb']:,.0f}** | "
        f"{f['ready_seconds']} |" for f in r["forces"])
    small = r["forces"][0]
    peak = small["after_events"]["peak_rss_mb"]
    verdict = "met" if peak <= 400 else "**not met**"
    return title + f"""Method: for each force a fresh pipeline on the same broker (its own `ref.*`,
events, alert and DLQ topics and app id). `accesswatch load-ref` puts the force's reference data
on its topics; one `accesswatch worker`, rules + model, reads all of it. Once it is
healthy and owns its 4 partitions, its VmRSS is read from `/proc/PID/status`. Then
`accesswatch replay --rate 0` feeds the force's first 24 hours of events, which builds
per-user state for every member active that day, and VmRSS and VmHWM (the peak over the
process's life, reference load included) are read again once the worker has processed
them all. The 2,000-staff force is the one above; the larger one is
`accesswatch generate --staff 20000 --days 3 --seed 7` (about 30 subjects per member,
as the generator makes them).

{HEADER}
{rows}

Issue 5 asks for at most 400 MB at 2,000 staff and 60,000 subjects: {peak:,.0f} MB
peak at {small['staff']:,} / {small['subjects']:,}, {verdict}.
"""
