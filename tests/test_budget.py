"""`accesswatch budget`: the lowest settings within N alerts a day, checked by running them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from accesswatch.backtest import BacktestResult, run_backtest
from accesswatch.budget import MAX_RUNS, Budget, Knob, knob_of, run_budget
from accesswatch.cli import main
from accesswatch.evaluate import evaluate, load_labels
from accesswatch.reference import ReferenceData
from accesswatch.rules import load_rules, parse_rules
from accesswatch.rules.edit import set_fields
from accesswatch.rules.loader import default_rules_path
from accesswatch.whatif import History, run_whatif
from tests.rules.test_allowlist import REASON, SHARED

SHIPPED = default_rules_path().read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def history(small_force: Path, small_ref: ReferenceData) -> History:
    return History.read(small_force / "events.jsonl", small_ref)


def per_day(result: BacktestResult, history: History) -> float:
    return len(result.alerts) / history.days


def budget_cli(force: Path, *args: str) -> int:
    """``accesswatch budget`` on ``force``'s events and reference data."""
    return main(["budget", str(force / "events.jsonl"), "--ref", str(force), *args])


@pytest.fixture(scope="module")
def now_and_top(history: History) -> tuple[float, float]:
    """Alerts a day of the shipped pack, and with the knob of every rule that raises
    alerts at the top of its ladder."""
    now = history.run(load_rules())
    raising = {a.rule_id for a in now.alerts.values()}
    knobs = [k for k in map(knob_of, load_rules().active) if k is not None]
    top = set_fields(
        SHIPPED, {k.rule_id: {k.field: k.text(-1)} for k in knobs if k.rule_id in raising}
    )
    return per_day(now, history), per_day(history.run(parse_rules(top)), history)


@pytest.fixture(scope="module")
def tight(history: History, now_and_top: tuple[float, float]) -> Budget:
    now, top = now_and_top
    assert top < now - 0.5, "the small force should leave room to tune"
    return run_budget(
        history,
        SHIPPED,
        "default.yaml",
        (now + top) / 2,
        labels=load_labels(history.events.path.parent / "labels.json"),
    )


def test_the_proposal_is_within_the_budget_when_run_again(
    tight: Budget, small_force: Path, small_ref: ReferenceData
) -> None:
    assert tight.changes, "a budget below today's rate must change something"
    rerun = run_backtest(small_force / "events.jsonl", small_ref, parse_rules(tight.text))
    assert len(rerun.alerts) / tight.days <= tight.per_day
    counts = Counter(a.rule_id for a in rerun.alerts.values())
    for row in tight.rows:
        assert row.per_day_proposed == pytest.approx(counts[row.rule_id] / tight.days)
    assert tight.total()[1] <= tight.per_day < tight.total()[0]


def test_only_knobs_rise_and_only_the_changed_ones_differ(tight: Budget) -> None:
    base, proposed = load_rules(), parse_rules(tight.text)
    knobs = {k.rule_id: k for k in map(knob_of, base.active) if k is not None}
    for before, after in zip(base.rules, proposed.rules, strict=True):
        change = tight.changes.get(before.id, {})
        for name in change:
            assert before.id in knobs and name == knobs[before.id].field
            assert str(getattr(after, name)) != str(getattr(before, name))
        rest = {f: getattr(before, f) for f in before.__struct_fields__ if f not in change}
        assert rest == {f: getattr(after, f) for f in rest}
    assert tight.runs <= MAX_RUNS


def test_no_raised_knob_can_go_back_alone(tight: Budget, history: History) -> None:
    knobs = {k.rule_id: k for k in map(knob_of, load_rules().active) if k is not None}
    for rule_id, change in tight.changes.items():
        (name,) = change
        back = set_fields(tight.text, {rule_id: {name: knobs[rule_id].text(0)}})
        assert per_day(history.run(parse_rules(back)), history) > tight.per_day, rule_id


def test_recall_is_reported_per_scenario_now_and_proposed(
    tight: Budget, small_force: Path, small_ref: ReferenceData
) -> None:
    labels = load_labels(small_force / "labels.json")
    cards = [
        evaluate(
            labels,
            [
                msgspec.to_builtins(a)
                for a in run_backtest(small_force / "events.jsonl", small_ref, pack).alerts.values()
            ],
        )
        for pack in (load_rules(), parse_rules(tight.text))
    ]
    assert [r.scenario for r in tight.recall] == [f"S{n:02d}" for n in range(1, 14)]
    for row, now, proposed in zip(tight.recall, *(c.scenarios for c in cards), strict=True):
        assert row.incidents == now.incidents > 0
        assert (row.now, row.proposed) == (now.recall, proposed.recall)
    assert tight.false_per_day == (
        cards[0].false_alerts / tight.days,
        cards[1].false_alerts / tight.days,
    )


