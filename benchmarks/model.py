"""Model benchmarks: scoring rows/s by batch size, and the backtest with a model.

Both scorers are timed in the same run on the same rows: scikit-learn's
``IsolationForest.score_samples`` and accesswatch's flat numpy walk
(``models/flatforest.py``), which the pipeline uses up to 400 rows a batch.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from accesswatch.backtest import run_backtest
from accesswatch.contract.timestamps import parse_ts
from accesswatch.core import Detector
from accesswatch.reference import ReferenceData
from models.anomaly import AnomalyModel
from models.flatforest import FlatForest
from models.train import feature_rows, fit

START = parse_ts("2026-03-02T00:00:00Z")


def train(data: Path, ref: ReferenceData, days: float = 7) -> tuple[AnomalyModel, float]:
    started = time.perf_counter()
    rows = feature_rows(data / "events.jsonl", Detector(None, ref), until=START + days * 86400)
    return fit(rows), time.perf_counter() - started


def scoring_rates(model: AnomalyModel, data: Path, ref: ReferenceData,
                  sizes: tuple[int, ...] = (1, 100, 1000)) -> list[dict[str, Any]]:
    rows = feature_rows(data / "events.jsonl", Detector(None, ref), until=START + 86400)
    x = model.columns(rows)
    flat = FlatForest(model.forest)
    out = []
    for n in sizes:
        batch = x[:n]
        reps = max(3, 3000 // n)
        sk = _rate(lambda b=batch: model.forest.score_samples(b), n, reps)
        fl = _rate(lambda b=batch: flat.score_samples(b), n, reps)
        out.append({"batch": n, "sklearn_rows_per_s": round(sk), "pipeline_rows_per_s": round(fl)})
    return out


def _rate(fn: Any, n: int, reps: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(reps):
        fn()
    return n * reps / (time.perf_counter() - started)


def backtest_with_model(data: Path, ref: ReferenceData, model: AnomalyModel,
                        repeats: int) -> dict[str, float]:
    best = None
    for _ in range(repeats):
        result = run_backtest(data / "events.jsonl", ref, model=model)
        if best is None or result.seconds < best.seconds:
            best = result
    assert best is not None
    return {"events": best.events, "seconds": round(best.seconds, 2),
            "events_per_s": round(best.rate), "alerts": len(best.alerts)}
