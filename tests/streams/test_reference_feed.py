"""Reference-topic records applied live: upserts, tombstones, and records refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from accesswatch.reference import ReferenceData
from streams.reference_feed import apply_record

STAFF = {"user_id": "E1", "surname": "Okafor", "role": "constable", "unit": "Response",
         "area": "North", "status": "active"}


def test_upsert_then_change_then_tombstone() -> None:
    ref = ReferenceData()
    assert apply_record(ref, "staff", b"E1", msgspec.json.encode(STAFF)) == ("upsert", None)
    assert ref.staff["E1"].status == "active"
    leaver = msgspec.json.encode({**STAFF, "status": "leaver"})
    assert apply_record(ref, "staff", b"E1", leaver)[0] == "upsert"
    assert ref.staff["E1"].status == "leaver"
    assert apply_record(ref, "staff", b"E1", None) == ("tombstone", None)
    assert "E1" not in ref.staff and ref.sizes()["staff"] == 0


def test_bad_records_are_refused_and_change_nothing() -> None:
    ref = ReferenceData()
    apply_record(ref, "staff", b"E1", msgspec.json.encode(STAFF))
    op, why = apply_record(ref, "staff", b"E1", b'{"user_id": "E1"')
    assert op == "invalid" and why is not None and why.startswith("invalid_json")
    op, why = apply_record(ref, "staff", b"E2", msgspec.json.encode(STAFF))
    assert op == "invalid" and "key" in (why or "")
    assert apply_record(ref, "staff", None, None)[0] == "invalid"
    assert apply_record(ref, "staff", b"E1", b"[1, 2")[0] == "invalid"  # truncated array
    assert ref.staff["E1"].status == "active" and ref.sizes()["staff"] == 1


def test_every_kind_has_a_topic() -> None:
    ref = ReferenceData()
    case = {"case_ref": "C1", "status": "open", "assigned_users": ["E1"], "subject_ids": ["P1"]}
    duty = {"duty_id": "D1", "user_id": "E1", "start": "2026-03-02T08:00:00Z",
            "end": "2026-03-02T16:00:00Z"}
    subject = {"subject_id": "P1", "subject_type": "person", "flags": ["victim"]}
    for kind, key, rec in (("case", b"C1", case), ("duty", b"D1", duty),
                           ("subject", b"P1", subject)):
        assert apply_record(ref, kind, key, msgspec.json.encode(rec))[0] == "upsert"
    assert ref.sizes() == {"staff": 0, "subject": 1, "case": 1, "duty": 1}


def test_a_cold_read_applies_in_order_and_refuses_what_apply_record_refuses() -> None:
    """The cold read's inlined checks: same outcome as ``apply_record`` record by record."""
    from aiokafka import ConsumerRecord
    from prometheus_client import CollectorRegistry

    from streams.metrics import Metrics
    from streams.reference_feed import ReferenceFeed
    from streams.settings import Settings

    def rec(offset: int, key: bytes | None, value: bytes | None) -> ConsumerRecord:
        return ConsumerRecord("ref.staff", 0, offset, 0, 0, key, value, None, 0,
                              len(value or b""), [])

    leaver = msgspec.json.encode({**STAFF, "status": "leaver"})
    other = msgspec.json.encode({**STAFF, "user_id": "E2"})
    batch = [rec(0, b"E1", msgspec.json.encode(STAFF)), rec(1, b"E1", None),  # then gone
             rec(2, b"E2", b'{"user_id": "E2"'),  # truncated: refused
             rec(3, b"E9", other),  # the key does not name the record: refused
             rec(4, b"E2", other), rec(5, b"E3", msgspec.json.encode(
                 {**STAFF, "user_id": "E3", "last_active": "yesterday"})),  # refused
             rec(6, b"E4", leaver.replace(b'"E1"', b'"E4"')), rec(7, b"E4", None),
             rec(8, b"E4", leaver.replace(b'"E1"', b'"E4"'))]  # back again
    expected = ReferenceData()
    ops = [apply_record(expected, "staff", r.key, r.value)[0] for r in batch]
    ref = ReferenceData()
    ref.begin_load()
    feed = ReferenceFeed(Settings(), ref, Metrics(CollectorRegistry()), {"ref.staff": 1})
    feed._apply("ref.staff", batch)
    ref.freeze()
    assert sorted(ref.staff) == sorted(expected.staff) == ["E2", "E4"]
    assert all(ref.staff[u] == expected.staff[u] for u in ("E2", "E4"))
    assert {k: n for k, n in feed.applied.items() if n} == {
        f"staff:{op}": ops.count(op) for op in set(ops)}


def test_a_cold_read_takes_one_partition_at_a_time(broker: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A partition assigned is fetched in the background, and a broker may answer with all
    it holds: the cold read assigns one at a time and all of them only once caught up."""
    from aiokafka import AIOKafkaConsumer
    from prometheus_client import CollectorRegistry

    from accesswatch.reference import load_reference_dir
    from streams.metrics import Metrics
    from streams.reference_feed import ReferenceFeed
    from tests.streams.live import live_force, read_until_ready

    _env, s, force = live_force(broker, tmp_path, staff=60, seed=5, ref_partitions="3")
    sizes: list[int] = []
    assign = AIOKafkaConsumer.assign

    def spy(self: AIOKafkaConsumer, partitions: list[Any]) -> None:
        sizes.append(len(partitions))
        assign(self, partitions)

    monkeypatch.setattr(AIOKafkaConsumer, "assign", spy)
    ref = ReferenceData()
    feed = ReferenceFeed(s, ref, Metrics(CollectorRegistry()),
                         dict.fromkeys(s.ref_topics.values(), 3))
    read_until_ready(feed)
    assert sizes[-1] == 12 and sizes[:-1] and set(sizes[:-1]) == {1}, sizes
    assert ref.sizes() == load_reference_dir(force)[0].sizes()
