"""Acceptance: detection quality on full-size generated forces, two seeds.

Slow (a 2,000-staff, 14-day force is ~800k events): marked ``slow``; ``make test``
runs it, ``make test-fast`` skips it.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from accesswatch.backtest import run_backtest
from accesswatch.evaluate import evaluate
from accesswatch.generate import generate_force
from accesswatch.reference import load_reference_dir

RULE_SCENARIOS = ["S01", "S02", "S03", "S04", "S05", "S06", "S07", "S10", "S11", "S13"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 11])
def test_rule_scenarios_recall_and_false_alert_rate(seed: int, tmp_path: Path) -> None:
    import json

    generate_force(tmp_path, staff=2000, days=14, seed=seed)
    ref, problems = load_reference_dir(tmp_path)
    assert problems == []
    result = run_backtest(tmp_path / "events.jsonl", ref)
    labels = json.loads((tmp_path / "labels.json").read_text())
    card = evaluate(labels, [msgspec.to_builtins(a) for a in result.alerts.values()])
    print(f"\nseed {seed}:\n{card.to_text()}")
    recall = {s.scenario: s.recall for s in card.scenarios}
    for code in RULE_SCENARIOS:
        assert recall[code] is not None and recall[code] >= 0.95, (code, recall[code])
    assert card.false_per_1000_staff_day <= 2.0
