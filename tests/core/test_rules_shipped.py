"""Every shipped rule, alone, fires on its positive case and not on its negatives."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import msgspec
import pytest

from accesswatch.contract.events import AccessEvent
from accesswatch.core import Detector, Member
from accesswatch.rules import load_rules
from tests.core.force import DAY, HOUR, T0, build_force, ev, rules_raised

PACK = load_rules()
Scenario = Callable[[], list[AccessEvent]]


def alone(*rule_ids: str):
    """The shipped pack cut down to ``rule_ids``, signals turned into alerts."""
    rules = tuple(msgspec.structs.replace(r, alert=True) for r in PACK.rules if r.id in rule_ids)
    assert len(rules) == len(rule_ids), f"unknown rule in {rule_ids}"
    return dataclasses.replace(PACK, rules=rules)


def fired_rules(events: list[AccessEvent], pack=PACK) -> set[str]:
    detector = Detector(pack, build_force())
    members: dict[str, Member] = {}
    return rules_raised(detector.process_batch(events, members).changed)


def alerts_of(events: list[AccessEvent], pack=PACK) -> list:
    return Detector(pack, build_force()).process_batch(events, {}).changed


def repeat(
    user: str,
    subjects: list[str],
    start: float,
    gap: float,
    action: str = "view",
    case: str | None = None,
) -> list[AccessEvent]:
    return [ev(user, start + i * gap, s, action=action, case=case) for i, s in enumerate(subjects)]


def baseline_then(burst: list[AccessEvent], case: str | None = "C-ANY") -> list[AccessEvent]:
    """Three days of u1's steady work (5 opens an hour on duty), then ``burst``."""
    normal = [
        ev(
            "u1",
            T0 + d * DAY + h * HOUR + m * 720,
            f"P-N{(d * 40 + h * 5 + m) % 200:03d}",
            case=case,
        )
        for d in range(3)
        for h in range(8)
        for m in range(5)
    ]
    return normal + burst


N = [f"P-N{i:03d}" for i in range(200)]


