"""CLI commands of the live pipeline, registered into ``accesswatch``.

Heavy imports (faust, aiokafka, kafka-python) happen inside each handler, so
``accesswatch backtest`` and friends start as fast as before.  Errors are not
caught here: ``accesswatch.cli.main`` turns each into one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from accesswatch.cli_args import existing_dir, existing_file, number, port, whole
from accesswatch.ops.tail import HELP as TAIL_HELP  # cheap: no Kafka, no core

Handler = Callable[[argparse.Namespace], int]
BROKER_WAIT = ("A broker that cannot be reached is retried for ACCESSWATCH_BROKER_WAIT seconds "
               "(default 30), then the command gives up saying so.")


def add_commands(sub: Any) -> dict[str, Handler]:
    """Add the live subcommands to ``sub``; return their handlers by name."""
    w = sub.add_parser(
        "worker", help="run a live worker: events in, alerts out (runs until stopped)",
        description="Run one live worker in the foreground until Ctrl-C or SIGTERM: it reads "
        "access.events, keeps reference data from the ref.* topics and publishes alerts. "
        "Start it in a terminal of its own (or with &). Waits for ever for an unreachable "
        "broker unless ACCESSWATCH_BROKER_WAIT is set.",
        epilog="examples:\n"
        "  accesswatch topics create && accesswatch worker\n"
        "  accesswatch worker --metrics-port 9465 --rules my-rules.yaml &")
    w.add_argument("--web-host", metavar="HOST",
                   help="accepted and ignored: no Faust web server is started "
                   "(kept for old scripts; default: ignored)")
    w.add_argument("--web-port", type=port, metavar="PORT",
                   help="accepted and ignored, as --web-host (default: ignored)")
    w.add_argument("--metrics-host", metavar="HOST",
                   help="address for /metrics and /healthz "
                   "(default: ACCESSWATCH_METRICS_HOST, 127.0.0.1)")
    w.add_argument("--metrics-port", type=port, metavar="PORT",
                   help="port for /metrics and /healthz; 0 picks a free one "
                   "(default: ACCESSWATCH_METRICS_PORT, 9464)")
    w.add_argument("--batch-size", type=whole(1), metavar="N",
                   help="most events judged at a time (default: ACCESSWATCH_BATCH_SIZE, 1000)")
    w.add_argument("--rules", type=existing_file, metavar="FILE",
                   help="rule pack YAML, reloaded when it changes "
                   "(default: ACCESSWATCH_RULES_PATH, else the shipped pack)")
    w.add_argument("--model", type=existing_file, metavar="FILE",
                   help="anomaly model file from `accesswatch train`, reloaded when it changes "
                   "(default: ACCESSWATCH_MODEL_PATH, else no model)")

    t = sub.add_parser(
        "topics", help="create or check the pipeline's topics",
        description="create: make every topic the pipeline uses that is missing, with the "
        "partition counts the settings give, and list each (safe to run again; an existing "
        "topic is never changed). check: only list what is missing or has another partition "
        "count, exiting 1 if anything is. " + BROKER_WAIT,
        epilog="examples:\n  accesswatch topics create\n"
        "  ACCESSWATCH_PARTITIONS=8 accesswatch topics check")
    t.add_argument("action", choices=["create", "check"],
                   help="create: make missing topics; check: report, change nothing")

    lr = sub.add_parser(
        "load-ref", help="publish reference JSONL files to the ref.* topics",
        description="Publish staff.jsonl, subjects.jsonl, cases.jsonl and duties.jsonl from "
        "DIR to the compacted ref.* topics, each record keyed by its id; a line that breaks "
        "its schema is reported and not sent. A file that is absent is skipped (say, to "
        "publish only staff changes), but a DIR with none of them, or no records, is "
        "refused. " + BROKER_WAIT,
        epilog="examples:\n  accesswatch load-ref force/\n"
        "  accesswatch load-ref hr-changes/   # only staff.jsonl in it")
    lr.add_argument("dir", type=existing_dir, metavar="DIR",
                    help="directory holding the reference JSONL files "
                    "(as `accesswatch generate` writes them)")
    lr.add_argument("--allow-empty", action="store_true",
                    help="send whatever DIR holds, even nothing (default: refuse a DIR "
                    "without reference files or records)")

    rp = sub.add_parser(
        "replay", help="produce an events JSONL file to access.events",
        description="Send each line of EVENTS to the events topic, keyed by its user_id, at "
        "--rate a second; invalid lines are sent as they are, so the worker's dead-letter "
        "path sees them too. " + BROKER_WAIT,
        epilog="examples:\n  accesswatch replay force/events.jsonl\n"
        "  accesswatch replay force/events.jsonl --rate 0 --limit 10000   # flat out")
    rp.add_argument("events", type=existing_file, metavar="EVENTS",
                    help="events JSONL file (one event a line)")
    rp.add_argument("--rate", type=number(0), default=200.0, metavar="N",
                    help="events a second; 0 sends as fast as the broker takes them")
    rp.add_argument("--limit", type=whole(1), metavar="N",
                    help="stop after this many events (default: the whole file)")
    rp.add_argument("--no-progress", action="store_true",
                    help="draw no progress bar (default: drawn on stderr)")

    a = sub.add_parser(
        "alerts", help="watch the alert topic",
        description=TAIL_HELP + "\nWithout --from-beginning only alerts published from now on "
        "are shown. " + BROKER_WAIT,
        epilog="examples:\n  accesswatch alerts tail --from-beginning --max 5\n"
        "  accesswatch alerts tail --json | jq .rule_id")
    a.add_argument("action", choices=["tail"], help="tail: print alerts as they are published")
    a.add_argument("--from-beginning", action="store_true",
                   help="show the alerts already on the topic first (default: only new ones)")
    a.add_argument("--max", type=whole(1), metavar="N",
                   help="stop after printing this many alerts and updates (default: no limit)")
    a.add_argument("--idle-exit", type=number(0, above=True), metavar="SECONDS",
                   help="stop after this many seconds with no alert (default: never)")
    a.add_argument("--json", action="store_true",
                   help="print each alert's JSON as published (default: two readable lines)")
    a.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="colour severities; auto: only on a terminal, and not with NO_COLOR")

    c = sub.add_parser(
        "config", help="print every live setting in force, where it came from, secrets masked",
        description="Print each ACCESSWATCH_* setting, its value in force and where it came "
        "from (default, environment or .env in this directory); secrets are masked. "
        "Warns about ACCESSWATCH_* variables that set nothing.",
        epilog="examples:\n  accesswatch config\n"
        "  accesswatch config --json | jq .bootstrap_servers")
    c.add_argument("--json", action="store_true",
                   help="print the values as one JSON object, unset ones as null "
                   "(default: a table with sources)")

    # The web console lives in its own package and registers its own commands.
    from console.commands import add_console_commands

    return {"worker": _worker, "topics": _topics, "load-ref": _load_ref, "replay": _replay,
            "alerts": _alerts, "config": _config, **add_console_commands(sub)}


def _settings(**overrides: Any) -> Any:
    from accesswatch.ops.environment import warn_unknown_variables
    from streams.settings import Settings

    warn_unknown_variables()
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _ready(s: Any, *, one_shot: bool = True) -> None:
    """Wait for the broker: one-shot commands give up after ``broker_wait`` (30 s unset)."""
    from streams.connect import quiet_kafka_logs, wait_for_broker

    quiet_kafka_logs()
    wait_for_broker(s, deadline=s.broker_wait_for(one_shot),
                    say=lambda m: print(f"accesswatch: {m}", file=sys.stderr))


def _worker(args: argparse.Namespace) -> int:
    from streams.worker import run_worker

    s = _settings(web_host=args.web_host, web_port=args.web_port, metrics_host=args.metrics_host,
                  metrics_port=args.metrics_port, batch_size=args.batch_size,
                  rules_path=args.rules, model_path=args.model)
    return run_worker(s)


def _topics(args: argparse.Namespace) -> int:
    from streams.topics import check_topics, create_topics

    s = _settings()
    _ready(s)
    if args.action == "check":
        problems, _ = check_topics(s)
        for p in problems:
            print(p)
        return 1 if problems else 0
    statuses = create_topics(s)
    for st in statuses:
        print(st.line())
    remedy = mismatch_remedy(statuses)
    if remedy is not None:
        print(f"accesswatch topics: {remedy}", file=sys.stderr)
        return 1
    return 0


def mismatch_remedy(statuses: list[Any]) -> str | None:
    """What to do about topics whose partition count differs from the settings, or None.

    Kafka never lowers a topic's partition count and raising it moves keys
    between partitions, so ``topics create`` leaves existing topics as they are.
    """
    wrong = [st for st in statuses if st.state == "mismatch"]
    if not wrong:
        return None
    fixes = sorted({f"{st.spec.setting}={st.actual_partitions}" for st in wrong
                    if st.spec.setting})
    match = f"set {' and '.join(fixes)} to match them, or " if fixes else ""
    n = len(wrong)
    return (f"{n} existing topic{'s have' if n > 1 else ' has'} another partition count "
            f"and keep{'' if n > 1 else 's'} it: {match}use new topic names "
            "(ACCESSWATCH_TOPIC_*, ACCESSWATCH_APP_ID), or delete the topics and run "
            "`accesswatch topics create` again")


def _load_ref(args: argparse.Namespace) -> int:
    from accesswatch.ops.produce import load_reference
    from accesswatch.reference import require_reference

    require_reference(args.dir, "DIR", every_file=False, allow_empty=args.allow_empty)
    s = _settings()
    _ready(s)
    results = load_reference(s, args.dir)
    for kind, sent in results.items():
        print(f"{s.ref_topics[kind]:<16} {sent.records:>8,} records sent, {sent.refused:,} refused"
              + (f", {sent.failed:,} FAILED" if sent.failed else ""))
    return 1 if any(sent.failed for sent in results.values()) else 0


def _replay(args: argparse.Namespace) -> int:
    from accesswatch.ops.produce import replay

    s = _settings()
    _ready(s)
    sent = replay(s, args.events, args.rate, limit=args.limit, progress=not args.no_progress)
    rate = sent.records / sent.seconds if sent.seconds else 0.0
    print(f"{sent.records:,} events sent to {s.topic_events} in {sent.seconds:.1f} s "
          f"({rate:,.0f}/s); {sent.failed:,} failed", file=sys.stderr)
    return 1 if sent.failed else 0


def _alerts(args: argparse.Namespace) -> int:
    import asyncio

    from accesswatch.ops.tail import tail, use_colour
    from streams.topics import admin, partition_counts

    s = _settings()
    _ready(s)
    client = admin(s)
    try:
        parts = partition_counts(client, [s.topic_alerts]).get(s.topic_alerts, 0)
    finally:
        client.close()
    if not parts:
        print(f"accesswatch alerts: topic {s.topic_alerts} does not exist "
              "(run `accesswatch topics create`)", file=sys.stderr)
        return 1
    if not args.from_beginning:
        print(f"accesswatch alerts: waiting for new alerts on {s.topic_alerts} (Ctrl-C stops); "
              "--from-beginning shows the ones already there", file=sys.stderr)
    asyncio.run(tail(s, parts, from_beginning=args.from_beginning, max_alerts=args.max,
                     idle_exit=args.idle_exit, as_json=args.json,
                     colour=use_colour(args.color, sys.stdout)))
    return 0


def _config(args: argparse.Namespace) -> int:
    from accesswatch.ops.environment import setting_source, shown_value
    from console.commands import console_settings

    s = console_settings()  # the pipeline's settings and the console's own
    values = s.masked()
    if args.json:
        print(json.dumps(values, indent=2))
        return 0
    for name, value in values.items():
        shown = shown_value(s, name, value)
        print(f"ACCESSWATCH_{name.upper():<30} {setting_source(name):<11}  {shown}")
    return 0
