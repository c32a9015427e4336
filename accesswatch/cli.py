"""The ``accesswatch`` command: its parser, the offline commands and the one error path."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from accesswatch import __version__
from accesswatch.cli_args import (
    Parser,
    check_paths,
    existing_dir,
    existing_file,
    number,
    output_dir,
    output_file,
    timestamp,
    whole,
)
from accesswatch.errors import AccessWatchError, UsageError

if TYPE_CHECKING:
    from accesswatch.core.detector import Model
    from accesswatch.reference import ReferenceData
    from accesswatch.rules import RulePack

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Handler] = {}
DESCRIPTION = """\
Watch who looks up what on a police force's records systems: rules (and a
model) over access events and reference data, offline on files or live on Kafka.
"""
START = """\
accesswatch: find misuse in access events, offline or live.

The five commands to start with:
  generate  write a synthetic force     accesswatch generate --out force --staff 300 --days 7
  backtest  alerts from an events file  accesswatch backtest force/events.jsonl --ref force \\
                                            --out alerts.jsonl
  evaluate  score alerts against labels accesswatch evaluate --labels force/labels.json \\
                                            --alerts alerts.jsonl
  worker    run the live pipeline       accesswatch topics create && accesswatch worker
  alerts    watch live alerts           accesswatch alerts tail --from-beginning

