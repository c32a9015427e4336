"""Any delivery order within the horizon, with repeats, gives the alerts of time order.

Contract v1.1: feeds deliver late, out of order and more than once, and an event
up to the horizon behind its member's newest is judged exactly as if it had come
in time order.  Hypothesis builds member histories (bursts that trip the window
rules, the flagged and related records, prints, the same person on several
days, accounts that should not be used) and delivers them the way feeds do:
each event delayed by its own lag (never past the horizon), some sent twice,
cut into batches anywhere, with the members' state encoded and decoded between
batches as a restart does.  The final alerts must equal time order's byte for
byte, apart from ``created_at`` (a publish time).
"""

from __future__ import annotations

import random

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accesswatch.backtest import AlertBook
from accesswatch.contract.events import AccessEvent
from accesswatch.core import Detector, Member
from accesswatch.core.state import decode_member, encode_member
from accesswatch.rules import load_rules
from tests.core.force import DAY, HOUR, T0, build_force, ev

REF = build_force()
PACK = load_rules()
HORIZON = 24 * HOUR
USERS = ("u1", "u2", "u4", "u5", "u6", "hq1", "ghost")
SPECIAL = ("P-FAM", "P-NB", "P-U1", "P-U2", "P-STAFF", "P-VIP", "P-VIC", "P-X", "P-S1", "P-S2",
           "P-S3", "P-S4", "P-S5")
CASES = (None, None, None, "C-OPEN", "C-ANY", "C-OTHER", "C-CLOSED")

_at = st.floats(min_value=0, max_value=3 * DAY, allow_nan=False).map(lambda s: T0 + round(s))


@st.composite
def burst(draw: st.DrawFn) -> list[AccessEvent]:
    """Many distinct records in quick succession: enumeration, volume, prints."""
    user, start = draw(st.sampled_from(USERS)), draw(_at)
    n = draw(st.integers(min_value=5, max_value=45))
    gap = draw(st.sampled_from((3, 10, 40, 120)))
    action = draw(st.sampled_from(("view", "view", "print", "export")))
    first = draw(st.integers(min_value=0, max_value=150))
    return [ev(user, start + i * gap, f"P-N{first + i:03d}", action) for i in range(n)]


@st.composite
def single(draw: st.DrawFn) -> list[AccessEvent]:
    """One access of a record that may be related, flagged, away or fine."""
    return [ev(draw(st.sampled_from(USERS)), draw(_at), draw(st.sampled_from(SPECIAL)),
               draw(st.sampled_from(("view", "view", "search", "print", "update"))),
               draw(st.sampled_from(CASES)), draw(st.sampled_from(("PND", "PNC", "STORM"))))]


@st.composite
def days_apart(draw: st.DrawFn) -> list[AccessEvent]:
    """The same person opened on several days."""
    user, start = draw(st.sampled_from(USERS)), draw(_at)
    days = draw(st.integers(min_value=2, max_value=4))
    return [ev(user, start + d * DAY + draw(st.integers(0, 3600)), "P-X") for d in range(days)]


history = st.lists(st.one_of(burst(), single(), days_apart()), min_size=1, max_size=12).map(
    lambda episodes: [e for episode in episodes for e in episode]
)


def in_time_order(events: list[AccessEvent]) -> list[bytes]:
    book = AlertBook()
    book.add(Detector(PACK, REF).process_batch(sorted(events, key=_time), {}))
    return _final(book)


def as_delivered(events: list[AccessEvent], rnd: random.Random) -> tuple[list[bytes], int]:
    """Delay each event by its own lag (under half the horizon, so never too late),
    send some twice, cut batches anywhere, encode the members between some batches."""
    arrivals = [(e.t + rnd.choice((0, 0, 5, 900, 3600, 3 * HOUR, rnd.uniform(0, 11 * HOUR))), i, e)
                for i, e in enumerate(events)]
    for i, e in enumerate(events):
        if rnd.random() < 0.1:
            arrivals.append((e.t + rnd.uniform(0, 11 * HOUR), len(events) + i, e))
    delivered = [e for _, _, e in sorted(arrivals, key=lambda a: (a[0], a[1]))]
    detector = Detector(PACK, REF)
    members: dict[str, Member] = {}
    book = AlertBook()
    i = 0
    while i < len(delivered):
        n = rnd.randint(1, 40)
        book.add(detector.process_batch(delivered[i : i + n], members))
        i += n
        if rnd.random() < 0.2:  # a restart: the state as stored, the snapshots gone
            members = {k: decode_member(encode_member(m)) for k, m in members.items()}
    assert book.too_late == 0
    return _final(book), book.repeats


def _time(e: AccessEvent) -> tuple[float, str]:
    return (e.t, e.event_id)


def _final(book: AlertBook) -> list[bytes]:
    return [msgspec.json.encode(msgspec.structs.replace(a, created_at="")) for a in book.final()]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history, st.randoms(use_true_random=False))
def test_any_delivery_within_the_horizon_gives_time_orders_alerts(
    events: list[AccessEvent], rnd: random.Random
) -> None:
    expected = in_time_order(events)
    got, _ = as_delivered(events, rnd)
    assert got == expected


def test_the_histories_raise_many_kinds_of_alert() -> None:
    """The property means little unless the histories fire the rules it is about."""
    rules: set[str] = set()
    for seed in range(40):
        events = _example(seed)
        book = AlertBook()
        book.add(Detector(PACK, REF).process_batch(sorted(events, key=_time), {}))
        for a in book.alerts.values():
            # A rule whose firing joined another alert of the episode says so there.
            joined = {why[5:].split(":")[0] for why in a.reasons if why.startswith("also ")}
            rules |= {a.rule_id, *joined}
    assert {"AW-002", "AW-005", "AW-007", "AW-009", "AW-010", "AW-014", "AW-015"} <= rules


def _example(seed: int) -> list[AccessEvent]:
    rnd = random.Random(seed)
    events: list[AccessEvent] = []
    for _ in range(6):
        user, start = rnd.choice(USERS[:2]), T0 + rnd.uniform(0, 3 * DAY)
        kind = rnd.randrange(3)
        if kind == 0:
            action, gap = rnd.choice((("view", 3), ("print", 60)))
            events += [ev(user, start + i * gap, f"P-N{i:03d}", action) for i in range(30)]
        elif kind == 1:
            events += [ev(user, start + i * 600, rnd.choice(SPECIAL)) for i in range(6)]
        else:
            events += [ev(user, start + d * DAY, "P-X") for d in range(4)]
    return events
