"""``make bench``: benchmark figures anyone can reproduce.

Writes ``docs/BENCHMARKS.md`` and ``benchmarks/results/results.json``.  Figures
are measured, never asserted: this machine is shared and noisy, so compare
ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

from accesswatch.backtest import run_backtest
from accesswatch.evaluate import evaluate
from accesswatch.generate import generate_force
from accesswatch.reference import load_reference_dir
from accesswatch.rules import load_rules

ROOT = Path(__file__).resolve().parents[1]


def force(staff: int, days: int, seed: int, cache: Path) -> Path:
    out = cache / f"force-{staff}x{days}-s{seed}"
    if not (out / "labels.json").exists():
        generate_force(out, staff=staff, days=days, seed=seed)
    return out


def bench_backtest(data: Path, repeats: int) -> dict[str, float]:
    ref, _ = load_reference_dir(data)
    rules = load_rules()
    best = None
    for _ in range(repeats):
        result = run_backtest(data / "events.jsonl", ref, rules)
        if best is None or result.seconds < best.seconds:
            best = result
    assert best is not None
    labels = json.loads((data / "labels.json").read_text())
    card = evaluate(labels, [_builtins(a) for a in best.alerts.values()])
    return {"events": best.events, "seconds": round(best.seconds, 2),
            "events_per_s": round(best.rate), "alerts": len(best.alerts),
            "false_alerts_per_1000_staff_day": round(card.false_per_1000_staff_day, 3)}


def _builtins(alert: object) -> dict:
    import msgspec

    return msgspec.to_builtins(alert)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--staff", type=int, default=2000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "accesswatch-bench")
    args = parser.parse_args()
    started = time.perf_counter()
    data = force(args.staff, args.days, args.seed, args.cache)
    results = {
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "platform": platform.platform()},
        "data": {"staff": args.staff, "days": args.days, "seed": args.seed},
        "backtest_rules_only": bench_backtest(data, args.repeats),
    }
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "BENCHMARKS.md").write_text(report(results))
    print(json.dumps(results, indent=2))


def report(r: dict) -> str:
    b = r["backtest_rules_only"]
    return f"""# Benchmarks

Produced by `make bench` (`python -m benchmarks.run`); raw figures in
`benchmarks/results/results.json` (not committed: run it yourself).

Machine: Python {r['machine']['python']}, {r['machine']['cpu_count']} cores, {r['machine']['platform']}.
Data: `accesswatch generate --staff {r['data']['staff']} --days {r['data']['days']} --seed {r['data']['seed']}`.
Method: best of several runs of the backtest in one process, timed from the first
line read to the last alert folded (decode + validation + every rule + folding),
reference data loaded beforehand.

| benchmark | events | seconds | events/s | alerts |
|---|---:|---:|---:|---:|
| backtest, rules only | {b['events']:,} | {b['seconds']} | {b['events_per_s']:,} | {b['alerts']:,} |

Peak RSS of the benchmark process: {r['peak_rss_mb']} MB.
"""


if __name__ == "__main__":
    main()