Every command: accesswatch --help.  One command: accesswatch COMMAND --help.
"""


def command(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _COMMANDS[name] = fn
        return fn

    return register


def _staff(text: str) -> int:
    from accesswatch.generate import MIN_STAFF

    return whole(MIN_STAFF, f"{{value}} is too few: at least {MIN_STAFF} are needed to "
                 "place every scenario")(text)


def _start_date(text: str) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date like 2026-07-06"
        ) from None
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo("Europe/London"))


def _days(text: str) -> int:
    from accesswatch.generate import MIN_DAYS

    return whole(MIN_DAYS, f"{{value}} is too few: at least {MIN_DAYS} are needed to "
                 "place every scenario")(text)


def _subjects(text: str) -> int:
    from accesswatch.generate.national_layout import MIN_SUBJECTS

    return whole(MIN_SUBJECTS, f"{{value}} is too few: at least {MIN_SUBJECTS}")(text)


def _id_prefix(text: str) -> str:
    from accesswatch.generate.reference_only import check_id_prefix

    try:
        return check_id_prefix(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


REF_HELP = ("directory of reference JSONL files: staff, subjects, cases and duties "
            "(as `accesswatch generate` writes them)")
ALLOW_EMPTY_HELP = ("accept a --ref directory lacking some files or records (default: "
                    "refuse it, since every member would be unknown)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="accesswatch", description=DESCRIPTION,
                    epilog="Run `accesswatch COMMAND --help` for a command's options and "
                    "examples.")
    parser.add_argument("--version", action="version", version=f"accesswatch {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, print the traceback too (or ACCESSWATCH_DEBUG=1); "
                        "give it before the command")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser(
        "generate", help="write a seeded synthetic force with labelled incidents",
        description="Write events.jsonl, the four reference files and labels.json (every "
        "misuse incident, scenarios S01-S13) into a directory. The same arguments always "
        "give the same files.",
        epilog="examples:\n  accesswatch generate --out force\n"
        "  accesswatch generate --out small --staff 300 --days 7 --seed 1\n"
        "  accesswatch generate --out pad --reference-only --staff 200000 --subjects 20000000 "
        "--id-prefix N")
    g.add_argument("--out", type=output_dir, required=True, metavar="DIR",
                   help="directory to write into (made if missing; files in it are replaced)")
    g.add_argument("--staff", type=_staff, default=2000, metavar="N",
                   help="members of staff (at least 40)")
    g.add_argument("--days", type=_days, default=14, metavar="N",
                   help="days of activity (at least 3)")
    g.add_argument("--seed", type=int, default=7, metavar="N",
                   help="random seed: the same seed gives the same force")
    g.add_argument("--start", type=_start_date, default=None, metavar="DATE",
                   help="first day of the feed, YYYY-MM-DD (a summer date puts the force "
                   "in British Summer Time) (default: 2026-03-02)")
    g.add_argument("--invalid-lines", type=whole(0), default=0, metavar="N",
                   help="also write this many invalid event lines (for dead-letter demos)")
    g.add_argument("--variants", action="store_true",
                   help="also write the variants: misuse shaped to stay just under the "
                   "rules' thresholds, labelled V08, V09, V12 and V13 (the rest of the "
                   "force is unchanged)")
    g.add_argument("--reference-only", action="store_true",
                   help="write only the four reference files, streamed in memory that grows "
                   "with --staff and not with --subjects: national-scale padding (no events "
                   "or labels)")
    g.add_argument("--subjects", type=_subjects, default=None, metavar="M",
                   help="with --reference-only: subject records to write (at least 1000; "
                   "default: 31 per member of staff, as a full force has)")
    g.add_argument("--id-prefix", type=_id_prefix, default=None, metavar="P",
                   help="with --reference-only: start every id with P (letters, digits, "
                   "_ . : -) so the files merge with a real force's without a collision "
                   "(default: none)")

    b = sub.add_parser(
        "backtest", help="run the detection core over an events file",
        description="Run the rules (and a model) over EVENTS as the live worker would, and "
        "write the alerts. Lines that break the event contract go to --rejects.",
        epilog="examples:\n"
        "  accesswatch backtest force/events.jsonl --ref force --out alerts.jsonl\n"
        "  accesswatch backtest force/events.jsonl --ref force --out alerts.jsonl "
        "--model model.skops --jobs 4")
    b.add_argument("events", type=Path, metavar="EVENTS", help="events JSONL file")
    b.add_argument("--ref", type=existing_dir, required=True, metavar="DIR", help=REF_HELP)
    b.add_argument("--out", type=output_file, required=True, metavar="FILE",
                   help="alerts JSONL to write (replaced if it exists)")
    b.add_argument("--rejects", type=output_file, metavar="FILE",
                   help="invalid lines with reasons; written only if there are any "
                   "(default: OUT's name with .rejects.jsonl, beside it)")
    b.add_argument("--rules", type=existing_file, metavar="FILE",
                   help="rule pack YAML (default: the shipped pack)")
    b.add_argument("--model", type=existing_file, metavar="FILE",
                   help="anomaly model file from `accesswatch train` (default: none)")
    b.add_argument(
        "--jobs", type=whole(0), default=0, metavar="N",
        help="processes to split the members across, as the live workers split "
        "partitions (same alerts); 0: one per core for a file over 16 MB, else 1")
    b.add_argument("--allow-empty", action="store_true", help=ALLOW_EMPTY_HELP)
    b.add_argument("--no-progress", action="store_true",
                   help="draw no progress bar (default: drawn on stderr)")

    # whatif and budget: rule packs run over one history, to tune them.
    from accesswatch.cli_tuning import add_commands as add_tuning_commands

    _COMMANDS.update(add_tuning_commands(sub, REF_HELP, ALLOW_EMPTY_HELP))

    t = sub.add_parser(
        "train", help="fit the isolation-forest model on a period of events",
        description="Fit the anomaly model on the events of a period taken to be ordinary, "
        "and write it for `backtest --model` and `worker --model`.",
        epilog="examples:\n"
        "  accesswatch train force/events.jsonl --ref force --out model.skops --days 7\n"
        "  accesswatch train events.jsonl --ref ref --out model.skops "
        "--since 2026-03-02T00:00:00Z --until 2026-03-09T00:00:00Z")
    t.add_argument("events", type=Path, metavar="EVENTS", help="events JSONL file")
    t.add_argument("--ref", type=existing_dir, required=True, metavar="DIR", help=REF_HELP)
    t.add_argument("--out", type=output_file, required=True, metavar="FILE",
                   help="model file to write (.skops)")
    t.add_argument("--since", type=timestamp, metavar="TIME",
                   help="first event time to learn from, RFC 3339 (default: the file's start)")
    t.add_argument("--until", type=timestamp, metavar="TIME",
                   help="learn from events before this time, RFC 3339 (default: the file's end)")
    t.add_argument("--days", type=number(0, above=True), metavar="DAYS",
                   help="learn from the first DAYS days (from --since, else the first event; "
                   "default: all)")
    t.add_argument("--alert-rate", type=number(0, above=True, maximum=1), default=0.03,
                   metavar="SHARE", help="share of the training member-hours with doubtful work "
                   "allowed past the alert threshold")
    t.add_argument("--seed", type=int, default=0, metavar="N", help="random seed of the forest")
    t.add_argument("--allow-empty", action="store_true", help=ALLOW_EMPTY_HELP)

    e = sub.add_parser(
        "evaluate", help="score alerts against labelled incidents",
        description="Print recall per scenario and false alerts per 1,000 staff a day, as "
        "the contract's scenarios.md defines them.",
        epilog="examples:\n"
        "  accesswatch evaluate --labels force/labels.json --alerts alerts.jsonl\n"
        "  accesswatch evaluate --labels force/labels.json --alerts alerts.jsonl --json")
    e.add_argument("--labels", type=existing_file, required=True, metavar="FILE",
                   help="labels.json that `accesswatch generate` wrote")
    e.add_argument("--alerts", type=existing_file, required=True, metavar="FILE",
                   help="alerts JSONL that `accesswatch backtest --out` wrote")
    e.add_argument("--json", action="store_true",
                   help="print the scorecard as JSON (default: a table)")
    e.add_argument("--since", type=timestamp, metavar="TIME",
                   help="score only incidents and alerts from this time, RFC 3339 "
                   "(default: all)")

    r = sub.add_parser(
        "rules", help="validate a rule pack and list its rules",
        epilog="examples:\n  accesswatch rules\n  accesswatch rules my-rules.yaml")
    r.add_argument("path", type=existing_file, nargs="?", metavar="PATH",
                   help="rule pack YAML (default: the shipped pack)")

    # The live pipeline's commands (worker, topics, load-ref, replay, alerts, config).
    from accesswatch.ops.commands import add_commands

    _COMMANDS.update(add_commands(sub))
    return parser


@command("generate")
def _generate(args: argparse.Namespace) -> int:
    from accesswatch.generate import generate_force

    if args.reference_only:
        return _generate_reference(args)
    if args.subjects is not None or args.id_prefix is not None:
        raise UsageError("--subjects and --id-prefix are only valid with --reference-only")
    summary = generate_force(
        args.out,
        staff=args.staff,
        days=args.days,
        seed=args.seed,
        start=args.start,
        invalid_lines=args.invalid_lines,
        variants=args.variants,
    )
    print(json.dumps(summary, indent=2))
    return 0


def _generate_reference(args: argparse.Namespace) -> int:
    import time

    from accesswatch.generate.reference_only import default_subjects, generate_reference

    if args.variants or args.invalid_lines:
        raise UsageError("--variants and --invalid-lines shape events; --reference-only "
                         "writes none")
    started = time.perf_counter()
    counts = generate_reference(
        args.out, staff=args.staff, seed=args.seed, days=args.days, start=args.start,
        subjects=default_subjects(args.staff) if args.subjects is None else args.subjects,
        id_prefix=args.id_prefix or "")
    print(json.dumps(counts, indent=2))
    print(f"reference only: {counts['staff']:,} staff, {counts['subjects']:,} subjects, "
          f"{counts['cases']:,} cases, {counts['duties']:,} duties in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
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


def events_file(path: Path) -> Path:
    """EVENTS checked after --ref: a wrong reference directory stops before events are read."""
    try:
        return existing_file.check(str(path))
    except argparse.ArgumentTypeError as e:
        raise UsageError(f"EVENTS {e}") from None


def checked_events(args: argparse.Namespace) -> Path:
    """--ref checked, then EVENTS: a wrong reference directory stops before events are read."""
    from accesswatch.reference import require_reference

    require_reference(args.ref, "--ref", every_file=True, allow_empty=args.allow_empty)
    return events_file(args.events)


def reference_and_model(args: argparse.Namespace) -> tuple[ReferenceData, Model | None]:
    """The --ref data (its problems on stderr, one line each) and the --model, or None."""
    from accesswatch.reference import load_reference_dir

    ref, problems = load_reference_dir(args.ref)
    for p in problems:
        print(f"reference: {p}", file=sys.stderr)
    if getattr(args, "model", None) is None:
        return ref, None
    from models import load_model

    return ref, load_model(args.model)


def load_pack(path: Path | None) -> RulePack:
    """A rule pack (the shipped one for None), its warnings on stderr, one line each."""
    from accesswatch.rules import load_rules

    pack = load_rules(path)
    for warning in pack.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return pack


@command("backtest")
def _backtest(args: argparse.Namespace) -> int:
    from accesswatch.backtest import run_backtest, write_alerts

    events = checked_events(args)
    rules = load_pack(args.rules)
    ref, model = reference_and_model(args)
    rejects = args.rejects or args.out.with_name(args.out.stem + ".rejects.jsonl")
    jobs = args.jobs or default_jobs(events)
    result = run_backtest(
        events,
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
    from accesswatch.evaluate import evaluate, load_alerts, load_labels

    card = evaluate(load_labels(args.labels), load_alerts(args.alerts), since=args.since)
    print(json.dumps(card.to_json(), indent=2) if args.json else card.to_text())
    return 0


@command("train")
def _train(args: argparse.Namespace) -> int:
    import time

    from accesswatch.core import Detector
    from models import save_model
    from models.train import feature_rows, fit

    events = checked_events(args)
    ref, _ = reference_and_model(args)
    since, until = args.since, args.until
    if args.days is not None:
        since = since or _first_event_time(events)
        until = since + args.days * 86400
    started = time.perf_counter()
    rows = feature_rows(events, Detector(None, ref), since=since, until=until)
    model = fit(rows, alert_rate=args.alert_rate, seed=args.seed)
    version = save_model(model, args.out)
    m = model.meta
    print(
        f"trained {args.out} (version {version}) on {m['rows']:,} member-hours of doubtful "
        f"work from "
        f"{m['users']:,} members, {m['trained_from']} to {m['trained_to']}, "
        f"in {time.perf_counter() - started:.1f} s"
    )
    print(
        f"thresholds: alert {model.threshold:.4f} (top {args.alert_rate:.2%} of them), "
        f"weak signal {model.odd_threshold:.4f}; peer groups {len(model.peer_median)}"
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
    from accesswatch.rules import RulePackError

    try:
        pack = load_pack(args.path)
    except RulePackError as e:  # what this command is for: every problem, one a line
        print(e, file=sys.stderr)
        return 1
    expiry = f"; next allow-list expiry {pack.next_expiry}" if pack.next_expiry else ""
    print(f"{pack.source}: {len(pack.rules)} rules, version {pack.version}{expiry}")
    for rule in pack.rules:
        kind = rule.__struct_config__.tag
        print(f"  {rule.id:<8} {rule.severity:<8} {rule.status:<12} {kind:<18} {rule.title}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure ends in one line on stderr (exit 2 usage, 1 runtime)."""
    from accesswatch.cli_errors import FAILED, USAGE, debug_from_environment, report

    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(START, end="")
        return USAGE
    debug = debug_from_environment() or "--debug" in argv[: _first_command(argv)]
    prog = "accesswatch"
    try:
        args = build_parser().parse_args(argv)
        check_paths(args)
        prog = f"accesswatch {args.command}"
        code = _COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe is found here, inside the error path
        return code
    except SystemExit as e:  # argparse: --help, --version, or a usage error already said
        return e.code if isinstance(e.code, int) else (FAILED if e.code else 0)
    except (Exception, KeyboardInterrupt) as e:
        return report(e, prog, debug=debug)


def _first_command(argv: list[str]) -> int:
    """Index of the first argument that is not a top-level option."""
    for i, arg in enumerate(argv):
        if not arg.startswith("-"):
            return i
    return len(argv)


if __name__ == "__main__":
    sys.exit(main())
