"""Item 7: what the pipeline logs and exports carries no personal data.

A full live run (``load-ref``, ``replay``, a worker) with its logs captured:
no surname, forename, postcode, address or query text from the input may
appear in them.  The metric labels of a worker that has processed the feed
never hold a user id, subject id or event id.  The dead-letter topic, which
holds the original bytes of rejected events (personal data), gets its
``retention.ms`` from ``DLQ_RETENTION_HOURS``.
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from tests.reliability.harness import Force, pipeline_env, prepare, wait_committed_to_end
from tests.streams.live import WorkerProcess, aw

pytestmark = pytest.mark.broker


def records(path: Path) -> list[dict]:
    return [msgspec.json.decode(ln) for ln in path.read_bytes().splitlines() if ln.strip()]


def personal_data(force: Force) -> set[str]:
    """Every name, postcode, address and query text in the input, as written there."""
    found: set[str] = set()
    for rec in records(force.dir / "staff.jsonl") + records(force.dir / "subjects.jsonl"):
        for field in ("surname", "forenames", "home_postcode", "postcode", "address"):
            value = rec.get(field)
            if value:
                found.add(value)
                found.update(value.split())  # each forename, each half of a postcode...
    for raw in force.lines:
        try:
            query = msgspec.json.decode(raw).get("query")
        except (msgspec.DecodeError, AttributeError):
            continue
        if isinstance(query, str):
            found.add(query)
    # Too short to mean anything alone ("J", "LS1" halves of postcodes are kept whole above).
    return {v for v in found if len(v.strip()) >= 4}


def leaks(text: str, values: set[str]) -> list[str]:
    words = set(re.findall(r"[\w'-]+", text))
    hits = [v for v in values if " " not in v and v in words]
    hits += [v for v in values if " " in v and v in text]
    return sorted(hits)


def test_logs_metrics_and_the_dlq_keep_personal_data_in(broker: str, force: Force,
                                                        tmp_path: Path) -> None:
    env = pipeline_env(broker, tmp_path, dlq_retention_hours="36")
    s = prepare(env, force, tmp_path)  # load-ref runs here; run it again to keep its output
    loaded = aw(env, "load-ref", str(force.dir), cwd=tmp_path)
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b"\n".join(force.lines) + b"\n")
    w = WorkerProcess(env, tmp_path, "privacy-worker")
    try:
        w.wait_ready()
        replayed = aw(env, "replay", str(feed), "--rate", "0", cwd=tmp_path)
        assert replayed.returncode == 0, replayed.stderr
        wait_committed_to_end(s)
        _, exposition = w.get("/metrics")
    finally:
        w.stop()
    logs = {"worker": w.log.read_text(errors="replace"),
            "load-ref": loaded.stdout + loaded.stderr,
            "replay": replayed.stdout + replayed.stderr}

    values = personal_data(force)
    assert len(values) > 1000, "the input should hold plenty of personal data to look for"
    for name, text in logs.items():
        assert text.strip(), f"{name} logged nothing: the test would prove nothing"
        assert leaks(text, values) == [], f"{name} log holds personal data"

    ids = {r["user_id"] for r in records(force.dir / "staff.jsonl")}
    ids |= {r["subject_id"] for r in records(force.dir / "subjects.jsonl")}
    for raw in force.lines:
        try:
            ev = msgspec.json.decode(raw)
            ids |= {ev.get("user_id"), ev.get("subject_id"), ev.get("event_id")} - {None}
        except (msgspec.DecodeError, AttributeError, TypeError):
            continue
    labels = {v for fam in text_string_to_metric_families(exposition) for sample in fam.samples
              for v in sample.labels.values()}
    assert labels, "the worker exported labelled metrics"
    assert not labels & ids, sorted(labels & ids)[:5]

    admin = KafkaAdminClient(bootstrap_servers=s.servers)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC,
                                                           s.topic_dlq)])
    finally:
        admin.close()
    retention = described["topic"][s.topic_dlq]["retention.ms"]["value"]
    assert int(retention) == 36 * 3_600_000