def beside_casework(unjustified: int, justified: int) -> list[AccessEvent]:
    """Two hours on day 3: casework on C-ANY with unjustified opens among it."""
    n = unjustified + justified
    doubtful = {round(k * n / unjustified) for k in range(unjustified)}  # spread evenly
    start = T0 + 3 * DAY + HOUR
    return [
        ev("u1", start + i * 7200 // n, N[i], case=None if i in doubtful else "C-ANY")
        for i in range(n)
    ]
SOUTH = [f"P-S{i}" for i in range(8)]

CASES: dict[str, tuple[list[Scenario], list[Scenario]]] = {
    "AW-001": (
        [lambda: [ev(subject="P-U1")], lambda: [ev(subject="P-U1", case="C-OPEN")]],
        [lambda: [ev(subject="P-X")], lambda: [ev("u2", subject="P-U1")]],
    ),
    "AW-002": (
        [lambda: [ev(subject="P-FAM")], lambda: [ev(subject="P-FAM", case="C-OTHER")]],
        [
            lambda: [ev(subject="P-FAM", case="C-OPEN")],
            lambda: [ev(subject="P-SMITH-ELSEWHERE")],
            lambda: [ev(subject="P-U1")],
        ],
    ),
    "AW-003": (
        [lambda: [ev(subject="P-NB")]],
        [
            lambda: [ev(subject="P-NB", case="C-OPEN")],
            lambda: [ev(subject="P-FAM")],
            lambda: [ev("u2", subject="P-NB")],
        ],
    ),
    "AW-004": (
        [lambda: [ev(subject="P-U2")], lambda: [ev(subject="P-STAFF")]],
        [lambda: [ev(subject="P-U2", case="C-OPEN")], lambda: [ev("u2", subject="P-U2")]],
    ),
    "AW-005": (
        [
            lambda: [ev(subject="P-VIP")],
            lambda: [ev(subject="P-VIP", case="C-CLOSED")],
            lambda: [ev(subject="P-VIP", case="C-NOSUCH")],
        ],
        [lambda: [ev(subject="P-VIP", case="C-OPEN")], lambda: [ev(subject="P-SENS")]],
    ),
    "AW-006": (
        [lambda: [ev("u6", subject="P-VIC")], lambda: [ev("u6", subject="P-VIC", case="C-OTHER")]],
        [
            lambda: [ev("u1", subject="P-VIC")],
            lambda: [ev("u2", subject="P-VIC")],
            lambda: [ev("u6", subject="P-X")],
        ],
    ),
    "AW-007": (
        [lambda: [ev(t=T0 + d * DAY + HOUR, subject="P-X") for d in range(3)]],
        [
            lambda: [ev(t=T0 + HOUR + m * 600, subject="P-X") for m in range(3)],
            lambda: [ev(t=T0 + d * DAY + HOUR, subject="P-X", case="C-OPEN") for d in range(3)],
            lambda: [ev(t=T0 + d * DAY + HOUR, subject="V-1") for d in range(3)],
        ],
    ),
    "AW-008": (
        [
            lambda: baseline_then(repeat("u1", N[:70], T0 + 3 * DAY + HOUR, 50)),
            # Slow: 34 over 1 h 50 min against a usual of 5 an hour at work.
            lambda: baseline_then(repeat("u1", N[:34], T0 + 3 * DAY + HOUR, 195)),
            # Beside a busy shift of casework: 32 unjustified among 72.
            lambda: baseline_then(beside_casework(32, 40)),
            # No history yet: 20 unjustified in an hour is enough alone.
            lambda: repeat("u1", N[:20], T0 + HOUR, 170),
        ],
        [
            lambda: baseline_then(repeat("u1", N[:70], T0 + 3 * DAY + HOUR, 50, case="C-ANY")),
            lambda: baseline_then(repeat("u1", N[:12], T0 + 3 * DAY + HOUR, 300)),
            lambda: repeat("u1", N[:19], T0 + HOUR, 170),
            # Busy as usual: a member who opens 5 unjustified records an hour, 25 in two.
            lambda: baseline_then(repeat("u1", N[:25], T0 + 3 * DAY + HOUR, 280), case=None),
        ],
    ),
    "AW-009": (
        [lambda: repeat("u1", N[:25], T0 + HOUR, 5)],
        [
            lambda: repeat("u1", N[:25], T0 + HOUR, 300),
            lambda: repeat("u1", ["P-X"] * 25, T0 + HOUR, 5),
        ],
    ),
    "AW-010": (
        [lambda: [ev(t=T0 + 12 * HOUR)], lambda: [ev(t=T0 - 3 * HOUR)]],
        [
            lambda: [ev(t=T0 + 8 * HOUR + 20 * 60)],
            lambda: [ev(t=T0 - 25 * 60)],
            lambda: [ev("hq1", t=T0 - 5 * HOUR)],
        ],
    ),
    "AW-011": (
        [lambda: [ev("u3")], lambda: [ev("u4", subject=None, action="search")]],
        [lambda: [ev("u1")], lambda: [ev("u5")]],
    ),
    "AW-012": (
        [lambda: [ev("u5")]],
        [lambda: [ev("u6")], lambda: [ev("u1", t=T0 + HOUR), ev("u1", t=T0 + 30 * DAY)]],
    ),
    "AW-013": ([lambda: [ev("ghost")]], [lambda: [ev("u1")], lambda: [ev("u3")]]),
    "AW-014": (
        [
            lambda: repeat("u1", N[:12], T0 + HOUR, 150, action="print"),
            lambda: repeat("u1", N[:12], T0 + HOUR, 150, action="export"),
        ],
        [
            lambda: repeat("u1", N[:12], T0 + HOUR, 1800, action="print"),
            lambda: repeat("u1", N[:12], T0 + HOUR, 150, action="view"),
        ],
    ),
    "AW-015": (
        [lambda: repeat("u1", SOUTH[:5], T0 + HOUR, 6 * HOUR)],
        [
            lambda: repeat("hq1", SOUTH[:5], T0 + HOUR, 6 * HOUR),
            lambda: repeat("u1", SOUTH[:5], T0 + HOUR, 6 * HOUR, case="C-ANY"),
            lambda: repeat("u1", SOUTH[:3], T0 + HOUR, 6 * HOUR),
            lambda: repeat("u1", SOUTH[:5], T0 + HOUR, 5 * DAY),
        ],
    ),
    "AW-017": (
        [lambda: [ev(subject="P-S1")]],
        [
            lambda: [ev(subject="P-S1", case="C-ANY")],
            lambda: [ev("hq1", subject="P-S1")],
            lambda: [ev(subject="P-X")],
        ],
    ),
    "AW-016": (
        [lambda: [ev(subject="P-X")]],
        [
            lambda: [ev(subject="P-X", case="C-OPEN")],
            lambda: [ev(subject="V-1")],
            lambda: [ev(subject=None, action="search")],
        ],
    ),
}


def test_every_shipped_rule_has_cases() -> None:
    shipped = {r.id for r in PACK.rules if r.__struct_config__.tag != "risk"}
    assert shipped == set(CASES)


@pytest.mark.parametrize(
    ("rule_id", "n"), [(k, i) for k, (pos, _) in CASES.items() for i in range(len(pos))]
)
def test_rule_fires_on_positive(rule_id: str, n: int) -> None:
    assert rule_id in fired_rules(CASES[rule_id][0][n](), alone(rule_id))


@pytest.mark.parametrize(
    ("rule_id", "n"), [(k, i) for k, (_, neg) in CASES.items() for i in range(len(neg))]
)
def test_rule_quiet_on_negative(rule_id: str, n: int) -> None:
    assert rule_id not in fired_rules(CASES[rule_id][1][n](), alone(rule_id))


def test_risk_adds_up_weak_signals() -> None:
    # Neighbour (10) + family (10) reach the threshold of 20 together, not apart...
    assert "AW-090" in fired_rules([ev(subject="P-NB"), ev(subject="P-FAM")])
    assert "AW-090" not in fired_rules([ev(subject="P-NB")])
    # ... but both accesses are already another alert's evidence: the risk goes onto
    # that alert, with its reason, and raises none of its own.
    (alert,) = alerts_of([ev(subject="P-NB"), ev(subject="P-FAM")])
    assert alert.rule_id == "AW-003"
    assert any(why.startswith("also AW-090: risk score ") for why in alert.reasons)


def test_risk_alerts_on_its_own_only_for_what_no_other_alert_holds() -> None:
    """Out-of-area people with no case, each a weak signal (AW-016 0.5 + AW-017 1),
    under AW-015's four a fortnight: 14 of them reach 20 and raise AW-090, whose
    evidence and subjects are those accesses."""
    pack = alone("AW-016", "AW-017", "AW-090")
    pack = dataclasses.replace(
        pack, rules=tuple(msgspec.structs.replace(r, alert=r.id == "AW-090") for r in pack.rules)
    )
    events = [ev(t=T0 + HOUR + i * 600, subject=f"P-S{i % 8}") for i in range(14)]
    (alert,) = alerts_of(events, pack)
    assert alert.rule_id == "AW-090"
    assert alert.event_ids == [e.event_id for e in events]
    assert alert.subject_ids == [f"P-S{i}" for i in range(8)]
    assert "AW-090" not in fired_rules(events[:13], pack)


def test_one_access_never_makes_a_risk_alert_alone() -> None:
    """A leaver's access adds 20, the threshold, at once: it is AW-011's alert."""
    alerts = alerts_of([ev("u3")])
    assert [a.rule_id for a in alerts] == ["AW-011"]


def test_risk_decays() -> None:
    # The same two signals a week apart: the first has decayed by then.
    assert "AW-090" not in fired_rules(
        [ev(subject="P-NB"), ev(t=T0 + 7 * DAY + HOUR, subject="P-FAM")]
    )
