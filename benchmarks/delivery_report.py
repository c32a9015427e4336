"""The "Out-of-order delivery" section of ``docs/BENCHMARKS.md``, from ``results.json``'s
``delivery`` (written by ``benchmarks/delivery_bench.py`` and ``delivery_live.py``)."""

from __future__ import annotations

import textwrap
from typing import Any

from accesswatch.contract.timestamps import format_ts
from benchmarks.delivery import FEEDS, HOUR, REPEAT_DELAY
from benchmarks.readback import agreement
from benchmarks.report import unavailable

TITLE = "\n## Out-of-order delivery\n\n"
CONFIGS = (("rules_only", "rules only"), ("rules_model", "rules + model"))
ORDER_NAMES = {"in_order": "time order", "delivered": "as delivered"}


def report_delivery(r: dict[str, Any] | None) -> str:
    if not r or "error" in r:
        return unavailable(TITLE, r, "`--no-delivery`")
    f, d = r["feed"], r.get("data")
    # Run alone (``--only delivery``), the section says which force it measured.
    data = (f"Data: `accesswatch generate --staff {d['staff']} --days {d['days']} --seed "
            f"{d['seed']}`. " if d else "")
    return (TITLE + _wrap(data + _method(f, r["seed"])) + _backtest(r, f["lines"])
            + _live(r.get("live")))


def _wrap(text: str, indent: str = "") -> str:
    return textwrap.fill(" ".join(text.split()), 92, subsequent_indent=indent) + "\n"


def _feeds() -> str:
    on_line = [s for s, feed in FEEDS.items() if not feed.period]
    by_period: dict[float, list[str]] = {}
    for s, feed in FEEDS.items():
        if feed.period:
            by_period.setdefault(feed.period, []).append(s)
    extracts = "; ".join(f"{' and '.join(names)} every {p / 60:.0f} min"
                         for p, names in sorted(by_period.items()))
    return (f"{' and '.join(on_line)} on line, 0–{FEEDS[on_line[0]].jitter:.0f} s late; "
            f"extracts (each source at its own minute): {extracts}; any other system on line")


def _method(f: dict[str, Any], seed: int) -> str:
    o = f["outage"]
    outage = (f"{o['system']}, the busiest source, down from {format_ts(o['start'])} to "
              f"{format_ts(o['end'])}, its {o['backlog']:,} lines delivered at once when it is "
              "back; " if o else "")
    return f"""Method: `benchmarks/delivery.py` (seed {seed}) writes the force's events in the
order a force's feeds deliver them (contract v1.1, "How feeds deliver"): {_feeds()}; {outage}
{f['repeats']:,} lines (0.5%) delivered a second time, byte for byte,
{REPEAT_DELAY[0] / 60:.0f} min to {REPEAT_DELAY[1] / HOUR:.0f} h later. {f['late']:,} of the
{f['lines']:,} events ({f['late_share']:.1%}) arrive behind the newest event already delivered
for their member, at most {f['max_lateness_s'] / HOUR:.2f} h behind (the contract allows
24 h; the simulator checks it); the file took {f['seconds']:.1f} s to write.
"""


def _row(label: str, order: str, run: dict[str, Any], ratio: str) -> str:
    if "error" in run:
        return f"| {label} | {ORDER_NAMES[order]} | failed (below) | | | | | |"
    runs = " / ".join(f"{n:,}" for n in run["runs"])
    return (f"| {label} | {ORDER_NAMES[order]} | {run['lines_read']:,} | {run['seconds']} | "
            f"**{run['events_per_s']:,}** | {runs} | {run['alerts']:,} | {ratio} |")


def _ratio(c: dict[str, Any]) -> str:
    if "delivered_to_in_order" not in c:
        return "—"
    pairs = " / ".join(str(p) for p in c["pairs"])
    return f"**{c['delivered_to_in_order']}** ({pairs})"


