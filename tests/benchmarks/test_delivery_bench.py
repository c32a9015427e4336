"""The out-of-order delivery section of ``make bench``: its runs, report and splice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import delivery_bench
from benchmarks.delivery_bench import bench_delivery
from benchmarks.delivery_report import report_delivery
from benchmarks.run import delivery_failure, splice

DOC = """# Benchmarks

## Live throughput

figures

## Reproduce

```sh
make bench
```
"""


@pytest.fixture(scope="module")
def results(small_force: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return bench_delivery(small_force, tmp_path_factory.mktemp("cache"), turns=2)


def test_both_orders_run_alternated_and_are_compared(results: dict[str, Any]) -> None:
    assert results["feed"]["repeats"] > 0
    for key in ("rules_only", "rules_model"):
        c = results[key]
        if "error" in c["in_order"] or "error" in c["delivered"]:
            pytest.fail(f"{key}: a backtest failed: {c}")
        assert len(c["in_order"]["runs"]) == len(c["delivered"]["runs"]) == 2
        assert c["delivered"]["lines_read"] == (
            c["in_order"]["lines_read"] + results["feed"]["repeats"]
        )
        assert len(c["pairs"]) == 2 and c["delivered_to_in_order"] > 0
        assert c["alerts_in_order"] == c["in_order"]["alerts"]
        assert isinstance(c["same_alert_ids"], bool)
    assert delivery_failure(results) is None


def test_the_report_shows_every_row(results: dict[str, Any]) -> None:
    text = report_delivery(results)
    assert text.count("| as delivered |") == 2 and text.count("| time order |") == 2
    assert "same alert ids" in text and "Not run (`--live-events 0`)" in text


def test_a_crashing_backtest_is_reported_not_raised(
    small_force: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = delivery_bench.run_backtest

    def crash_on_delivered(path: Path, *args: Any, **kwargs: Any) -> Any:
        if "delivered" in path.name:
            raise RuntimeError("core not ready")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(delivery_bench, "run_backtest", crash_on_delivered)
    r = bench_delivery(small_force, tmp_path, turns=2)
    assert "core not ready" in r["rules_only"]["delivered"]["error"]
    assert len(r["rules_only"]["in_order"]["runs"]) == 2
    assert "delivered_to_in_order" not in r["rules_only"]
    assert "core not ready" in (delivery_failure(r) or "")
    text = report_delivery(r)
    assert "failed (below)" in text and "core not ready" in text


def test_splice_puts_a_new_section_before_reproduce() -> None:
    out = splice(DOC, "\n## Out-of-order delivery\n\nfirst\n")
    assert out.index("## Live throughput") < out.index("first") < out.index("## Reproduce")


def test_splice_replaces_the_section_and_keeps_the_rest() -> None:
    once = splice(DOC, "\n## Out-of-order delivery\n\nfirst\n\n### live\n\nx\n")
    twice = splice(once, "\n## Out-of-order delivery\n\nsecond\n")
    assert "first" not in twice and "### live" not in twice and twice.count("second") == 1
    assert twice.replace("\n## Out-of-order delivery\n\nsecond\n", "") == DOC
