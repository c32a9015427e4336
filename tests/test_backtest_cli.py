"""The offline tools end to end through the CLI, on small generated data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from accesswatch.cli import main
from accesswatch.contract.schemas import schema
from accesswatch.evaluate import evaluate


@pytest.fixture(scope="module")
def small_force(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("force")
    assert (
        main(
            [
                "generate",
                "--out",
                str(out),
                "--staff",
                "200",
                "--days",
                "7",
                "--seed",
                "3",
                "--invalid-lines",
                "6",
            ]
        )
        == 0
    )
    return out


def test_backtest_writes_alerts_and_rejects(
    small_force: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts = tmp_path / "alerts.jsonl"
    assert (
        main(
            [
                "backtest",
                str(small_force / "events.jsonl"),
                "--ref",
                str(small_force),
                "--out",
                str(alerts),
                "--no-progress",
            ]
        )
        == 0
    )
    closing = capsys.readouterr().err.strip().splitlines()[-1]
    assert "6 rejected" in closing and "events/s" in closing
    rejects = [json.loads(x) for x in (tmp_path / "alerts.rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == 6
    lines = (small_force / "events.jsonl").read_bytes().splitlines()
    for r in rejects:
        assert r["reason"] and r["reason_class"]
        original = r["raw"].encode() if "raw" in r else None
        if original is not None:
            assert lines[r["line"] - 1] == original
    validator = Draft202012Validator(schema("alert"), format_checker=FormatChecker())
    written = [json.loads(x) for x in alerts.read_text().splitlines()]
    assert written, "a generated force always holds incidents"
    for alert in written:
        assert not list(validator.iter_errors(alert))
    assert len({a["alert_id"] for a in written}) == len(written)


def test_evaluate_prints_the_scorecard(
    small_force: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts = tmp_path / "alerts.jsonl"
    main(
        [
            "backtest",
            str(small_force / "events.jsonl"),
            "--ref",
            str(small_force),
            "--out",
            str(alerts),
            "--no-progress",
        ]
    )
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--labels",
                str(small_force / "labels.json"),
                "--alerts",
                str(alerts),
                "--json",
            ]
        )
        == 0
    )
    card = json.loads(capsys.readouterr().out)
    assert {s["scenario"] for s in card["scenarios"]} == {f"S{i:02d}" for i in range(1, 14)}
    assert all(s["incidents"] >= 1 for s in card["scenarios"])


def test_scorecard_definitions() -> None:
    labels = {
        "staff": 1000,
        "days": 2,
        "incidents": [
            {"incident_id": "i1", "scenario": "S01", "user_id": "u1", "event_ids": ["a", "b"]},
            {"incident_id": "i2", "scenario": "S01", "user_id": "u2", "event_ids": ["c"]},
            {"incident_id": "i3", "scenario": "S02", "user_id": "u3", "event_ids": ["d"]},
        ],
    }
    alerts = [
        {"alert_id": "x1", "user_id": "u1", "rule_id": "AW-001", "event_ids": ["b", "z"]},
        {"alert_id": "x2", "user_id": "u9", "rule_id": "AW-001", "event_ids": ["c"]},  # wrong user
        {"alert_id": "x3", "user_id": "u4", "rule_id": "AW-010", "event_ids": ["q"]},  # false
        {"alert_id": "x4", "user_id": "u4", "rule_id": "AW-010", "event_ids": ["r"]},  # false
    ]
    card = evaluate(labels, alerts)
    s01, s02 = card.scenarios[0], card.scenarios[1]
    assert (s01.incidents, s01.detected, s01.recall) == (2, 1, 0.5)
    assert (s02.incidents, s02.detected) == (1, 0)
    # x2 lists a labelled event, so it is not a false alert, though it detects nothing.
    assert card.false_alerts == 2
    assert card.false_per_1000_staff_day == pytest.approx(1.0)
    assert card.by_rule["AW-010"] == {"alerts": 2, "true": 0, "false": 2}
    assert card.missed == ["S01:i2", "S02:i3"]
