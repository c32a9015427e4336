"""The cheap test before judging: it never keeps from the model a row the model could
explain, and rows it keeps away change no alert."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import msgspec

from accesswatch.contract.events import decode_event
from accesswatch.core import Detector
from accesswatch.core.features import Row
from accesswatch.reference import ReferenceData
from models import AnomalyModel
from models.anomaly import COLUMNS, SHARE_PRIOR
from models.train import feature_rows
from tests.models.test_model_contract import run_alerts

# opens, justified, doubtful (1h, 10m, 4h), away (1h, 4h), prints (1h, 4h), off duty
QUIET = (5.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # nothing stands out


def at_bounds(model: AnomalyModel, peer: str) -> list[Row]:
    """Rows with one raw value at the value where its column reaches ``min_z`` spreads
    above the peer group's median, and a few floating-point steps either side."""
    median = model.peer_median.get(peer, model.median)
    scale = model.peer_scale.get(peer, model.scale)
    at = {name: median[j] + model.min_z * scale[j] for j, name in enumerate(COLUMNS)}
    raw = {  # raw index → the raw value where the column reaches its mark
        2: [math.expm1(at["unjustified_1h"]), at["unjustified_share"] * (QUIET[0] + SHARE_PRIOR)],
        3: [math.expm1(at["unjustified_10m"])],
        4: [math.expm1(at["unjustified_4h"])],
        5: [at["out_of_area_1h"]],
        6: [at["out_of_area_4h"]],
        7: [math.expm1(at["prints_1h"])],
        8: [math.expm1(at["prints_4h"])],
        9: [math.expm1(at["off_duty_minutes"])],
    }
    rows = []
    for i, marks in raw.items():
        for mark in marks:
            for value in _around(mark):
                values = list(QUIET)
                values[i] = value
                rows.append(Row("u", "e", 0.0, peer, tuple(values)))
    return rows


def _around(x: float, steps: int = 3) -> list[float]:
    out = [x]
    down = up = x
    for _ in range(steps):
        down, up = math.nextafter(down, -math.inf), math.nextafter(up, math.inf)
        out += [down, up]
    return out


def test_no_row_the_model_could_explain_is_kept_from_it(
    force: Path, ref: ReferenceData, model: AnomalyModel
) -> None:
    rows = feature_rows(force / "events.jsonl", Detector(None, ref))
    peers = sorted({r.peer for r in rows})
    edge = [row for peer in [*peers, "no such group"] for row in at_bounds(model, peer)]
    for group, label in ((rows, "the force's rows"), (edge, "rows at the bounds")):
        explainable = model.explainable(model.z_scores(group))
        worth = [model.worth_judging(r) for r in group]
        missed = [r for r, e, w in zip(group, explainable, worth, strict=True) if e and not w]
        assert not missed, f"{label}: {missed[:3]}"
        assert explainable.any(), label  # the check had something to catch
    # ... and it does its job: most ordinary rows never reach the forest.
    worth_share = sum(model.worth_judging(r) for r in rows) / len(rows)
    assert worth_share < 0.2, worth_share
    # A row the test lets through is one a hair below a bound, at most.
    quiet = Row("u", "e", 0.0, peers[0], QUIET)
    assert not model.worth_judging(quiet)
    assert model.worth_judging(msgspec.structs.replace(quiet, values=(*QUIET[:2], 1e6,
                                                                      *QUIET[3:])))
    # Volume alone, however great, is never worth judging: a live operation's
    # hundreds of justified opens an hour explain nothing.
    busy = msgspec.structs.replace(quiet, values=(400.0, 400.0, *QUIET[2:]))
    assert not model.worth_judging(busy)
    assert model.judge([busy]) == [None]


def test_the_detector_counts_rows_due_and_rows_judged(
    force: Path, ref: ReferenceData, model: AnomalyModel
) -> None:
    with (force / "events.jsonl").open("rb") as f:
        events = [decode_event(line) for _, line in zip(range(60000), f, strict=False)]
    rows = Detector(None, ref).feature_rows(events, {})  # what training would see
    detector = Detector(None, ref, model=model)
    run_alerts(events, ref, model, 1000, detector)
    assert detector.rows_due == len(rows) > 0
    assert detector.rows_judged == sum(model.worth_judging(r) for r in rows) > 0


def test_rows_kept_from_the_model_change_no_alert(
    force: Path, ref: ReferenceData, model: AnomalyModel
) -> None:
    with (force / "events.jsonl").open("rb") as f:
        events = [decode_event(line) for line in f]
    gated = run_alerts(events, ref, model, 1000)
    everything = replace(model)  # same model, its own caches
    everything.worth_judging = lambda row: True  # type: ignore[method-assign]
    assert gated == run_alerts(events, ref, everything, 1000)
    assert any(a["rule_id"] == model.rule_id for a in gated.values()), "no model alert"
