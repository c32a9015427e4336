"""`generate --start`: a force in British Summer Time, for the rules' local-time readings."""

from __future__ import annotations

import json
from pathlib import Path

from accesswatch.cli import main
from accesswatch.contract.timestamps import parse_ts


def test_a_summer_start_gives_a_force_in_bst(tmp_path: Path) -> None:
    out = tmp_path / "summer"
    assert main(["generate", "--out", str(out), "--staff", "40", "--days", "3",
                 "--start", "2026-07-06"]) == 0
    with (out / "events.jsonl").open() as f:
        stamps = [json.loads(line)["ts"] for line in f]
    # The feed starts at local midnight, 23:00 UTC the day before.
    first = min(parse_ts(s) for s in stamps)
    assert parse_ts("2026-07-05T23:00:00Z") <= first < parse_ts("2026-07-06T23:00:00Z")
    # Systems that stamp London time with an offset say +01:00 in summer, never +00:00.
    offsets = {s[-6:] for s in stamps if s[-6] in "+-"}
    assert offsets == {"+01:00"}
    duties = [json.loads(line) for line in (out / "duties.jsonl").open()]
    assert all(d["start"].endswith("+01:00") for d in duties)
