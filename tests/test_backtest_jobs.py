"""``backtest --jobs``: members split across processes, the same output as one."""

from __future__ import annotations

import zlib
from pathlib import Path

import msgspec
import pytest

from accesswatch.backtest import BacktestResult, Share, run_backtest, write_alerts
from accesswatch.generate import generate_force
from accesswatch.reference import ReferenceData, load_reference_dir

EVENT = (
    b'{"event_id":"%s","ts":"2026-03-02T09:00:00Z","user_id":"%s","terminal_id":"T1",'
    b'"system":"PNC","action":"view","subject_type":"person","subject_id":"P-1"'
)
# Lines the per-line split must route exactly as the full decoder reads them.
HOSTILE = [
    EVENT % (b"h1", b"E-DUP-A") + b',"user_id":"E-DUP-B"}',  # duplicate key: the last wins
    EVENT % (b"h2", b"E-X") + b',"user_\\u0069d":"E-ESC"}',  # escaped key, read as user_id
    EVENT % (b"h3", b"E-COUNT") + b',"result_count":3.0}',  # accepted by the slow path
    b'{"event_id":"h4","user_id":17}',  # wrong type: no member, refused once
    b"not json at all",
    b"",
    b"   ",
    EVENT % (b"h5", b"E-LATE") + b',"ts":"2026-03-02 09:00:00"}',  # refused by its member's part
]


@pytest.fixture(scope="module")
def force(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("jobs-force")
    generate_force(out, staff=150, days=5, seed=4, invalid_lines=5)
    events = (out / "events.jsonl").read_bytes().splitlines(keepends=True)
    # Spread the hostile lines through the file.
    for i, line in enumerate(HOSTILE):
        events.insert(1 + i * (len(events) // len(HOSTILE)), line + b"\n")
    (out / "events.jsonl").write_bytes(b"".join(events))
    return out


@pytest.fixture(scope="module")
def ref(force: Path) -> ReferenceData:
    return load_reference_dir(force)[0]


def _run(
    force: Path, ref: ReferenceData, tmp: Path, jobs: int
) -> tuple[BacktestResult, bytes, bytes]:
    rejects, alerts = tmp / f"rejects-{jobs}.jsonl", tmp / f"alerts-{jobs}.jsonl"
    result = run_backtest(force / "events.jsonl", ref, rejects_path=rejects, jobs=jobs)
    write_alerts(result.alerts, alerts)
    return result, alerts.read_bytes(), rejects.read_bytes()


@pytest.mark.parametrize("jobs", [2, 3])
def test_jobs_write_the_same_files_and_counts_as_one_process(
    force: Path, ref: ReferenceData, tmp_path: Path, jobs: int
) -> None:
    one, one_alerts, one_rejects = _run(force, ref, tmp_path, 1)
    split, split_alerts, split_rejects = _run(force, ref, tmp_path, jobs)
    assert one.alerts, "a generated force always holds incidents"
    assert split.jobs == jobs
    assert split_alerts == one_alerts  # same alerts, same folding, same order
    assert split_rejects == one_rejects
    # (How often an alert changed depends on batch cuts; its final content does not.)
    assert (split.events, split.rejected, split.repeats) == (one.events, one.rejected, one.repeats)
    assert one.rejected == 5 + 3  # the generator's and the hostile ones, each once


def test_a_line_goes_to_the_part_of_the_user_id_the_decoder_reads() -> None:
    share = Share(0, 7)
    for line, user_id in [(HOSTILE[0], "E-DUP-B"), (HOSTILE[1], "E-ESC"), (HOSTILE[2], "E-COUNT")]:
        assert share.owner(line) == share.of(user_id)
    assert share.owner(HOSTILE[3]) is None and share.owner(HOSTILE[4]) is None


def test_parts_are_a_stable_hash_of_the_user_id() -> None:
    # Not Python's salted hash(): every process, and every run, agrees.
    users = [f"E{i}" for i in range(200)]
    assert [Share(0, 4).of(u) for u in users] == [Share(3, 4).of(u) for u in users]
    assert [Share(0, 4).of(u) for u in users[:6]] == [zlib.crc32(u.encode()) % 4 for u in users[:6]]
    assert set(Share(0, 4).of(u) for u in users) == {0, 1, 2, 3}


def test_alerts_survive_the_trip_between_processes(force: Path, ref: ReferenceData) -> None:
    result = run_backtest(force / "events.jsonl", ref, jobs=2)
    for alert in result.alerts.values():
        assert msgspec.json.decode(msgspec.json.encode(alert))["alert_id"] == alert.alert_id


def test_the_cli_splits_a_big_file_by_default_and_a_small_one_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accesswatch import cli

    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    small.write_bytes(b"{}\n")
    with big.open("wb") as f:
        f.truncate(cli.AUTO_JOBS_BYTES + 1)
    monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert cli.default_jobs(small) == 1
    assert cli.default_jobs(big) == 3
    assert cli.default_jobs(tmp_path / "missing.jsonl") == 1
