"""The model contract: anomaly scores separate incidents from ordinary work,
verdicts are explained, and the outcome does not depend on batch size."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from accesswatch.backtest import AlertBook, run_backtest
from accesswatch.contract.events import decode_event
from accesswatch.contract.timestamps import parse_ts
from accesswatch.core import Detector, Member
from accesswatch.core.features import NOTED, RAW
from accesswatch.evaluate import model_evidence
from accesswatch.reference import ReferenceData
from models import AnomalyModel
from models.anomaly import COLUMNS
from models.train import feature_rows

BEHAVIOURAL = ("S08", "S09", "S12", "V08", "V09", "V12", "V13")


def test_scores_separate_behavioural_incidents(
    force: Path, ref: ReferenceData, model: AnomalyModel
) -> None:
    """Each incident's strongest row against every ordinary row.  A row is made each
    time doubtful work climbs a rung, so an incident's first rows look like anyone's
    (two doubtful opens); what must stand out is the row it climbs to."""
    rows = feature_rows(force / "events.jsonl", Detector(None, ref))
    scores = model.score(model.columns(rows))
    labels = json.loads((force / "labels.json").read_text())
    incident_of = {e: i["incident_id"] for i in labels["incidents"] for e in i["event_ids"]}
    ordinary = [s for r, s in zip(rows, scores, strict=True)
                if not any(m[1] in incident_of for m in r.marks)]
    best: dict[str, float] = {}
    for r, s in zip(rows, scores, strict=True):
        for m in r.marks:
            if m[1] in incident_of:
                best[incident_of[m[1]]] = max(best.get(incident_of[m[1]], 0.0), float(s))
    aucs = {}
    for scenario in BEHAVIOURAL:
        top = [s for i, s in best.items() if i.startswith(scenario)]
        assert len(top) >= 5, f"{scenario}: too few incidents to judge"
        y = np.array([1] * len(top) + [0] * len(ordinary))
        aucs[scenario] = roc_auc_score(y, np.array(top + ordinary))
    print(f"\nROC AUC by scenario: {aucs}")
    assert all(auc >= 0.9 for auc in aucs.values()), aucs


def run_alerts(events, ref, model, batch: int,  # type: ignore[no-untyped-def]
               detector: Detector | None = None) -> dict[str, dict]:
    """The alerts ``events`` raise, by id, fed to a detector ``batch`` at a time."""
    detector = detector or Detector(None, ref, model=model)
    states: dict[str, Member] = {}
    book = AlertBook()
    for i in range(0, len(events), batch):
        book.add(detector.process_batch(events[i : i + batch], states))
    return {k: msgspec.to_builtins(v) for k, v in book.alerts.items()}


def test_alerts_do_not_depend_on_batch_size(
    force: Path, ref: ReferenceData, model: AnomalyModel
) -> None:
    with (force / "events.jsonl").open("rb") as f:
        events = [decode_event(line) for _, line in zip(range(60000), f, strict=False)]
    whole = run_alerts(events, ref, model, 100000)
    assert any(a["rule_id"] == model.rule_id for a in whole.values()), "no model alert to compare"
    for batch in (1, 37, 1000):
        assert run_alerts(events, ref, model, batch) == whole, batch


def test_model_alerts_carry_model_and_readable_reasons(
    force: Path, ref: ReferenceData, model: AnomalyModel
) -> None:
    with (force / "events.jsonl").open("rb") as f:
        events = [decode_event(line) for line in f]
    alerts = [a for a in run_alerts(events, ref, model, 2000).values()
              if a["rule_id"] == model.rule_id]
    assert alerts
    for alert in alerts:
        m = alert["model"]
        assert m["name"] == model.name and m["version"] == model.version
        assert m["anomaly_score"] >= model.threshold
        assert 1 <= len(m["top_features"]) <= 3
        assert {f["name"] for f in m["top_features"]} <= set(COLUMNS)
        assert alert["reasons"] and all(" " in r and len(r) > 25 for r in alert["reasons"])


def test_rows_follow_the_declared_features(force: Path, ref: ReferenceData) -> None:
    rows = feature_rows(force / "events.jsonl", Detector(None, ref))
    assert rows and all(len(r.values) == len(RAW) for r in rows)
    for r in rows:  # made on a doubtful open or a print, which is among its evidence
        assert any(m[:2] == (r.t, r.event_id) for m in r.marks), r
        assert all(m[0] <= r.t and m[3] & NOTED for m in r.marks)


def test_model_alerts_cite_the_doubtful_events_that_drove_them(
    force: Path, ref: ReferenceData, model: AnomalyModel
) -> None:
    """Each model alert no other rule joined lists only that member's doubtful opens and
    prints, none after its last firing; a true one, its incident's own events."""
    events = [decode_event(line) for line in (force / "events.jsonl").open("rb")]
    by_id = {e.event_id: e for e in events}
    noted = {e.event_id for e in events if e.action in ("print", "export")} | {
        r.marks[k][1] for r in feature_rows(force / "events.jsonl", Detector(None, ref))
        for k in range(len(r.marks))}
    alerts = [a for a in run_alerts(events, ref, model, 5000).values()
              if a["rule_id"] == model.rule_id]
    alone = [a for a in alerts if not any(r.startswith("also AW-") for r in a["reasons"])]
    assert len(alone) >= 5
    for a in alone:
        last = parse_ts(a["last_seen"])
        assert all(by_id[e].user_id == a["user_id"] for e in a["event_ids"])
        assert all(e in noted and by_id[e].t <= last for e in a["event_ids"]), a
    labels = json.loads((force / "labels.json").read_text())
    evidence = model_evidence(labels["incidents"], alerts)
    assert evidence is not None and evidence.alone >= 5
    assert evidence.alone_share is not None and evidence.alone_share >= 0.95, evidence


