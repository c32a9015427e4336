"""Feature tracking: every row holds what counting its windows afresh gives, in any order;
rows come when doubtful work climbs, whatever the batch cuts; evidence is the past."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec
import pytest

from accesswatch.backtest import AlertBook
from accesswatch.contract.events import AccessEvent
from accesswatch.core import Detector, Member
from accesswatch.core.context import EventContext
from accesswatch.core.features import (
    HOUR,
    LONG,
    NOTED,
    RAW,
    RECENT,
    RUNGS,
    Behaviour,
    Row,
    observe,
)
from accesswatch.core.state import (
    UserState,
    decode_member,
    decode_state,
    encode_member,
    encode_state,
)
from accesswatch.rules import load_rules
from models.anomaly import Verdict
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


def doubtful(e) -> bool:  # type: ignore[no-untyped-def]
    return (e.subject_id is not None and REF.subjects[e.subject_id].subject_type == "person"
            and not ctx(e).justified)


def printed(e) -> bool:  # type: ignore[no-untyped-def]
    return e.action in ("print", "export")


def afresh(seen: list, e) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """A row's windows worked out from every event seen so far, in plain terms: each ends at
    the row's event and reaches back from the member's latest event."""
    latest = max(s.t for s in seen)

    def window(span: float) -> list:
        return [s for s in seen if latest - span <= s.t <= e.t]

    hour, four = window(HOUR), window(LONG)
    opens = [s for s in hour if s.subject_id]
    # The test force's member u1 works in North; the P-S records are in South.
    away = [s for s in hour if doubtful(s) and s.subject_id.startswith("P-S")]
    return {
        "opens_1h": len(opens),
        "justified_1h": sum(1 for s in opens if REF.subjects[s.subject_id].subject_type
                            == "person" and ctx(s).justified),
        "doubtful_1h": sum(map(doubtful, hour)),
        "doubtful_10m": sum(1 for s in four if doubtful(s) and s.t >= e.t - RECENT),
        "doubtful_4h": sum(map(doubtful, four)),
        "out_of_area_1h": len(away),
        "out_of_area_4h": sum(1 for s in four if doubtful(s) and s.subject_id.startswith("P-S")),
        "prints_1h": sum(map(printed, hour)),
        "prints_4h": sum(map(printed, four)),
    }


@pytest.mark.parametrize("seed", [1, 2, 3, 5, 6])
def test_a_row_holds_exactly_what_counting_its_windows_afresh_gives(seed: int) -> None:
    # The windows are trimmed as events come and late events go in their place:
    # whenever that is, a row covers the events from an hour (four hours) before
    # the member's latest to its own, and ten minutes before it.
    b, seen, checked = Behaviour(), [], 0
    for e in feed(seed):
        seen.append(e)
        row = observe(b, ctx(e))
        if row is None:
            continue
        want = afresh(seen, e)
        assert {k: row.values[AT[k]] for k in want} == pytest.approx(want), e.event_id
        # Its evidence: the doubtful opens and prints of those four hours, up to its event.
        latest = max(s.t for s in seen)
        noted = sorted((s.t, s.event_id) for s in seen
                       if (doubtful(s) or printed(s)) and latest - LONG <= s.t <= e.t)
        assert sorted((m[0], m[1]) for m in row.marks) == noted
        checked += 1
    assert checked > 50  # enough rows, and late events among their windows
    assert len(b.times) == len(b.sids) == len(b.flags)
    assert len(b.noted_times) == len(b.noted_ids) == len(b.noted_sids) == len(b.noted_flags)


def test_the_feed_exercises_every_count() -> None:
    # So the comparison above could fail on each value: none of them is always 0.
    b, values = Behaviour(), []
    for e in feed(1):
        row = observe(b, ctx(e))
        if row is not None:
            values.append(row.values)
    for k in RAW[:-1]:  # all but off duty: the feed keeps to u1's shift
        assert any(v[AT[k]] > 0 for v in values), k
    assert any(v[AT["doubtful_4h"]] > v[AT["doubtful_1h"]] for v in values)


def test_only_doubtful_work_or_prints_make_a_row() -> None:
    # A member working a case all day, however fast, is never scored.
    b = Behaviour()
    rows = [observe(b, ctx(ev(t=T0 + 20 * i, subject="P-X", case="C-OPEN"))) for i in range(500)]
    assert rows == [None] * 500
    assert len(b.times) <= HOUR / 20 + 1  # the hour is trimmed all the same
    assert b.noted_times == []


def test_rows_come_at_each_rung_a_count_climbs_to() -> None:
    # 40 doubtful opens a minute apart: a row at each rung of the hour's count (and
    # of the four hours' and ten minutes'), not one every few minutes.
    b = Behaviour()
    made = [i + 1 for i in range(40)
            if observe(b, ctx(ev(t=T0 + 60 * i, subject=f"P-N{i:03d}"))) is not None]
    assert made == [n for n in RUNGS if n <= 40]


def test_a_steady_trickle_is_scored_while_it_builds_then_left_alone() -> None:
    # One doubtful open every ten minutes for ten hours: the hour holds six, four
    # hours 24; once the windows are full nothing climbs, so no more rows.
    b = Behaviour()
    rows = [observe(b, ctx(ev(t=T0 + 600 * i, subject=f"P-N{i:03d}"))) for i in range(60)]
    made = [i for i, r in enumerate(rows) if r is not None]
    assert made and max(made) < 4 * 6
    assert len(made) <= 2 * len(RUNGS)


def test_a_count_that_fell_away_scores_again_when_it_climbs() -> None:
    b = Behaviour()
    burst = [observe(b, ctx(ev(t=T0 + 30 * i, subject=f"P-N{i:03d}"))) for i in range(10)]
    assert sum(r is not None for r in burst) == 5  # 2, 3, 4, 6 and 8
    again = T0 + LONG + HOUR  # every window has let the first burst go
    second = [observe(b, ctx(ev(t=again + 30 * i, subject=f"P-N{50 + i:03d}"))) for i in range(3)]
    assert [r is not None for r in second] == [False, True, True]


def test_evidence_is_the_windows_doubtful_events_up_to_the_row() -> None:
    b = Behaviour()
    burst = [ev(t=T0 + 30 * i, subject=f"P-N{i:03d}") for i in range(6)]
    plain = [ev(t=T0 + 30 * i + 10, subject="P-X", case="C-OPEN") for i in range(6)]
    rows = [observe(b, ctx(e)) for e in sorted(burst + plain, key=lambda e: e.t)]
    last = [r for r in rows if r is not None][-1]
    assert last.event_id == burst[-1].event_id
    assert [m[1] for m in last.marks] == [e.event_id for e in burst]
    assert all(m[0] <= last.t and m[3] & NOTED for m in last.marks)
    # A plain event after the burst makes no row and changes no row's evidence.
    assert observe(b, ctx(ev(t=T0 + 400, subject="P-X", case="C-OPEN"))) is None


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
    assert msgspec.to_builtins([r for r in after if r]) == msgspec.to_builtins(
        [r for r in same if r])
    assert any(after)


@pytest.mark.parametrize("key", ["behaviour", "behaviour_v2"])
def test_a_state_stored_in_an_old_layout_starts_its_tracking_afresh(key: str) -> None:
    # Before this layout a member's features were a map under "behaviour", then an
    # array of other fields under "behaviour_v2".  Such a state still decodes: the
    # rules' state is kept and feature tracking starts again, rather than a worker
    # failing its recovery.
    state = UserState(risk=4.0)
    old = msgspec.to_builtins(state)
    del old["behaviour_v3"]
    old[key] = ({"recent": [[T0, "P-X", 1]], "hour": 1.0, "usual": 3.0, "seen": 1}
                if key == "behaviour" else [T0, 0.0, T0 + 600, 3, 4, "NTH-T1", [T0], ["P-X"],
                                            b"\x01", 2.5, 4.0, ["NTH-T1"], 0.0])
    decoded = decode_state(msgspec.msgpack.encode(old))
    assert decoded.risk == 4.0
    assert decoded.behaviour == Behaviour()
    observe(decoded.behaviour, ctx(ev(t=T0, subject="P-X")))
    assert decoded.behaviour.times == [T0]


# ---- scoring through the detector: the rows do not depend on batch cuts ----------------


@dataclass
class Recorder:
    """A model that notes every row it is asked about and flags rows with 6+ doubtful opens."""

    name: str = "recorder"
    rule_id: str = "AW-M01"
    version: str = "1"
    seen: list[Row] = field(default_factory=list)

    def worth_judging(self, row: Row) -> bool:
        return True

    def judge(self, rows: Sequence[Row]) -> list[Verdict | None]:
        self.seen.extend(rows)
        return [self._verdict(r) for r in rows]

    def _verdict(self, row: Row) -> Verdict | None:
        if row.values[AT["doubtful_1h"]] < 6:
            return None
        marks = [m for m in row.marks if m[3] & 1]
        return Verdict(0.9, True, True, [], ["doubtful work"],
                       [(m[0], m[1]) for m in marks], [m[2] for m in marks])


def members_history(seed: int) -> list[AccessEvent]:
    """Two members' days: bursts of doubtful opens and prints among case work."""
    rnd = random.Random(seed)
    out = []
    for user in ("u1", "u2"):
        t = T0
        for _ in range(400):
            t += rnd.choice([5, 30, 60, 240, 900])
            subject = rnd.choice(["P-X", "P-X", "V-1", *(f"P-N{i:03d}" for i in range(30)),
                                  "P-S1"])
            out.append(ev(user, t, subject, rnd.choice(["view", "view", "print"]),
                          rnd.choice([None, "C-OPEN", "C-ANY"])))
    return out


