"""A worker restarts from its reference snapshot, reads only the tail, and refuses a bad one.

Against the test broker: a worker reads the reference topics whole and writes its
snapshot; stopped, the topics change (an upsert and a tombstone); started again
in the same data dir it maps the snapshot in, reads just the two new records and
holds what the topics say.  A snapshot damaged on disk, or one written for other
topics, is refused in one log line and the topics are read whole instead.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from streams.reference_feed import SNAPSHOT_DIR
from tests.streams.live import WorkerProcess, live_force, produce, total

UPSERTS = "accesswatch_reference_updates_total"


def _staff(force: Path) -> list[dict[str, object]]:
    return [msgspec.json.decode(ln) for ln in (force / "staff.jsonl").read_bytes().splitlines()
            if ln.strip()]


def _held(w: WorkerProcess, kind: str) -> float:
    return w.metrics()[f"accesswatch_reference_records{{kind={kind}}}"]


def _log(w: WorkerProcess) -> str:
    return w.log.read_text(errors="replace")


def test_a_restart_maps_its_snapshot_and_reads_only_the_tail(broker: str,
                                                              tmp_path: Path) -> None:
    env, s, force = live_force(broker, tmp_path, staff=60, seed=3)
    staff = _staff(force)
    first = WorkerProcess(env, tmp_path, "first")
    try:
        first.wait_ready()
        applied = total(first.metrics(), UPSERTS)
        held = _held(first, "staff")
    finally:
        assert first.stop() == 0
    snapshot = Path(env["ACCESSWATCH_DATA_DIR"]) / SNAPSHOT_DIR
    assert (snapshot / "manifest.json").is_file(), _log(first)
    assert applied == sum(1 for f in force.glob("*.jsonl") if f.name != "events.jsonl"
                          for ln in f.read_bytes().splitlines() if ln.strip())

    leaver = {**staff[0], "status": "leaver"}
    produce(s, s.topic_ref_staff, str(leaver["user_id"]).encode(), msgspec.json.encode(leaver))
    produce(s, s.topic_ref_staff, str(staff[1]["user_id"]).encode(), None)
    second = WorkerProcess(env, tmp_path, "second")
    try:
        second.wait_ready()
        m = second.metrics()
        assert total(m, UPSERTS) == 2  # the tail only: one upsert, one tombstone
        assert m[f"{UPSERTS}{{kind=staff,op=upsert}}"] == 1
        assert m[f"{UPSERTS}{{kind=staff,op=tombstone}}"] == 1
        assert _held(second, "staff") == held - 1
    finally:
        assert second.stop() == 0
    assert "snapshot of" in _log(second) and "snapshot refused" not in _log(second)


@pytest.mark.parametrize("damage", ["corrupt", "foreign"])
def test_a_bad_snapshot_is_refused_in_one_line_and_the_topics_read_whole(
        broker: str, tmp_path: Path, damage: str) -> None:
    env, s, force = live_force(broker, tmp_path, staff=60, seed=4)
    first = WorkerProcess(env, tmp_path, "first")
    try:
        first.wait_ready()
        applied = total(first.metrics(), UPSERTS)
    finally:
        assert first.stop() == 0
    snapshot = Path(env["ACCESSWATCH_DATA_DIR"]) / SNAPSHOT_DIR
    if damage == "corrupt":
        column = snapshot / "subject.fp.npy"
        data = bytearray(column.read_bytes())
        data[-1] ^= 0xFF
        column.write_bytes(bytes(data))
    else:  # the same data dir given to a worker of other reference topics
        env = {**env, "ACCESSWATCH_TOPIC_REF_DUTIES": s.topic_ref_duties + ".other"}
        from tests.streams.live import aw

        assert aw(env, "topics", "create", cwd=tmp_path).returncode == 0
    second = WorkerProcess(env, tmp_path, "second")
    try:
        second.wait_ready()
        read = total(second.metrics(), UPSERTS)
    finally:
        assert second.stop() == 0
    refused = [ln for ln in _log(second).splitlines() if "reference snapshot refused" in ln]
    assert len(refused) == 1, _log(second)
    # Read whole again: every record of the topics (the other duties topic is empty).
    duties = sum(1 for ln in (force / "duties.jsonl").read_bytes().splitlines() if ln.strip())
    assert read == (applied if damage == "corrupt" else applied - duties)