@pytest.mark.parametrize("batch", [1, 100, 1000])
def test_judge_scores_a_batch_at_a_time(
    model: AnomalyModel, batch: int, force: Path, ref: ReferenceData
) -> None:
    rows = feature_rows(force / "events.jsonl", Detector(None, ref))[:batch]
    verdicts = model.judge(rows)
    assert len(verdicts) == len(rows)


def test_backtest_jobs_give_one_process_alerts_with_the_model(
    force: Path, ref: ReferenceData, model: AnomalyModel
) -> None:
    one = run_backtest(force / "events.jsonl", ref, model=model)
    split = run_backtest(force / "events.jsonl", ref, model=model, jobs=2)
    assert any(a.rule_id == model.rule_id for a in one.alerts.values()), "no model alert"
    assert split.jobs == 2
    assert msgspec.json.encode(list(split.alerts.values())) == msgspec.json.encode(
        list(one.alerts.values())
    )
    assert split.events == one.events


def test_a_feed_sent_twice_changes_nothing_with_the_model(
    force: Path, ref: ReferenceData, model: AnomalyModel, tmp_path: Path
) -> None:
    """Issue 15's crash: ``cat events.jsonl events.jsonl`` into ``backtest --model`` died on
    the first event an hour behind its member's newest.  Now the second copy is all repeats
    (or too late, past the horizon): the same alerts, no valid event refused in the horizon."""
    once = run_backtest(force / "events.jsonl", ref, model=model)
    twice_file = tmp_path / "twice.jsonl"
    raw = (force / "events.jsonl").read_bytes()
    twice_file.write_bytes(raw + raw)
    twice = run_backtest(twice_file, ref, model=model, rejects_path=tmp_path / "rejects.jsonl")
    lines = sum(1 for ln in raw.splitlines() if ln.strip())
    assert twice.events == 2 * once.events
    # Each second copy is a repeat, or (its member's newest more than 24 h later) too late.
    assert twice.repeats + twice.too_late == once.events
    assert twice.rejected == once.rejected * 2 + twice.too_late
    assert twice.too_late and twice.repeats, (twice.too_late, twice.repeats)
    assert msgspec.json.encode(list(twice.alerts.values())) == msgspec.json.encode(
        list(once.alerts.values())
    )
    refused = [msgspec.json.decode(ln) for ln in (tmp_path / "rejects.jsonl").read_bytes()
               .splitlines()]
    assert all(r["line"] > lines for r in refused if r["reason_class"] == "too_late")


def test_training_rows_are_the_same_from_a_feed_as_delivered(
    force: Path, ref: ReferenceData, tmp_path: Path
) -> None:
    """Train on an audit extract as the feeds delivered it (late, out of order, lines
    repeated): the same feature rows as the time-ordered file, so the model is too."""
    from benchmarks.delivery import deliver

    stats = deliver(force / "events.jsonl", tmp_path / "delivered.jsonl", seed=3)
    assert stats.late and stats.repeats
    in_order = feature_rows(force / "events.jsonl", Detector(None, ref))
    delivered = feature_rows(tmp_path / "delivered.jsonl", Detector(None, ref))
    assert len(in_order) > 1000
    assert msgspec.to_builtins(delivered) == msgspec.to_builtins(in_order)
