"""The feed-delivery simulator: the same lines, as contract v1.1's feeds deliver them.

Each property is checked on the written file, read back independently of the
simulator, where it can be; the schedule is consulted only for what the file
cannot show (when a line was delivered).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accesswatch.contract.timestamps import parse_ts
from benchmarks.delivery import (
    FEEDS,
    HORIZON,
    REPEAT_DELAY,
    DeliveryError,
    DeliveryStats,
    Schedule,
    check,
    deliver,
    main,
    schedule,
)


@dataclass
class Delivered:
    src: Path
    out: Path
    stats: DeliveryStats
    plan: Schedule

    def lines_in(self) -> list[bytes]:
        return self.src.read_bytes().splitlines(keepends=True)

    def lines_out(self) -> list[bytes]:
        return self.out.read_bytes().splitlines(keepends=True)


@pytest.fixture(scope="module")
def delivered(small_force: Path, tmp_path_factory: pytest.TempPathFactory) -> Delivered:
    """The small force's events delivered with seed 1."""
    src, out = small_force / "events.jsonl", tmp_path_factory.mktemp("delivered") / "d.jsonl"
    return Delivered(src, out, deliver(src, out, seed=1), schedule(src, seed=1))


def walk(lines: list[bytes]) -> tuple[int, float]:
    """Read delivered lines as a consumer keyed by member would: how many first
    deliveries came behind their member's newest event, and how far behind at most."""
    newest: dict[str, float] = {}
    seen: set[str] = set()
    late, worst = 0, 0.0
    for line in lines:
        try:
            event = json.loads(line)
            t, uid, eid = parse_ts(event["ts"]), event["user_id"], event["event_id"]
        except Exception:  # a line the consumer dead-letters
            continue
        if not isinstance(uid, str):
            continue
        top = newest.get(uid, -math.inf)
        if t < top:
            late += eid not in seen
            worst = max(worst, top - t)
        else:
            newest[uid] = t
        seen.add(eid)
    return late, worst


def test_same_lines_plus_exactly_the_repeats(delivered: Delivered) -> None:
    before, after = Counter(delivered.lines_in()), Counter(delivered.lines_out())
    extra = after - before
    assert not before - after, "a line was lost"
    assert sum(extra.values()) == delivered.stats.repeats == round(delivered.stats.lines * 0.005)
    assert delivered.stats.repeats > 0
    # Every repeat is byte for byte a line of the input, delivered once more at most.
    assert set(extra) <= set(before)
    assert max(extra.values()) == 1


def test_a_repeat_comes_minutes_to_hours_after_its_original(delivered: Delivered) -> None:
    p = delivered.plan
    gaps = p.repeat_at - p.at[p.repeat_of]
    assert (gaps >= REPEAT_DELAY[0]).all()
    held = p.repeat_at == p.outage.end if p.outage else np.zeros(len(gaps), bool)
    assert (gaps[~held] <= REPEAT_DELAY[1]).all()
    first: dict[bytes, int] = {}
    for n, line in enumerate(delivered.lines_out()):
        if line in first:
            assert n > first[line]
        first.setdefault(line, n)


def test_extracts_deliver_no_event_before_its_time(delivered: Delivered) -> None:
    p, outage = delivered.plan, delivered.plan.outage
    assert outage is not None
    assert (p.at >= p.ts).all()
    held = p.at == outage.end
    for code, name in enumerate(p.systems):
        mine = (p.system == code) & ~held
        feed = FEEDS.get(name)
        if feed is None or not feed.period:
            assert (p.at[mine] - p.ts[mine] <= 5.0).all(), name
            continue
        # On the source's extract times, and in the first extract after the event.
        assert np.allclose((p.at[mine] - p.phases[name]) % feed.period, 0), name
        assert (p.at[mine] - p.ts[mine] < feed.period).all(), name
    assert len(p.phases) >= 3, "the generator's extract sources were not all seen"


