"""The tuning commands of ``accesswatch``: ``whatif`` and ``budget``.

Both run rule packs over one history (``accesswatch.whatif.History``).  Errors
are not caught here: ``accesswatch.cli.main`` turns each into one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accesswatch.cli_args import existing_dir, existing_file, number, output_file
from accesswatch.errors import UsageError

Handler = Callable[[argparse.Namespace], int]
BUDGET_HOW = """\
Each rule kind has one knob that makes it fire less as it rises: window_count and
risk `threshold`, volume `ratio`, repeat_subject `min_days`, out_of_area
`min_distinct`, off_duty `grace`; the other kinds are fixed. A knob climbs a
ladder: its value now, then x1.25, x1.5, x2 and x3. Every candidate is the whole
pack, run over the same events (read once) as it would publish, since rules
interact (risk adds up across them; alerts fold into one another):

  1. the pack as it is; within the budget, no change is proposed
  2. every knob raised together: the lowest shared rung within the budget; if
     even x3 is over, nothing is within it: one line, exit 1
  3. each knob back to its value in force while the total stays within the
     budget, the one that takes away the fewest alerts first; then the knobs
     still raised come down a rung at a time while the budget allows

The proposal is a run within the budget, each of its knobs brought down as far
as the budget allowed when it was tried (12 backtests at most).
"""


def add_commands(sub: Any, ref_help: str, allow_empty_help: str) -> dict[str, Handler]:
    """Add ``whatif`` and ``budget`` to ``sub``; return their handlers by name."""
    w = sub.add_parser(
        "whatif", help="preview a rule change: alerts gained and lost per rule",
        description="Run the current rule pack and a proposed one over the same events and "
        "reference data, and print per rule the alerts before and after, the alert ids "
        "gained, lost and changed, and the change in alerts per 1,000 staff per day.",
        epilog="examples:\n"
        "  accesswatch whatif force/events.jsonl --ref force --rules tuned.yaml\n"
        "  accesswatch whatif force/events.jsonl --ref force --rules tuned.yaml "
        "--base current.yaml --model model.skops --json")
    w.add_argument("events", type=Path, metavar="EVENTS", help="events JSONL file")
    w.add_argument("--ref", type=existing_dir, required=True, metavar="DIR", help=ref_help)
    w.add_argument("--rules", type=existing_file, required=True, metavar="FILE",
                   help="the proposed rule pack YAML")
    w.add_argument("--base", type=existing_file, metavar="FILE",
                   help="the current rule pack YAML (default: the shipped pack)")
    w.add_argument("--model", type=existing_file, metavar="FILE",
                   help="anomaly model file from `accesswatch train`, used by both runs "
                   "(default: none)")
    w.add_argument("--json", action="store_true",
                   help="print the comparison as one JSON object (default: a table)")
    w.add_argument("--allow-empty", action="store_true", help=allow_empty_help)
    w.add_argument("--no-progress", action="store_true",
                   help="draw no progress bars (default: drawn on stderr)")

    b = sub.add_parser(
        "budget", help="the lowest thresholds that keep alerts within N a day",
        description="Report per rule the alerts a day the rule pack raises over EVENTS, and "
        "the lowest settings of its thresholds that keep the whole pack within --per-day "
        "alerts a day; with --labels, each scenario's recall now and at those settings.\n\n"
        + BUDGET_HOW,
        epilog="examples:\n"
        "  accesswatch budget force/events.jsonl --ref force --per-day 10 "
        "--labels force/labels.json\n"
        "  accesswatch budget force/events.jsonl --ref force --per-day 10 --write tuned.yaml\n"
        "  accesswatch whatif force/events.jsonl --ref force --rules tuned.yaml")
    b.add_argument("events", type=Path, metavar="EVENTS", help="events JSONL file")
    b.add_argument("--ref", type=existing_dir, required=True, metavar="DIR", help=ref_help)
    b.add_argument("--per-day", type=number(0, above=True), required=True, metavar="N",
                   help="alerts a day the whole force's analysts can work through")
    b.add_argument("--labels", type=existing_file, metavar="FILE",
                   help="labels.json from `accesswatch generate`: report each scenario's "
                   "recall now and at the proposed settings (default: no recall)")
    b.add_argument("--rules", type=existing_file, metavar="FILE",
                   help="the rule pack YAML in force (default: the shipped pack)")
    b.add_argument("--model", type=existing_file, metavar="FILE",
                   help="anomaly model file from `accesswatch train`; its alerts count, "
                   "and it has no knob (default: none)")
    b.add_argument("--write", type=output_file, metavar="FILE",
                   help="write the pack with the proposed settings here, comments and all, "
                   "for `accesswatch whatif --rules FILE` (default: only print the changes)")
    b.add_argument("--json", action="store_true",
                   help="print the report as one JSON object (default: tables)")
    b.add_argument("--allow-empty", action="store_true", help=allow_empty_help)
    b.add_argument("--no-progress", action="store_true",
                   help="print no progress on stderr (default: a bar while EVENTS is read, "
                   "then a line a run)")
    return {"whatif": _whatif, "budget": _budget}


def _whatif(args: argparse.Namespace) -> int:
    from accesswatch.cli import checked_events, default_jobs, load_pack, reference_and_model
    from accesswatch.whatif import run_whatif

    base, proposed = load_pack(args.base), load_pack(args.rules)
    events = checked_events(args)
    ref, model = reference_and_model(args)
    preview = run_whatif(events, ref, base, proposed, model=model,
                         jobs=default_jobs(events), progress=not args.no_progress)
    print(json.dumps(preview.to_json(), indent=2) if args.json else preview.to_text())
    return 0


def _budget(args: argparse.Namespace) -> int:
    from accesswatch.backtest import read_events
    from accesswatch.budget import run_budget
    from accesswatch.cli import checked_events, default_jobs, load_pack, reference_and_model
    from accesswatch.evaluate import load_labels
    from accesswatch.rules.loader import default_rules_path
    from accesswatch.whatif import History

    rules = args.rules or default_rules_path()
    if args.write is not None and args.write.resolve() == rules.resolve():
        raise UsageError(f"--write {args.write} is the pack in force; write a new file and "
                         "preview it with `accesswatch whatif --rules FILE`")
    pack = load_pack(rules)
    labels = load_labels(args.labels) if args.labels is not None else None
    events = checked_events(args)
    ref, model = reference_and_model(args)
    quiet = args.no_progress
    # A bar while the file is read; then a line a run, not a bar.
    history = History(read_events(events, progress=not quiet), ref, model, default_jobs(events))
    report = run_budget(
        history, rules.read_text(encoding="utf-8"), pack.source, args.per_day, labels=labels,
        say=(lambda line: None) if quiet else (lambda line: print(f"budget: {line}",
                                                                   file=sys.stderr)),
    )
    print(json.dumps(report.to_json(), indent=2) if args.json else report.to_text())
    if args.write is not None:
        args.write.write_text(report.text, encoding="utf-8")
        print(f"budget: wrote {args.write}; preview it with `accesswatch whatif "
              f"{args.events} --ref {args.ref} --rules {args.write}`", file=sys.stderr)
    return 0
