"""Hot reload against the real broker: swap the model while events flow.

A worker starts with model M1.  Half the events go through; a damaged model
file is refused (metric up, M1 stays); then M2 replaces it; the rest go
through.  The alert set must equal the backtest's with the same swap at the
same point, and model alerts after the swap must carry M2's version.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import msgspec
import pytest

from accesswatch.backtest import AlertBook
from accesswatch.contract.events import decode_event
from accesswatch.core import Detector, UserState
from accesswatch.generate import generate_force
from accesswatch.ops.produce import event_key
from accesswatch.reference import load_reference_dir
from accesswatch.rules import load_rules
from models import load_model, save_model
from models.train import feature_rows, fit
from streams.settings import Settings
from streams.topics import create_topics
from tests.streams.conftest import wait_until
from tests.streams.live import WorkerProcess, aw, kcat_produce, read_topic, total

pytestmark = pytest.mark.broker


def _env(broker: str, work: Path, model: Path) -> dict[str, str]:
    p = f"h{uuid.uuid4().hex[:8]}"
    return {"ACCESSWATCH_BOOTSTRAP_SERVERS": broker, "ACCESSWATCH_APP_ID": f"{p}-aw",
            "ACCESSWATCH_TOPIC_EVENTS": f"{p}.events", "ACCESSWATCH_TOPIC_ALERTS": f"{p}.alerts",
            "ACCESSWATCH_TOPIC_DLQ": f"{p}.dlq", "ACCESSWATCH_TOPIC_REF_STAFF": f"{p}.staff",
            "ACCESSWATCH_TOPIC_REF_SUBJECTS": f"{p}.subjects",
            "ACCESSWATCH_TOPIC_REF_CASES": f"{p}.cases",
            "ACCESSWATCH_TOPIC_REF_DUTIES": f"{p}.duties", "ACCESSWATCH_PARTITIONS": "4",
            "ACCESSWATCH_DATA_DIR": str(work / "faust"),
            "ACCESSWATCH_MODEL_PATH": str(model), "ACCESSWATCH_RELOAD_INTERVAL": "0.3"}


def _model_version(w: WorkerProcess) -> str | None:
    for key in w.metrics():
        if key.startswith("accesswatch_model_info{"):
            labels = dict(part.split("=", 1) for part in key[len("accesswatch_model_info{"):-1]
                          .split(","))
            return labels.get("version")
    return None


def _swap_in(source: Path, target: Path) -> None:
    tmp = target.with_name(target.name + ".new")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)  # atomic, as a deployment would do it


def test_model_swap_while_events_flow(broker: str, tmp_path: Path) -> None:
    force = tmp_path / "force"
    generate_force(force, staff=150, days=3, seed=13)
    ref, _ = load_reference_dir(force)
    rows = feature_rows(force / "events.jsonl", Detector(None, ref))
    # Generous alert rates so a small force raises model alerts on both sides of the swap.
    m1, m2 = tmp_path / "m1.skops", tmp_path / "m2.skops"
    # (Rows come only from doubtful work: this force has ~270 member-hours of it.)
    v1 = save_model(fit(rows, alert_rate=0.1, odd_rate=0.2, seed=1), m1)
    v2 = save_model(fit(rows, alert_rate=0.15, odd_rate=0.3, seed=2), m2)
    assert v1 != v2
    live_model = tmp_path / "live.skops"
    shutil.copyfile(m1, live_model)

    env = _env(broker, tmp_path, live_model)
    settings = Settings.model_validate({k.removeprefix("ACCESSWATCH_").lower(): v
                                        for k, v in env.items()})
    create_topics(settings)
    assert aw(env, "load-ref", str(force), cwd=tmp_path).returncode == 0
    lines = [ln for ln in (force / "events.jsonl").read_bytes().split(b"\n") if ln.strip()]
    half = len(lines) // 2

    w = WorkerProcess(env, tmp_path, "reload-worker")
    try:
        w.wait_ready()
        assert _model_version(w) == v1
        kcat_produce(broker, settings.topic_events, [(event_key(ln), ln) for ln in lines[:half]])
        wait_until(lambda: total(w.metrics(), "accesswatch_events_processed_total") >= half,
                   120, "the first half processed")

        live_model.write_bytes(b"a damaged model file")
        wait_until(lambda: total(w.metrics(), "accesswatch_model_reload_failures_total") >= 1,
                   30, "the damaged model refused")
        assert _model_version(w) == v1

        _swap_in(m2, live_model)
        wait_until(lambda: _model_version(w) == v2, 30, "model 2 in force")
        kcat_produce(broker, settings.topic_events, [(event_key(ln), ln) for ln in lines[half:]])
        wait_until(lambda: total(w.metrics(), "accesswatch_events_processed_total") >= len(lines),
                   120, "every event processed")

        def published() -> list[dict] | None:
            counted = total(w.metrics(), "accesswatch_alerts_total")
            got = [msgspec.json.decode(r.value) for r in read_topic(settings,
                                                                    settings.topic_alerts)]
            return got if len(got) >= counted else None

        alerts = wait_until(published, 60, "alerts on the topic", every=0.2)
    finally:
        assert w.stop() == 0, w.tail()

    # The same swap at the same point, offline.
    detector = Detector(load_rules(), ref, model=load_model(m1))
    states: dict[str, UserState] = {}
    book = AlertBook()
    events = [decode_event(ln) for ln in lines]
    book.add(detector.process_batch(events[:half], states))
    detector.set_model(load_model(m2))
    book.add(detector.process_batch(events[half:], states))

    assert {a["alert_id"] for a in alerts} == set(book.alerts)
    # An alert that grew in the second half may have a second version by now (how soon
    # depends on how long the first half took): never the same version twice.
    versions = [(a["alert_id"], a.get("version", 1)) for a in alerts]
    assert len(versions) == len(set(versions))
    newest = {a["alert_id"]: a for a in sorted(alerts, key=lambda a: a.get("version", 1))}
    second_half = {e.event_id for e in events[half:]}
    model_alerts = [a for a in newest.values() if a["rule_id"] == "AW-M01"]
    after = [a for a in model_alerts if a["event_ids"][-1] in second_half]
    before = [a for a in model_alerts if a["event_ids"][-1] not in second_half]
    assert after and before, "the test force must raise model alerts on both sides"
    assert {a["model"]["version"] for a in after} == {v2}
    assert {a["model"]["version"] for a in before} == {v1}