def test_a_generous_budget_changes_nothing(
    history: History, now_and_top: tuple[float, float]
) -> None:
    budget = run_budget(history, SHIPPED, "default.yaml", now_and_top[0] + 0.01)
    assert budget.changes == {} and budget.text == SHIPPED and budget.runs == 1
    assert all(r.now == r.proposed and r.per_day_now == r.per_day_proposed for r in budget.rows)
    assert "no change proposed" in budget.to_text()


def test_an_impossible_budget_is_one_line_and_exit_1(
    small_force: Path, now_and_top: tuple[float, float], capsys: pytest.CaptureFixture[str]
) -> None:
    below = now_and_top[1] * 0.9
    code = budget_cli(small_force, "--per-day", f"{below:.2f}", "--no-progress")
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(
        f"accesswatch budget: no settings keep this pack within {below:.2f} "
        "alerts a day: with every knob at the top of its ladder (×3) it "
        f"raises {now_and_top[1]:.2f} a day"
    )
    assert "--per-day" in err and "Traceback" not in err


def test_write_gives_a_pack_whatif_previews(
    small_force: Path,
    small_ref: ReferenceData,
    tight: Budget,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The pack in force has an expired allow-list entry: its warning reaches the user too.
    rules = tmp_path / "force.yaml"
    rules.write_text(
        SHIPPED.replace(
            "audit_accounts: []",
            "audit_accounts:\n" + (SHARED.splitlines()[3].replace("2026-03-31", "2020-01-31")),
        )
    )
    written = tmp_path / "tuned.yaml"
    code = budget_cli(
        small_force,
        "--per-day",
        str(tight.per_day),
        "--rules",
        str(rules),
        "--write",
        str(written),
        "--json",
        "--no-progress",
    )
    out, err = capsys.readouterr()
    assert code == 0
    report = json.loads(out)
    assert report["changes"] == tight.changes
    assert f"expired on 2020-01-31 and is not applied (reason: {REASON})" in err
    tuned = load_rules(written)  # a valid pack...
    assert written.read_text().startswith("# accesswatch default rule pack.")  # comments kept
    expected = {r.id: r for r in parse_rules(tight.text).rules}
    for rule in tuned.rules:
        for name in tight.changes.get(rule.id, {}):
            assert getattr(rule, name) == getattr(expected[rule.id], name)
    preview = run_whatif(small_force / "events.jsonl", small_ref, load_rules(rules), tuned)
    assert preview.total().after / preview.days <= tight.per_day
    assert preview.total().after / preview.days == pytest.approx(
        report["total"]["per_day_proposed"]
    )


def test_write_refuses_the_pack_in_force(
    small_force: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "force.yaml"
    rules.write_text(SHIPPED)
    code = budget_cli(small_force, "--per-day", "5", "--rules", str(rules), "--write", str(rules))
    err = capsys.readouterr().err
    assert code == 2 and "is the pack in force" in err and len(err.splitlines()) == 1
    assert rules.read_text() == SHIPPED


@pytest.mark.parametrize(
    ("yaml_rule", "knob"),
    [
        ("kind: window_count\n    threshold: 20", Knob("AW-1", "threshold", (20, 25, 30, 40, 60))),
        ("kind: repeat_subject\n    min_days: 3", Knob("AW-1", "min_days", (3, 4, 5, 6, 9))),
        (
            "kind: out_of_area\n    min_distinct: 1",
            Knob("AW-1", "min_distinct", (1, 2, 3, 4, 5)),
        ),  # each rung a whole number above
        ("kind: volume\n    ratio: 3", Knob("AW-1", "ratio", (3.0, 3.75, 4.5, 6.0, 9.0))),
        (
            "kind: off_duty\n    grace: 30m",
            Knob("AW-1", "grace", ("30m", "38m", "45m", "1h", "90m")),
        ),
        (
            "kind: risk\n    threshold: 20",
            Knob("AW-1", "threshold", (20.0, 25.0, 30.0, 40.0, 60.0)),
        ),
        ("kind: victim", None),  # point rules have no knob
        ("kind: account", None),
        ("kind: window_count\n    alert: false", None),  # a signal raises no alert
    ],
)
def test_each_kind_has_its_knob_and_ladder(yaml_rule: str, knob: Knob | None) -> None:
    text = f"rules:\n  - id: AW-1\n    title: x\n    severity: low\n    {yaml_rule}\n"
    assert knob_of(parse_rules(text).rules[0]) == knob