def judged(events: list[AccessEvent], cuts: list[int], restart: bool) -> tuple[list, list]:
    """The rows the model saw (each once, in event time) and the final alerts."""
    model = Recorder()
    detector = Detector(load_rules(), REF, model=model)
    members: dict[str, Member] = {}
    book = AlertBook()
    i = 0
    for n in cuts:
        book.add(detector.process_batch(events[i : i + n], members))
        i += n
        if restart:
            members = {k: decode_member(encode_member(m)) for k, m in members.items()}
    rows = {(r.user_id, r.event_id): msgspec.to_builtins(r) for r in model.seen}
    alerts = [msgspec.json.encode(msgspec.structs.replace(a, created_at=""))
              for a in book.final()]
    return sorted(rows.items()), alerts


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rows_and_verdicts_do_not_depend_on_batch_cuts(seed: int) -> None:
    events = sorted(members_history(seed), key=lambda e: (e.t, e.event_id))
    rows, alerts = judged(events, [len(events)], restart=False)
    assert len(rows) > 20 and any(b'"AW-M01"' in a for a in alerts)
    rnd = random.Random(seed)
    for restart in (False, True):
        cuts = []
        while sum(cuts) < len(events):
            cuts.append(rnd.choice([1, 2, 7, 37, 200]))
        assert judged(events, cuts, restart) == (rows, alerts), (cuts[:5], restart)
    # Delivered late and out of order (within the horizon), the same alerts: a late
    # event rewinds its member and their rows are made again in event time (the
    # model is asked about rows the late event then supersedes, too).
    delivered = sorted(events, key=lambda e: e.t + rnd.choice([0, 0, 0, 600, 5400]))
    assert judged(delivered, [50] * (len(events) // 50 + 1), restart=True)[1] == alerts


def test_a_model_alert_cites_the_burst_not_the_event_it_came_on() -> None:
    # Six doubtful opens in a minute, then, two minutes on, an ordinary view.
    burst = [ev("u1", T0 + 10 * i, f"P-N{i:03d}") for i in range(6)]
    later = ev("u1", T0 + 180, "P-X", case="C-OPEN")
    detector = Detector(load_rules(), REF, model=Recorder())
    book = AlertBook()
    book.add(detector.process_batch([*burst, later], {}))
    (alert,) = [a for a in book.final() if a.rule_id == "AW-M01"]
    assert alert.event_ids == [e.event_id for e in burst]
    assert later.event_id not in alert.event_ids
    assert alert.subject_ids == [e.subject_id for e in burst]
