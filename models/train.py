"""Fit the isolation forest on feature rows from a period of ordinary work.

>>> model = fit(rows, alert_rate=0.0002)          # doctest: +SKIP
>>> save_model(model, Path("models/iforest.skops"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest

from accesswatch.contract.events import AccessEvent, decode_event
from accesswatch.contract.timestamps import format_ts
from accesswatch.core import Detector, UserState
from accesswatch.core.features import RAW, Row
from accesswatch.errors import InvalidRecord
from models.anomaly import COLUMNS, AnomalyModel

_USUAL = RAW.index("usual_per_hour")
# The least spread a column is given when explaining: most members print nothing
# and stay in area, so a raw spread of ~0 would make one print look extreme.
# Counts are on a log1p scale, so 0.5 there means "half again as many".
MIN_PEER_ROWS = 200
SCALE_FLOOR = {
    "opens_1h": 0.5,
    "opens_vs_usual": 0.75,
    "opens_vs_peers": 0.75,
    "distinct_10m": 0.5,
    "speed_10m": 2.0,
    "unjustified_1h": 0.5,
    "out_of_area_1h": 1.0,
    "prints_1h": 0.5,
    "off_duty_minutes": 1.0,
    "new_terminal": 0.5,
    "idle_hours": 1.0,
}


def feature_rows(
    events_path: Path, detector: Detector, *, since: float | None = None, until: float | None = None
) -> list[Row]:
    """Every feature row the core emits for the events in ``[since, until)``.

    A file as feeds deliver it is late, out of order and repeats lines: the events
    are taken once each (by member and ``event_id``) and in event time, as the
    detector judges them, so training sees the rows the worker will score.
    """
    states: dict[str, UserState] = {}
    events: dict[tuple[str, str], AccessEvent] = {}
    with events_path.open("rb") as f:
        for line in f:
            try:
                event = decode_event(line.rstrip(b"\r\n"))
            except InvalidRecord:
                continue
            if (since is not None and event.t < since) or (until is not None and event.t >= until):
                continue
            events.setdefault((event.user_id, event.event_id), event)
    ordered = sorted(events.values(), key=_time)
    rows: list[Row] = []
    for i in range(0, len(ordered), 5000):
        rows.extend(detector.feature_rows(ordered[i : i + 5000], states))
    return rows


def _time(event: AccessEvent) -> tuple[float, str]:
    return (event.t, event.event_id)


def fit(
    rows: Sequence[Row],
    *,
    alert_rate: float = 0.0002,
    odd_rate: float = 0.005,
    n_estimators: int = 100,
    seed: int = 0,
) -> AnomalyModel:
    """Fit on ``rows``; thresholds are the score quantiles that let through
    ``alert_rate`` (alerts) and ``odd_rate`` (weak signals) of them."""
    if len(rows) < 1000:
        raise ValueError(f"{len(rows)} feature rows: too few to learn what is usual (need 1,000)")
    peer_usual = _peer_usual(rows)
    model = AnomalyModel(
        forest=IsolationForest(),
        threshold=1.0,
        odd_threshold=1.0,
        peer_usual=peer_usual,
        median=[0.0] * len(COLUMNS),
        scale=[1.0] * len(COLUMNS),
    )
    x = model.columns(rows)
    forest = IsolationForest(
        n_estimators=n_estimators, max_samples=256, contamination="auto", random_state=seed
    ).fit(x)
    model.forest = forest
    scores = model.score(x)
    model.threshold = float(np.quantile(scores, 1 - alert_rate))
    model.odd_threshold = float(np.quantile(scores, 1 - odd_rate))
    median, scale = _spread(x)
    model.median, model.scale = median, scale
    peers = np.array([r.peer for r in rows])
    for peer in sorted(set(peers.tolist())):
        group = x[peers == peer]
        if len(group) >= MIN_PEER_ROWS:
            model.peer_median[peer], model.peer_scale[peer] = _spread(group)
    times = [r.t for r in rows]
    model.meta = {
        "trained_from": format_ts(min(times)),
        "trained_to": format_ts(max(times)),
        "rows": len(rows),
        "users": len({r.user_id for r in rows}),
        "contamination": "auto",
        "alert_rate": alert_rate,
        "odd_rate": odd_rate,
        "n_estimators": n_estimators,
        "seed": seed,
    }
    return model


def _spread(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Median and a robust spread per column.

    Many columns are mostly zero (MAD 0), so the spread is also at least the
    distance from the median to the 90th percentile over 1.28 (what it would
    be for a normal distribution), and never below the column's floor.
    """
    median = np.median(x, axis=0)
    mad = np.median(np.abs(x - median), axis=0) * 1.4826
    tail = (np.quantile(x, 0.9, axis=0) - median) / 1.2816
    floor = np.array([SCALE_FLOOR[c] for c in COLUMNS])
    scale = np.maximum(np.maximum(mad, tail), floor)
    return [float(v) for v in median], [float(v) for v in scale]


def _peer_usual(rows: Sequence[Row]) -> dict[str, float]:
    """Median usual opens per active hour for each role/unit, and ``*`` for all."""
    latest: dict[str, tuple[str, float]] = {}
    for r in rows:
        if r.values[_USUAL] > 0:
            latest[r.user_id] = (r.peer, r.values[_USUAL])
    groups: dict[str, list[float]] = defaultdict(list)
    for peer, usual in latest.values():
        groups[peer].append(usual)
    out = {peer: float(np.median(v)) for peer, v in groups.items()}
    out["*"] = float(np.median([u for _, u in latest.values()])) if latest else 1.0
    return out
