"""`accesswatch whatif`: the current and a proposed pack over the same small force."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from accesswatch.backtest import BacktestResult, run_backtest
from accesswatch.cli import main
from accesswatch.reference import ReferenceData
from accesswatch.rules import load_rules
from accesswatch.rules.loader import default_rules_path
from accesswatch.whatif import WhatIf, compare, run_whatif

DISABLED = "AW-004"  # an alerting rule the force always trips (S04)
LOOSENED = "AW-009"  # window_count: 20 distinct records in 5 minutes


@pytest.fixture(scope="module")
def force(small_force: Path) -> Path:
    return small_force


@pytest.fixture(scope="module")
def ref(small_ref: ReferenceData) -> ReferenceData:
    return small_ref


def pack_with(tmp: Path, name: str, rule_id: str | None, **changes: Any) -> Path:
    """The shipped pack with one rule's fields changed, written to ``tmp/name``.

    Every rule raises alerts of its own here (``one_alert_per_incident: false``):
    these tests are about what whatif counts, rule by rule.  With joining on, a
    rule's change also moves other rules' firings (the last test).
    """
    data = yaml.safe_load(default_rules_path().read_text())
    data["settings"]["one_alert_per_incident"] = False
    if rule_id is not None:
        (rule,) = [r for r in data["rules"] if r["id"] == rule_id]
        rule.update(changes)
    path = tmp / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def current(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pack_with(tmp_path_factory.mktemp("current"), "current.yaml", None)


@pytest.fixture(scope="module")
def base(force: Path, ref: ReferenceData, current: Path) -> BacktestResult:
    return run_backtest(force / "events.jsonl", ref, load_rules(current))


@pytest.fixture(scope="module")
def disabled_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pack_with(tmp_path_factory.mktemp("packs"), "disabled.yaml", DISABLED,
                     status="deprecated")


@pytest.fixture(scope="module")
def disabled(force: Path, ref: ReferenceData, disabled_pack: Path, current: Path) -> WhatIf:
    return run_whatif(force / "events.jsonl", ref, load_rules(current), load_rules(disabled_pack))


def by_rule(preview: WhatIf) -> dict[str, Any]:
    return {r.rule_id: r for r in preview.rules}


def ids_of(result: BacktestResult, rule_id: str) -> set[str]:
    return {a.alert_id for a in result.alerts.values() if a.rule_id == rule_id}


def test_the_same_pack_changes_nothing(
    force: Path, ref: ReferenceData, base: BacktestResult, tmp_path: Path, current: Path
) -> None:
    same = pack_with(tmp_path, "same.yaml", DISABLED)  # re-dumped, not a copy of the file
    preview = run_whatif(force / "events.jsonl", ref, load_rules(current), load_rules(same))
    total = preview.total()
    assert base.alerts and total.before == total.after == len(base.alerts)
    assert not total.gained and not total.lost and not total.changed
    assert sum(r.before for r in preview.rules) == len(base.alerts)
    assert {r.rule_id for r in preview.rules} == {a.rule_id for a in base.alerts.values()}
    assert preview.staff == 60 and 2 <= preview.days <= 3


def test_a_disabled_rule_loses_exactly_its_alerts(
    disabled: WhatIf, base: BacktestResult
) -> None:
    expected = ids_of(base, DISABLED)
    assert expected, f"the force should trip {DISABLED}"
    rules = by_rule(disabled)
    assert set(rules[DISABLED].lost) == expected and len(rules[DISABLED].lost) == len(expected)
    assert rules[DISABLED].after == 0 and rules[DISABLED].before == len(expected)
    assert not disabled.total().gained
    assert rules[DISABLED].rule_id == DISABLED


def test_a_loosened_threshold_gains_alerts_on_that_rule_only(
    force: Path, ref: ReferenceData, base: BacktestResult, tmp_path: Path, current: Path
) -> None:
    loose = pack_with(tmp_path, "loose.yaml", LOOSENED, threshold=8)
    preview = run_whatif(force / "events.jsonl", ref, load_rules(current), load_rules(loose))
    rules = by_rule(preview)
    assert rules[LOOSENED].gained and rules[LOOSENED].after > rules[LOOSENED].before
    assert not set(rules[LOOSENED].gained) & set(base.alerts)
    assert [r.rule_id for r in preview.rules if r.gained] == [LOOSENED]
    assert not preview.total().lost
    rate = preview.per_staff_day(len(rules[LOOSENED].gained))
    assert rate == pytest.approx(len(rules[LOOSENED].gained) * 1000 / 60 / preview.days)


def test_a_missing_rules_file_is_one_line_and_exit_2(
    force: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["whatif", str(force / "events.jsonl"), "--ref", str(force),
                 "--rules", "nope.yaml"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "--rules" in err and "nope.yaml: no such file" in err and "Traceback" not in err


def test_json_holds_the_same_numbers(
    force: Path, disabled_pack: Path, disabled: WhatIf, current: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["whatif", str(force / "events.jsonl"), "--ref", str(force),
                 "--rules", str(disabled_pack), "--base", str(current), "--json",
                 "--no-progress"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["staff"] == 60 and out["days"] == pytest.approx(disabled.days)
    rows = {r["rule_id"]: r for r in out["rules"]}
    assert rows.keys() == by_rule(disabled).keys()
    for rule_id, r in by_rule(disabled).items():
        assert (rows[rule_id]["before"], rows[rule_id]["after"]) == (r.before, r.after)
        assert (rows[rule_id]["gained"], rows[rule_id]["lost"]) == (r.gained, r.lost)
    lost = len(by_rule(disabled)[DISABLED].lost)
    assert rows[DISABLED]["change_per_1000_staff_per_day"] == pytest.approx(
        -lost * 1000 / 60 / disabled.days)
    assert out["total"]["lost"] == disabled.total().lost and out["total"]["gained"] == []


def test_changed_is_same_id_different_content() -> None:
    from accesswatch.core.alerts import Alert

    def alert(aid: str, rule: str, score: float, version: int = 1) -> Alert:
        return Alert(aid, "2026-03-02T09:00:00Z", "U1", rule, "t", "high", score, ["e1"],
                     ["r"], "2026-03-02T09:00:00Z", "2026-03-02T09:00:00Z", 1, version=version)

    before = {"a": alert("a", "R-1", 1), "b": alert("b", "R-1", 1), "c": alert("c", "R-2", 1)}
    after = {"a": alert("a", "R-1", 2), "b": alert("b", "R-1", 1, version=3),
             "d": alert("d", "R-3", 1)}
    rows = {r.rule_id: r for r in compare(before, after)}
    assert rows["R-1"].changed == ["a"] and not rows["R-1"].gained and not rows["R-1"].lost
    assert rows["R-2"].lost == ["c"] and rows["R-3"].gained == ["d"]
    assert (rows["R-1"].before, rows["R-1"].after) == (2, 2)


def test_with_one_alert_per_incident_a_disabled_rule_frees_what_joined_it(
    force: Path, ref: ReferenceData, tmp_path: Path
) -> None:
    """With the shipped pack, another rule's firing may have joined a DISABLED alert
    (one incident, one alert).  Disabled, that firing raises its own alert: each
    alert gained is of a rule that a lost alert named ("also AW-0NN: ...")."""
    data = yaml.safe_load(default_rules_path().read_text())
    (rule,) = [r for r in data["rules"] if r["id"] == DISABLED]
    rule["status"] = "deprecated"
    path = tmp_path / "off.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    events = force / "events.jsonl"
    before = run_backtest(events, ref, load_rules(None)).alerts
    after = run_backtest(events, ref, load_rules(path)).alerts
    preview = run_whatif(events, ref, load_rules(None), load_rules(path))
    lost = [before[a] for a in by_rule(preview)[DISABLED].lost]
    assert lost and len(lost) == len(ids_of_alerts(before, DISABLED))
    named = {why[5:].split(":")[0] for a in lost for why in a.reasons if why.startswith("also ")}
    assert preview.total().gained, f"on this force a firing joined a {DISABLED} alert"
    for gained in preview.total().gained:
        assert after[gained].rule_id in named


def ids_of_alerts(alerts: dict[str, Any], rule_id: str) -> set[str]:
    return {a.alert_id for a in alerts.values() if a.rule_id == rule_id}
