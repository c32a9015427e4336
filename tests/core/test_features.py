"""Feature tracking: every row holds what counting its hour afresh gives, in any order."""

from __future__ import annotations

import random
from itertools import pairwise
from statistics import median_high

import msgspec
import pytest

from accesswatch.core.context import EventContext
from accesswatch.core.features import HOUR, RAW, RECENT, Behaviour, observe
from accesswatch.core.state import UserState, decode_state, encode_state
from tests.core.force import T0, build_force, ev

REF = build_force()
SUBJECTS = ["P-X", "P-VIC", "P-VIP", "P-NB", "V-1", *(f"P-S{i}" for i in range(8)),
            *(f"P-N{i:03d}" for i in range(40)), None]
AT = {name: i for i, name in enumerate(RAW)}


def feed(seed: int, n: int = 1500) -> list:
    """A member's events over a few hours: bursts, prints, searches, some late arrivals."""
    rnd = random.Random(seed)
    t, out = T0, []
    for _ in range(n):
        t += rnd.choice([2, 5, 20, 60, 300, 900])
        late = rnd.random() < 0.08  # arrives up to 20 minutes behind the member's latest
        at = t - rnd.uniform(0, 1200) if late else t
        out.append(ev(t=at, subject=rnd.choice(SUBJECTS),
                      action=rnd.choice(["view", "view", "view", "search", "print", "export"]),
                      case=rnd.choice([None, None, "C-OPEN"])))
    return out


def ctx(e) -> EventContext:  # type: ignore[no-untyped-def]
    return EventContext(e, REF, 0.0, 0.0)


def afresh(seen: list, e) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """A row's hour and ten minutes worked out from every event seen so far, in plain terms."""
    latest = max(s.t for s in seen)
    hour = [s for s in seen if latest - HOUR <= s.t <= e.t]
    opens = [s for s in hour if s.subject_id]
    doubtful = [s for s in opens if REF.subjects[s.subject_id].subject_type == "person"
                and not ctx(s).justified]
    recent = sorted(s.t for s in opens if s.t >= e.t - RECENT)
    gaps = [b - a for a, b in pairwise(recent)]
    return {
        "opens_1h": len(opens),
        "distinct_10m": len({s.subject_id for s in opens if s.t >= e.t - RECENT}),
        "median_gap_10m": median_high(gaps) if gaps else RECENT,
        "unjustified_share_1h": len(doubtful) / len(opens) if opens else 0.0,
        # The test force's member u1 works in North; the P-S records are in South.
        "out_of_area_1h": sum(1 for s in doubtful if s.subject_id.startswith("P-S")),
        "prints_1h": sum(1 for s in hour if s.action in ("print", "export")),
    }


@pytest.mark.parametrize("seed", [1, 2, 3, 5, 6])
def test_a_row_holds_exactly_what_counting_its_hour_afresh_gives(seed: int) -> None:
    # The hour is trimmed and counted only when a score is considered, and late
    # events go in their place: whenever that is, a row covers the events from
    # an hour before the member's latest to its own, and ten minutes before it.
    b, seen, checked = Behaviour(), [], 0
    for e in feed(seed):
        seen.append(e)
        row = observe(b, ctx(e))
        if row is None:
            continue
        want = afresh(seen, e)
        assert {k: row.values[AT[k]] for k in want} == pytest.approx(want), e.event_id
        checked += 1
    assert checked > 50  # enough rows, and late events among their hours
    assert len(b.times) == len(b.sids) == len(b.flags)


def test_the_feed_exercises_every_count() -> None:
    # So the comparison above could fail on each value: none of them is always 0.
    b, values = Behaviour(), []
    for e in feed(1):
        row = observe(b, ctx(e))
        if row is not None:
            values.append(row.values)
    for k in ("opens_1h", "distinct_10m", "unjustified_share_1h", "out_of_area_1h", "prints_1h"):
        assert any(v[AT[k]] > 0 for v in values), k
    assert any(v[AT["median_gap_10m"]] < RECENT for v in values)
    assert any(v[AT["opens_1h"]] > 5 for v in values)  # busy hours, not just single opens


def test_the_hour_slides_and_its_columns_stay_aligned() -> None:
    b = Behaviour()
    for i in range(30):  # one open a minute, with no justifying case
        observe(b, ctx(ev(t=T0 + 60 * i, subject=f"P-N{i:03d}")))
    assert len(b.times) == len(b.sids) == len(b.flags) == 30
    row = observe(b, ctx(ev(t=T0 + HOUR + 15 * 60, subject="P-X", action="print",
                            case="C-OPEN")))
    # Opens before minute 15 left the hour; the justified print came in.
    assert b.sids == [*(f"P-N{i:03d}" for i in range(15, 30)), "P-X"]
    assert len(b.times) == len(b.flags) == 16
    assert row is not None
    assert row.values[AT["opens_1h"]] == 16
    assert row.values[AT["prints_1h"]] == 1
    assert row.values[AT["unjustified_share_1h"]] == 15 / 16


def test_a_state_carries_on_the_same_after_a_round_trip() -> None:
    events = feed(4)
    half = len(events) // 2
    state = UserState()
    for e in events[:half]:
        observe(state.behaviour, ctx(e))
    resumed = decode_state(encode_state(state))
    assert resumed.behaviour == state.behaviour
    rest = events[half:]
    after = [observe(resumed.behaviour, ctx(e)) for e in rest]
    same = [observe(state.behaviour, ctx(e)) for e in rest]
    assert [r.values for r in after if r] == [r.values for r in same if r]
    assert any(after)


def test_a_state_stored_in_the_old_layout_starts_its_tracking_afresh() -> None:
    # Before the compact layout a member's features were a map under "behaviour",
    # with a tuple per open.  Such a state still decodes: the rules' state is kept
    # and feature tracking starts again, rather than a worker failing its recovery.
    state = UserState(risk=4.0)
    old = msgspec.to_builtins(state)
    del old["behaviour_v2"]
    old["behaviour"] = {"recent": [[T0, "P-X", 1]], "hour": 1.0, "hour_count": 1.0,
                        "usual": 3.0, "terminals": ["NTH-T1"], "seen": 1, "tally": None}
    decoded = decode_state(msgspec.msgpack.encode(old))
    assert decoded.risk == 4.0
    assert decoded.behaviour == Behaviour()
    observe(decoded.behaviour, ctx(ev(t=T0, subject="P-X")))
    assert decoded.behaviour.times == [T0]
