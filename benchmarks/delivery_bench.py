"""``make bench``'s out-of-order delivery: what the feeds' delivery order costs the backtest.

The force's events file (time order) and the same lines as a force's feeds
deliver them (``benchmarks/delivery.py``: extracts, an outage's backlog,
repeats) go through ``run_backtest`` in alternated turns, the order swapped
every turn, so the machine's other load falls on both; rules only, then rules
+ model (trained on the time-ordered days 1-7).  The contract says the two
files must give the same alerts; whether they did is reported beside the
times, never asserted: a benchmark measures.
"""

from __future__ import annotations

import json
import os
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import msgspec

from accesswatch.backtest import BacktestResult, run_backtest
from accesswatch.core.alerts import Alert
from accesswatch.core.detector import Model
from accesswatch.evaluate import evaluate
from accesswatch.reference import ReferenceData, load_reference_dir
from accesswatch.rules import load_rules
from accesswatch.rules.loader import RulePack
from benchmarks.delivery import DeliveryStats, deliver

ORDERS = ("in_order", "delivered")


def delivered_file(data: Path, cache: Path, seed: int) -> tuple[Path, DeliveryStats]:
    """The force's events as the feeds deliver them, written afresh (a few seconds)."""
    out = cache / f"{data.name}.delivered-s{seed}.jsonl"
    return out, deliver(data / "events.jsonl", out, seed=seed)


def bench_delivery(data: Path, cache: Path, turns: int, seed: int = 1) -> dict[str, Any]:
    """Figures for ``results.json``'s ``delivery`` (the live part is added by run.py)."""
    from benchmarks.model import train

    load_before = [round(x, 2) for x in os.getloadavg()]
    delivered, stats = delivered_file(data, cache, seed)
    ref, _ = load_reference_dir(data)
    model, train_seconds = train(data, ref)
    files = {"in_order": data / "events.jsonl", "delivered": delivered}
    out: dict[str, Any] = {
        "seed": seed,
        "turns": turns,
        "feed": stats_json(stats),
        "train_seconds": round(train_seconds, 1),
    }
    rules = load_rules()
    labels = json.loads((data / "labels.json").read_text())
    for name, m in (("rules_only", None), ("rules_model", model)):
        out[name] = compare_orders(files, ref, rules, m, turns, stats.lines, labels)
    out["load_average"] = [load_before, [round(x, 2) for x in os.getloadavg()]]
    return out


def stats_json(stats: DeliveryStats) -> dict[str, Any]:
    out = asdict(stats)
    out["late_share"] = round(stats.late_share, 4)
    out["summary"] = stats.summary()
    return out


def compare_orders(
    files: dict[str, Path],
    ref: ReferenceData,
    rules: RulePack,
    model: Model | None,
    turns: int,
    events: int,
    labels: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Each file ``turns`` times, alternated; the best of each, every run's rate, and
    whether the alerts agree.  ``events`` (the force's, repeats not counted) over a run's
    seconds is its rate, so delivered ÷ in order is a ratio of times."""
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in ORDERS}
    alerts: dict[str, dict[str, Alert]] = {}
    failed: dict[str, str] = {}
    for turn in range(turns):
        for order in ORDERS if turn % 2 == 0 else ORDERS[::-1]:
            if order in failed:
                continue
            try:
                result = run_backtest(files[order], ref, rules, model=model)
            except Exception as e:  # the core may not cope yet: report it, keep the rest
                failed[order] = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"
                continue
            runs[order].append(_run(result, events))
            alerts.setdefault(order, result.alerts)
    out: dict[str, Any] = {}
    for order in ORDERS:
        if order in failed:
            out[order] = {"error": failed[order], "runs": [r["events_per_s"] for r in runs[order]]}
        else:
            best = min(runs[order], key=lambda r: r["seconds"])
            out[order] = {**best, "runs": [r["events_per_s"] for r in runs[order]]}
    if not failed:
        a, b = out["in_order"], out["delivered"]
        out["delivered_to_in_order"] = round(b["events_per_s"] / a["events_per_s"], 3)
        # Turn by turn: each delivered run over the in-order run of the same turn.
        out["pairs"] = [
            round(d["events_per_s"] / i["events_per_s"], 3)
            for i, d in zip(runs["in_order"], runs["delivered"], strict=True)
        ]
        out.update(agreement(alerts["in_order"], alerts["delivered"]))
        if labels is not None:
            out["scorecards"] = {order: scorecard(labels, alerts[order]) for order in ORDERS}
    return out


def scorecard(labels: dict[str, Any], alerts: dict[str, Alert]) -> dict[str, Any]:
    """Recall per scenario and false alerts, as ``accesswatch evaluate`` gives them."""
    card = evaluate(labels, [msgspec.to_builtins(a) for a in alerts.values()])
    return {
        "recall": {s.scenario: s.recall for s in card.scenarios},
        "false_alerts": card.false_alerts,
        "alerts": card.alerts,
    }


def _run(result: BacktestResult, events: int) -> dict[str, Any]:
    return {
        "lines_read": result.events + result.rejected,
        "rejected": result.rejected,
        "seconds": round(result.seconds, 2),
        "events_per_s": round(events / result.seconds) if result.seconds else 0,
        "alerts": len(result.alerts),
    }


def _content(a: Alert) -> bytes:
    return msgspec.json.encode(msgspec.structs.replace(a, created_at=""))


def _evidence(a: Alert) -> tuple[object, ...]:
    return (a.rule_id, a.user_id, a.count, a.first_seen, a.last_seen, sorted(a.event_ids))


def agreement(in_order: dict[str, Alert], delivered: dict[str, Alert]) -> dict[str, Any]:
    """Same alert ids?  And of those in both, how many differ in count or evidence, and
    in any field at all but ``created_at`` (a publish time)."""
    both = in_order.keys() & delivered.keys()
    return {
        "other_content": sum(_content(in_order[i]) != _content(delivered[i]) for i in both),
        "same_alert_ids": in_order.keys() == delivered.keys(),
        "alerts_in_order": len(in_order),
        "alerts_delivered": len(delivered),
        "only_in_order": len(in_order.keys() - both),
        "only_delivered": len(delivered.keys() - both),
        "other_evidence": sum(_evidence(in_order[i]) != _evidence(delivered[i]) for i in both),
    }
