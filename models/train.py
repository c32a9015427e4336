"""Fit the isolation forest on feature rows from a period of ordinary work.

>>> model = fit(rows, alert_rate=0.03)            # doctest: +SKIP
>>> save_model(model, Path("models/iforest.skops"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest

from accesswatch.contract.events import AccessEvent, decode_event
from accesswatch.contract.timestamps import format_ts
from accesswatch.core import Detector, UserState
from accesswatch.core.features import Row
from accesswatch.errors import InvalidRecord
from models.anomaly import COLUMNS, AnomalyModel

MIN_ROWS = 200  # member-hours with doubtful work
MIN_PEER_ROWS = 200  # ... for a peer group's own median and spread
# The least spread a column is given when explaining: most members print nothing
# and stay in area, so a raw spread of ~0 would make one print look extreme.
# Counts are on a log1p scale, so 0.5 there means "half again as many".
SCALE_FLOOR = {
    "unjustified_1h": 0.5,
    "unjustified_10m": 0.5,
    "unjustified_4h": 0.5,
    "unjustified_share": 0.1,
    # Ordinary work opens a record or two from elsewhere, some of them twice.
    "out_of_area_1h": 1.5,
    "out_of_area_4h": 1.5,
    "prints_1h": 0.5,
    "prints_4h": 0.5,
    "off_duty_minutes": 1.0,
    "justified_1h": 0.5,
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
    alert_rate: float = 0.03,
    odd_rate: float = 0.06,
    n_estimators: int = 100,
    seed: int = 0,
) -> AnomalyModel:
    """Fit on ``rows``, one per member and clock hour (``one_an_hour``); thresholds
    are the score quantiles that let through ``alert_rate`` (alerts) and
    ``odd_rate`` (weak signals) of those.

    A row is made only when a member's doubtful work climbs, so an incident in the
    training period makes a dozen rows where an ordinary hour makes one or two:
    taking one row a member-hour keeps incidents from teaching the forest, and the
    spreads, that they are usual.
    """
    hours = one_an_hour(rows)
    if len(hours) < MIN_ROWS:
        raise ValueError(
            f"{len(hours)} member-hours with doubtful work: too few to learn what is usual "
            f"(need {MIN_ROWS:,})"
        )
    model = AnomalyModel(
        forest=IsolationForest(),
        threshold=1.0,
        odd_threshold=1.0,
        median=[0.0] * len(COLUMNS),
        scale=[1.0] * len(COLUMNS),
    )
    x = model.columns(hours)
    forest = IsolationForest(
        n_estimators=n_estimators, max_samples=256, contamination="auto", random_state=seed
    ).fit(x)
    model.forest = forest
    scores = model.score(x)
    model.threshold = float(np.quantile(scores, 1 - alert_rate))
    model.odd_threshold = float(np.quantile(scores, 1 - odd_rate))
    model.median, model.scale = _spread(x)
    peers = np.array([r.peer for r in hours])
    for peer in sorted(set(peers.tolist())):
        group = x[peers == peer]
        if len(group) >= MIN_PEER_ROWS:
            model.peer_median[peer], model.peer_scale[peer] = _spread(group)
    times = [r.t for r in rows]
    model.meta = {
        "trained_from": format_ts(min(times)),
        "trained_to": format_ts(max(times)),
        "rows": len(hours),
        "users": len({r.user_id for r in rows}),
        "contamination": "auto",
        "alert_rate": alert_rate,
        "odd_rate": odd_rate,
        "n_estimators": n_estimators,
        "seed": seed,
    }
    return model


def one_an_hour(rows: Sequence[Row]) -> list[Row]:
    """Each member's last row in each clock hour, in time order."""
    last: dict[tuple[str, int], Row] = {}
    for r in rows:
        last[(r.user_id, int(r.t // 3600))] = r
    return sorted(last.values(), key=lambda r: (r.t, r.user_id))


def _spread(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Median and a robust spread (the MAD, as a standard deviation) per column.

    Many columns are mostly zero (MAD 0), so the spread is never below the
    column's floor.
    """
    median = np.median(x, axis=0)
    mad = np.median(np.abs(x - median), axis=0) * 1.4826
    floor = np.array([SCALE_FLOOR[c] for c in COLUMNS])
    scale = np.maximum(mad, floor)
    return [float(v) for v in median], [float(v) for v in scale]
