"""Feature tracking: the running counts agree with counting the hour afresh, in any order."""

from __future__ import annotations

import random

import msgspec
import pytest

from accesswatch.core.context import EventContext
from accesswatch.core.features import HOUR, Behaviour, Row, observe
from accesswatch.core.state import UserState, decode_state, encode_state
from tests.core.force import T0, build_force, ev

REF = build_force()
SUBJECTS = ["P-X", "P-VIC", "P-VIP", "P-NB", "V-1", *(f"P-S{i}" for i in range(8)),
            *(f"P-N{i:03d}" for i in range(40)), None]


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


def rows(events: list, recount: bool) -> list[Row]:
    b, out = Behaviour(), []
    for e in events:
        if recount:
            b.tally = None  # forget the running counts: the hour is counted afresh
        row = observe(b, EventContext(e, REF, 0.0, 0.0, 0.0))
        if row is not None:
            out.append(row)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_running_counts_give_the_rows_a_fresh_count_gives(seed: int) -> None:
    events = feed(seed)
    kept = rows(events, recount=False)
    assert len(kept) > 50  # enough rows, and late events among their hours
    assert [(r.event_id, r.values) for r in kept] == \
        [(r.event_id, r.values) for r in rows(events, recount=True)]
    assert any(r.values[0] > 5 for r in kept)  # busy hours, not just single opens


def test_a_state_stored_without_running_counts_carries_on_the_same() -> None:
    events = feed(4)
    half = len(events) // 2
    state = UserState()
    for e in events[:half]:
        observe(state.behaviour, EventContext(e, REF, 0.0, 0.0, 0.0))
    assert state.behaviour.tally is not None
    # As a worker before running counts existed stored it: no ``tally`` field at all.
    as_dict = msgspec.to_builtins(state)
    del as_dict["behaviour"]["tally"]
    old = decode_state(msgspec.msgpack.encode(as_dict))
    assert old.behaviour.tally is None
    new = decode_state(encode_state(state))
    rest = events[half:]
    resumed = [observe(old.behaviour, EventContext(e, REF, 0.0, 0.0, 0.0)) for e in rest]
    same = [observe(new.behaviour, EventContext(e, REF, 0.0, 0.0, 0.0)) for e in rest]
    assert [r.values for r in resumed if r] == [r.values for r in same if r]
    assert any(resumed)
    assert old.behaviour.tally == new.behaviour.tally


def test_the_running_counts_follow_the_hour_as_it_slides() -> None:
    b = Behaviour(tally=[0, 0, 0, 0])  # counting from the first event
    for i in range(30):  # one open a minute, with no justifying case
        observe(b, EventContext(ev(t=T0 + 60 * i, subject=f"P-N{i:03d}"), REF, 0.0, 0.0, 0.0))
    assert b.tally == [30, 30, 0, 0]
    observe(b, EventContext(ev(t=T0 + HOUR + 15 * 60, subject="P-X", action="print",
                               case="C-OPEN"), REF, 0.0, 0.0, 0.0))
    # Opens before minute 15 left the hour; the justified print came in.
    assert b.tally == [16, 15, 0, 1]
    assert len(b.recent) == 16


@pytest.mark.parametrize("seed", [5, 6])
def test_a_row_counts_exactly_the_hour_behind_it(seed: int) -> None:
    # The hour is trimmed only when a score is considered: whenever that is, a row
    # counts the opens and prints from an hour before the member's latest event to
    # its own, as counting the events seen so far says.
    b, seen, checked = Behaviour(), [], 0
    for e in feed(seed):
        seen.append(e)
        row = observe(b, EventContext(e, REF, 0.0, 0.0, 0.0))
        if row is None:
            continue
        latest = max(s.t for s in seen)
        hour = [s for s in seen if latest - HOUR <= s.t <= e.t]
        assert row.values[0] == sum(1 for s in hour if s.subject_id), e.event_id
        assert row.values[6] == sum(1 for s in hour if s.action in ("print", "export"))
        checked += 1
    assert checked > 50
