"""The backtest split across processes (``backtest --jobs N``) beside one process.

Each configuration runs ``repeats`` times, alternated, best kept; all in the
same run, so the ratios hold even when the machine is busy.  Child CPU seconds
are reported too: on a shared machine, wall time shows how many cores the
processes actually got, CPU time what the split itself costs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from accesswatch.backtest import BacktestResult, run_backtest
from accesswatch.core.detector import Model
from accesswatch.reference import ReferenceData, load_reference_dir
from accesswatch.rules import load_rules


def bench_jobs(data: Path, repeats: int, jobs: int = 2) -> dict[str, Any]:
    from benchmarks.model import train

    ref, _ = load_reference_dir(data)
    model, _ = train(data, ref)
    out: dict[str, Any] = {"jobs": jobs, "cpu_count": os.cpu_count()}
    for name, m in (("rules_only", None), ("rules_model", model)):
        best: dict[int, dict[str, Any]] = {}
        for _ in range(repeats):
            for n in (1, jobs):
                run = _timed(data, ref, m, n)
                if n not in best or run["seconds"] < best[n]["seconds"]:
                    best[n] = run
        out[name] = {"one": best[1], "split": best[jobs]}
    return out


def _timed(data: Path, ref: ReferenceData, model: Model | None, jobs: int) -> dict[str, Any]:
    before = os.times()
    result: BacktestResult = run_backtest(
        data / "events.jsonl", ref, load_rules(), model=model, jobs=jobs
    )
    after = os.times()
    cpu = (after.user - before.user + after.system - before.system) + (
        after.children_user - before.children_user + after.children_system - before.children_system
    )
    return {
        "events": result.events,
        "seconds": round(result.seconds, 2),
        "events_per_s": round(result.rate),
        "cpu_seconds": round(cpu, 2),
        "alerts": len(result.alerts),
    }


def report_jobs(r: dict[str, Any] | None) -> str:
    if not r:
        return ""
    rows = []
    for name, label in (("rules_only", "rules only"), ("rules_model", "rules + model")):
        one, split = r[name]["one"], r[name]["split"]
        for what, run in (("1 process", one), (f"--jobs {r['jobs']}", split)):
            rows.append(
                f"| {label} | {what} | {run['seconds']} | {run['events_per_s']:,} | "
                f"{run['cpu_seconds']} | {run['alerts']:,} | "
                f"{run['events_per_s'] / one['events_per_s']:.2f} |"
            )
    table = "\n".join(rows)
    return f"""
## Backtest across processes

`accesswatch backtest --jobs {r["jobs"]}` splits the members by a stable hash of
`user_id` (as the live workers split partitions) and writes the same alerts
file as one process.  Best of several alternated runs; CPU seconds include the
child processes ({r["cpu_count"]} cores on this machine, shared).

| backtest | processes | seconds | events/s | CPU s | alerts | × one process |
|---|---|---:|---:|---:|---:|---:|
{table}
"""