def test_an_extract_source_arrives_in_time_order(delivered: Delivered) -> None:
    """Read off the file alone: an extract is in time order, and so is one extract
    after another (a backlog too), unlike the on-line feeds."""
    by_system: dict[str, list[float]] = {}
    seen: set[str] = set()
    for line in delivered.lines_out():
        try:
            event = json.loads(line)
            t = parse_ts(event["ts"])
        except Exception:
            continue
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            by_system.setdefault(event["system"], []).append(t)
    extracts = [s for s in by_system if FEEDS.get(s, FEEDS["PNC"]).period]
    assert extracts
    for s in extracts:
        assert by_system[s] == sorted(by_system[s]), s


def test_the_outage_holds_the_busiest_source_for_three_hours(delivered: Delivered) -> None:
    p, o = delivered.plan, delivered.plan.outage
    assert o is not None and o.end - o.start == 3 * 3600
    code = p.systems.index(o.system)
    assert o.system == max(p.systems, key=lambda s: int((p.system == p.systems.index(s)).sum()))
    mine = np.concatenate([p.at[p.system == code], p.repeat_at[p.system[p.repeat_of] == code]])
    assert not ((mine >= o.start) & (mine < o.end)).any()
    assert int((mine == o.end).sum()) >= o.backlog > 0


def test_lateness_stays_within_the_contract(delivered: Delivered) -> None:
    late, worst = walk(delivered.lines_out())
    assert 0 < worst <= HORIZON
    assert worst == pytest.approx(delivered.stats.max_lateness_s)
    assert late == delivered.stats.late


def test_some_events_really_arrive_out_of_order(delivered: Delivered) -> None:
    late, _ = walk(delivered.lines_out())
    assert late / delivered.stats.lines > 0.01
    in_order, _ = walk(delivered.lines_in())
    assert in_order == 0  # the generator's file is in time order: the walk can tell


def test_deterministic_for_a_seed(delivered: Delivered, tmp_path: Path) -> None:
    again, other = tmp_path / "again.jsonl", tmp_path / "other.jsonl"
    deliver(delivered.src, again, seed=1)
    deliver(delivered.src, other, seed=2)
    assert again.read_bytes() == delivered.out.read_bytes()
    assert other.read_bytes() != delivered.out.read_bytes()


def test_the_cli_prints_one_line_and_nothing_of_the_records(
    delivered: Delivered, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main([str(delivered.src), str(tmp_path / "cli.jsonl"), "--seed", "1"])
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and f"{delivered.stats.repeats:,} repeats" in out
    assert (tmp_path / "cli.jsonl").read_bytes() == delivered.out.read_bytes()
    users = {
        json.loads(line).get("user_id")
        for line in delivered.lines_in()[:200]
        if line.startswith(b'{"event_id"') and line.rstrip().endswith(b"}")
    }
    assert users and not [u for u in users if isinstance(u, str) and u in out]


def test_the_check_refuses_an_event_past_the_horizon(delivered: Delivered) -> None:
    p = schedule(delivered.src, seed=1)
    p.order = p.order[::-1]  # newest first: three days behind by the end
    with pytest.raises(DeliveryError, match="behind its member's newest"):
        check(p)


SYSTEMS = [*FEEDS, "CUSTODY"]  # an unknown system goes on line


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    events=st.lists(
        st.tuples(
            st.integers(0, 4 * 3600), st.integers(0, 5), st.sampled_from(SYSTEMS), st.integers(0, 9)
        ),
        min_size=1,
        max_size=400,
    ),
    seed=st.integers(0, 2**32),
)
def test_any_time_ordered_file(
    tmp_path: Path, events: list[tuple[int, int, str, int]], seed: int
) -> None:
    """Same lines plus repeats, within the horizon, for any file; broken lines kept too."""
    t = 1772409600.0  # 2026-03-02T00:00:00Z
    lines = []
    for n, (gap, user, system, roll) in enumerate(events):
        t += gap
        record = {"event_id": f"e{n}", "ts": iso(t), "user_id": f"U{user}", "system": system}
        lines.append(b"not json %d\n" % n if roll == 0 else json.dumps(record).encode() + b"\n")
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_bytes(b"".join(lines))
    stats = deliver(src, out, seed=seed)
    delivered = out.read_bytes().splitlines(keepends=True)
    assert not Counter(lines) - Counter(delivered)
    assert len(delivered) == len(lines) + stats.repeats
    assert walk(delivered)[1] <= HORIZON


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
