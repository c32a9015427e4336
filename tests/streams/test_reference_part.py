"""A cold read with a second reader (``streams/reference_part.py``), against the broker.

The subjects read by a child process must come out as the worker reading them
itself would have them: every record, its updates and tombstones applied in
order, bad records refused and counted, the offsets read up to.  A second
reader that fails leaves the subjects to the worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from accesswatch.reference import ReferenceData
from streams import reference_part
from streams.metrics import Metrics
from streams.reference_feed import ReferenceFeed
from streams.settings import Settings
from tests.streams.live import live_force, read_until_ready

pytestmark = pytest.mark.broker

PARTITIONS = 3


def _messy(s: Settings, force: Path) -> list[str]:
    """After the generated records: an update, a tombstone, a record refused, and a
    subject that comes, goes and comes back.  The ids they touch."""
    first = json.loads((force / "subjects.jsonl").read_text().splitlines()[0])
    second = json.loads((force / "subjects.jsonl").read_text().splitlines()[1])
    moved = {**first, "postcode": "ZZ9 9ZZ", "flags": ["Firearms"], "area": "Elsewhere"}
    back = {"subject_id": "PER-BACK", "subject_type": "person", "surname": "Back"}
    producer = KafkaProducer(bootstrap_servers=s.servers)
    topic = s.topic_ref_subjects
    for key, value in ((first["subject_id"], moved), (second["subject_id"], None),
                       ("PER-BAD", {"subject_id": "PER-BAD", "subject_type": 7}),
                       ("PER-BACK", back), ("PER-BACK", None), ("PER-BACK", back)):
        producer.send(topic, key=key.encode(),
                      value=None if value is None else json.dumps(value).encode())
    producer.flush()
    producer.close()
    return [first["subject_id"], second["subject_id"], "PER-BAD", "PER-BACK"]


def _read(s: Settings, split: int) -> tuple[ReferenceData, ReferenceFeed]:
    """A cold read (a data dir of its own: no snapshot) by a feed as the worker's."""
    s = s.model_copy(update={"reference_split_records": split,
                             "data_dir": s.data_path / f"read-{split}-{uuid.uuid4().hex}"})
    ref = ReferenceData()
    feed = ReferenceFeed(s, ref, Metrics(CollectorRegistry()),
                         dict.fromkeys(s.ref_topics.values(), PARTITIONS))
    read_until_ready(feed)
    return ref, feed


def _held(ref: ReferenceData, feed: ReferenceFeed, ids: list[str]) -> dict[str, Any]:
    return {"sizes": ref.sizes(), "subjects": {sid: ref.subjects.get(sid) for sid in
                                               [*sorted(ref.subjects), *ids]},
            "areas": [ref.is_area(a) for a in ("North", "South", "City", "Elsewhere")],
            "applied": {k: n for k, n in feed.applied.items() if n},
            "positions": {f"{tp.topic}:{tp.partition}": n for tp, n in feed.positions.items()}}


def test_a_second_reader_holds_the_subjects_as_the_worker_would(
        broker: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _env, s, force = live_force(broker, tmp_path, staff=60, seed=5,
                                ref_partitions=str(PARTITIONS))
    ids = _messy(s, force)
    alone = _held(*_read(s, 0), ids)
    with caplog.at_level(logging.INFO, "accesswatch.reference"):
        split = _held(*_read(s, 1), ids)
    assert "subjects taken from the second reader" in caplog.text
    assert split == alone
    assert alone["applied"]["subject:invalid"] == 1 and alone["applied"]["subject:tombstone"] == 2
    assert alone["subjects"]["PER-BACK"] is not None and alone["subjects"][ids[1]] is None
    assert alone["subjects"][ids[0]].flags == frozenset({"firearms"})
    assert not list(s.data_path.glob("*/reference-part-*")), "its files are removed"


@pytest.mark.parametrize("how", ["exits", "cannot start"])
def test_a_second_reader_that_fails_leaves_the_subjects_to_the_worker(
        broker: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    _env, s, _force = live_force(broker, tmp_path, staff=60, seed=6,
                                 ref_partitions=str(PARTITIONS))

    async def fails(settings: Settings, ends: Any) -> reference_part.Part:
        if how == "cannot start":
            raise OSError(28, "No space left on device")
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "raise SystemExit(3)")
        tmp = tempfile.TemporaryDirectory(dir=tmp_path)
        return reference_part.Part(proc, Path(tmp.name) / "subjects", tmp)

    alone = _held(*_read(s, 0), [])
    monkeypatch.setattr(reference_part, "start_part", fails)
    with caplog.at_level(logging.INFO, "accesswatch.reference"):
        failed = _held(*_read(s, 1), [])
    said = {"exits": "second reader of the subjects failed (it exited with 3); reading them "
                     "here",
            "cannot start": "could not start a second reader of the subjects ([Errno 28] No "
                            "space left on device); reading them here"}[how]
    assert said in caplog.text
    assert failed == alone and alone["sizes"]["subject"] > 0
