"""The ``accesswatch`` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from accesswatch import __version__
from accesswatch.contract.timestamps import parse_ts
from accesswatch.errors import AccessWatchError

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _COMMANDS[name] = fn
        return fn

    return register


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accesswatch", description=__doc__)
    parser.add_argument("--version", action="version", version=f"accesswatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="write a seeded synthetic force with labelled incidents")
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--staff", type=int, default=2000)
    g.add_argument("--days", type=int, default=14)
    g.add_argument("--seed", type=int, default=7)
    g.add_argument(
        "--invalid-lines",
        type=int,
        default=0,
        help="also write this many invalid event lines (for dead-letter demos)",
    )

    b = sub.add_parser("backtest", help="run the detection core over an events file")
    b.add_argument("events", type=Path)
    b.add_argument("--ref", type=Path, required=True, help="directory of reference JSONL files")
    b.add_argument("--out", type=Path, required=True, help="alerts JSONL to write")
    b.add_argument(
        "--rejects", type=Path, help="invalid lines with reasons (default: beside --out)"
    )
    b.add_argument("--rules", type=Path, help="rule pack YAML (default: the shipped pack)")
    b.add_argument("--model", type=Path, help="anomaly model file (from `accesswatch train`)")
    b.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="processes to split the members across, as the live workers split "
        "partitions (same alerts); default: one per core for a file over 16 MB, else 1",
    )
    b.add_argument("--no-progress", action="store_true")

    t = sub.add_parser("train", help="fit the isolation-forest model on a period of events")
    t.add_argument("events", type=Path)
    t.add_argument("--ref", type=Path, required=True, help="directory of reference JSONL files")
    t.add_argument("--out", type=Path, required=True, help="model file to write (.skops)")
    t.add_argument("--since", help="first event time to learn from (RFC 3339)")
    t.add_argument("--until", help="learn from events before this time (RFC 3339)")
    t.add_argument("--days", type=float, help="learn from the first DAYS days of the file")
    t.add_argument(
        "--alert-rate",
        type=float,
        default=0.0002,
        help="share of feature rows allowed past the alert threshold",
    )
    t.add_argument("--seed", type=int, default=0)

    e = sub.add_parser("evaluate", help="score alerts against labelled incidents")
    e.add_argument("--labels", type=Path, required=True)
    e.add_argument("--alerts", type=Path, required=True)
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.add_argument("--since", help="score only incidents and alerts from this time (RFC 3339)")

    r = sub.add_parser("rules", help="validate a rule pack and list its rules")
    r.add_argument("path", type=Path, nargs="?")

    # The live pipeline's commands (worker, topics, load-ref, replay, alerts, config).
    from accesswatch.ops.commands import add_commands

    _COMMANDS.update(add_commands(sub))
    return parser


@command("generate")
def _generate(args: argparse.Namespace) -> int:
    from accesswatch.generate import generate_force

    summary = generate_force(
        args.out, staff=args.staff, days=args.days, seed=args.seed, invalid_lines=args.invalid_lines
    )
    print(json.dumps(summary, indent=2))
    return 0


AUTO_JOBS_BYTES = 16 << 20  # below this a second process costs more than it saves
MAX_AUTO_JOBS = 8


def default_jobs(events: Path) -> int:
    """One process per core this process may use, for a file big enough to gain from it."""
    try:
        big = events.stat().st_size > AUTO_JOBS_BYTES
    except OSError:
        big = False  # the backtest reports the missing file
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(cores or 1, MAX_AUTO_JOBS) if big else 1


@command("backtest")
def _backtest(args: argparse.Namespace) -> int:
    from accesswatch.backtest import run_backtest, write_alerts
    from accesswatch.reference import load_reference_dir
    from accesswatch.rules import load_rules

    rules = load_rules(args.rules)
    ref, problems = load_reference_dir(args.ref)
    for p in problems:
        print(f"reference: {p}", file=sys.stderr)
    rejects = args.rejects or args.out.with_name(args.out.stem + ".rejects.jsonl")
    model = None
    if args.model is not None:
        from models import load_model

        model = load_model(args.model)
    if args.jobs < 0:
        print("backtest: --jobs must be at least 1 (0: one per core)", file=sys.stderr)
        return 2
    jobs = args.jobs or default_jobs(args.events)
    result = run_backtest(
        args.events,
        ref,
        rules,
        rejects_path=rejects,
        progress=not args.no_progress,
        model=model,
        jobs=jobs,
    )
    write_alerts(result.alerts, args.out)
    processes = f" ({result.jobs} processes)" if result.jobs > 1 else ""
    refused = f" (see {rejects})" if result.rejected else ""
    if not result.rejected:
        rejects.unlink(missing_ok=True)
    late = f", {result.too_late:,} of them too late" if result.too_late else ""
    print(
        f"{result.events:,} events, {result.rejected:,} rejected{late}{refused}, "
        f"{result.repeats:,} repeats ignored, {len(result.alerts):,} alerts "
        f"({result.updates:,} updates) in {result.seconds:.1f} s: "
        f"{result.rate:,.0f} events/s{processes}",
        file=sys.stderr,
    )
    return 0


@command("evaluate")
def _evaluate(args: argparse.Namespace) -> int:
    from accesswatch.evaluate import evaluate, load_alerts

    since = parse_ts(args.since, "--since") if args.since else None
    card = evaluate(json.loads(args.labels.read_text()), load_alerts(args.alerts), since=since)
    print(json.dumps(card.to_json(), indent=2) if args.json else card.to_text())
    return 0


@command("train")
def _train(args: argparse.Namespace) -> int:
    import time

    from accesswatch.core import Detector
    from accesswatch.reference import load_reference_dir
    from models import save_model
    from models.train import feature_rows, fit

    ref, problems = load_reference_dir(args.ref)
    for p in problems:
        print(f"reference: {p}", file=sys.stderr)
    since = parse_ts(args.since, "--since") if args.since else None
    until = parse_ts(args.until, "--until") if args.until else None
    if args.days is not None:
        first = _first_event_time(args.events)
        since = since or first
        until = since + args.days * 86400
    started = time.perf_counter()
    rows = feature_rows(args.events, Detector(None, ref), since=since, until=until)
    model = fit(rows, alert_rate=args.alert_rate, seed=args.seed)
    version = save_model(model, args.out)
    m = model.meta
    print(
        f"trained {args.out} (version {version}) on {m['rows']:,} feature rows from "
        f"{m['users']:,} members, {m['trained_from']} to {m['trained_to']}, "
        f"in {time.perf_counter() - started:.1f} s"
    )
    print(
        f"thresholds: alert {model.threshold:.4f} (top {args.alert_rate:.2%} of rows), "
        f"weak signal {model.odd_threshold:.4f}; peer groups {len(model.peer_usual) - 1}"
    )
    return 0


def _first_event_time(path: Path) -> float:
    from accesswatch.contract.events import decode_event
    from accesswatch.errors import InvalidRecord

    with path.open("rb") as f:
        for line in f:
            try:
                return decode_event(line.rstrip(b"\r\n")).t
            except InvalidRecord:
                continue
    raise AccessWatchError(f"{path}: no valid events")


@command("rules")
def _rules(args: argparse.Namespace) -> int:
    from accesswatch.rules import load_rules

    pack = load_rules(args.path)
    print(f"{pack.source}: {len(pack.rules)} rules, version {pack.version}")
    for rule in pack.rules:
        kind = rule.__struct_config__.tag
        print(f"  {rule.id:<8} {rule.severity:<8} {rule.status:<12} {kind:<18} {rule.title}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except AccessWatchError as e:
        print(f"accesswatch: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