def _alerts(c: dict[str, Any]) -> str:
    if "same_alert_ids" not in c:
        return "not compared (a run failed)"
    same = "yes" if c["same_alert_ids"] else (
        f"**no** ({c['only_in_order']:,} only in time order, {c['only_delivered']:,} only "
        "as delivered)")
    text = (f"same alert ids: {same} ({c['alerts_in_order']:,} in time order, "
            f"{c['alerts_delivered']:,} as delivered); of the alerts in both, "
            f"{c['other_evidence']:,} with another count, first or last seen, or evidence")
    if "other_content" in c:
        text += f", {c['other_content']:,} different in any field but `created_at`"
    cards = c.get("scorecards")
    if cards:
        a, b = cards["in_order"], cards["delivered"]
        recall = ("the same on every scenario" if a["recall"] == b["recall"] else "**differs**")
        values = sorted({v for v in a["recall"].values() if v is not None})
        shown = ", ".join(f"{v:.2f}" for v in values)
        text += (f"; recall {recall} (S01–S13: {shown}), false alerts {a['false_alerts']} in "
                 f"time order and {b['false_alerts']} as delivered")
    return text


def _backtest(r: dict[str, Any], events: int) -> str:
    rows, notes, errors = [], [], []
    for key, label in CONFIGS:
        c = r[key]
        rows.append(_row(label, "in_order", c["in_order"], "—"))
        rows.append(_row(label, "delivered", c["delivered"], _ratio(c)))
        notes.append(_wrap(f"- {label}: {_alerts(c)}.", "  "))
        errors += [f"{label}, {ORDER_NAMES[o]}:\n\n```\n{c[o]['error']}\n```\n"
                   for o in ("in_order", "delivered") if "error" in c[o]]
    table = "\n".join(rows)
    before, after = r["load_average"]
    method = _wrap(f"""Each file through `run_backtest` in one process, {r['turns']} turns
each, alternated (which goes first swapped every turn) so the machine's other load falls on
both; best of each shown. A rate is the force's {events:,} events over the run's seconds (the
delivered file's repeats are read, not counted), so delivered ÷ in order is a ratio of times;
in brackets, turn by turn, each delivered run over the in-order run of its turn. The model
was trained on the time-ordered days 1-7 ({r['train_seconds']} s). Load average {before}
before, {after} after.""")
    return f"""
{method}
| backtest | order | lines read | seconds | events/s | runs | alerts | delivered ÷ in order |
|---|---|---:|---:|---:|---|---:|---:|
{table}

Alerts, time order against as delivered (the contract: the same):
{"".join(notes)}{"".join(chr(10) + e for e in errors)}"""


def _live(live: dict[str, Any] | None) -> str:
    title = "\n### Out-of-order delivery, live\n\n"
    if not live or "error" in live:
        return unavailable(title, live, "`--live-events 0`")
    f = live["feed"]
    rows, notes = [], []
    for key, label in CONFIGS:
        c = live.get(key)
        if not c:
            continue
        for order in ("in_order", "delivered"):
            w = c[order]
            runs = " / ".join(f"{n:,}" for n in w["runs"])
            ratio = _ratio(c) if order == "delivered" else "—"
            rows.append(f"| {label} | {ORDER_NAMES[order]} | {w['records']:,} | "
                        f"{w['seconds']} | **{w['events_per_s']:,}** | {runs} | "
                        f"{' / '.join(str(n) for n in w['rejected_runs'])} | {ratio} |")
            every = "" if w["all_alerts_equal_backtest"] else " (**not in every run**)"
            notes.append(_wrap(f"- {label}, {ORDER_NAMES[order]}: {w['alerts']:,} alerts, the "
                               f"same set as the backtest's in time order "
                               f"({c['backtest_alerts']:,}): {agreement(w)}{every}.", "  "))
    table = "\n".join(rows)
    method = _wrap(f"""Method: a fresh {live['broker']} broker of its own; the force's first
{live['events']:,} events (event times {' to '.join(live['event_time_span'])}) and the same
lines as delivered (seed {live['seed']}: {f['repeats']:,} repeats; {f['late']:,} events,
{f['late_share']:.1%}, behind their member's newest, at most
{f['max_lateness_s'] / HOUR:.2f} h) each on their own events topic ({live['partitions']}
partitions) by `accesswatch replay --rate 0`, which keys by `user_id` and keeps each
member's lines in file order. One `accesswatch worker` at a time drains a topic from the
start, timed as in "Live throughput" (from `/healthz` answering to the `/metrics` sample
in which every record is read); the two topics swap places every turn, {live['turns']}
turns. A rate is the {live['events']:,} events over the drain (repeats not counted), so
delivered ÷ in order is a ratio of times; in brackets, turn by turn.""")
    return title + f"""{method}
| worker | order | records | seconds | events/s | runs | rejected (DLQ) | delivered ÷ in order |
|---|---|---:|---:|---:|---|---|---:|
{table}

{"".join(notes)}"""
