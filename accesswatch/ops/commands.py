"""CLI commands of the live pipeline, registered into ``accesswatch``.

Heavy imports (faust, aiokafka, kafka-python) happen inside each handler, so
``accesswatch backtest`` and friends start as fast as before.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from accesswatch.ops.tail import HELP as TAIL_HELP  # cheap: no Kafka, no core

Handler = Callable[[argparse.Namespace], int]


def add_commands(sub: Any) -> dict[str, Handler]:
    """Add the live subcommands to ``sub``; return their handlers by name."""
    w = sub.add_parser("worker", help="run a live worker: events in, alerts out")
    w.add_argument("--web-host", help="accepted, unused: Faust's web server is never started")
    w.add_argument("--web-port", type=int, help="accepted, unused (see --web-host)")
    w.add_argument("--metrics-host", help="host for /metrics and /healthz")
    w.add_argument("--metrics-port", type=int, help="port for /metrics and /healthz")
    w.add_argument("--batch-size", type=int)
    w.add_argument("--rules", type=Path, help="rule pack YAML, reloaded when it changes")
    w.add_argument("--model", type=Path, help="anomaly model file, reloaded when it changes")

    t = sub.add_parser("topics", help="create the pipeline's topics (idempotent)")
    t.add_argument("action", choices=["create", "check"])

    lr = sub.add_parser("load-ref", help="publish reference JSONL files to the ref.* topics")
    lr.add_argument("dir", type=Path)

    rp = sub.add_parser("replay", help="produce an events JSONL file to access.events")
    rp.add_argument("events", type=Path)
    rp.add_argument("--rate", type=float, default=200.0, help="events a second (0: flat out)")
    rp.add_argument("--limit", type=int, help="stop after this many events")
    rp.add_argument("--no-progress", action="store_true")

    a = sub.add_parser("alerts", help="watch the alert topic", description=TAIL_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("action", choices=["tail"])
    a.add_argument("--from-beginning", action="store_true")
    a.add_argument("--max", type=int, help="stop after this many alerts and updates")
    a.add_argument("--idle-exit", type=float, help="stop after this many idle seconds")
    a.add_argument("--json", action="store_true", help="print the alert JSON as it is")
    a.add_argument("--color", choices=["auto", "always", "never"], default="auto")

    c = sub.add_parser("config", help="print the effective live settings, secrets masked")
    c.add_argument("--json", action="store_true")

    # The web console lives in its own package and registers its own commands.
    from console.commands import add_console_commands

    return {"worker": _worker, "topics": _topics, "load-ref": _load_ref, "replay": _replay,
            "alerts": _alerts, "config": _config, **add_console_commands(sub)}


def _friendly(fn: Handler) -> Handler:
    """Settings errors, a missing broker and Ctrl-C end with one line, not a traceback."""

    @wraps(fn)
    def run(args: argparse.Namespace) -> int:
        from pydantic import ValidationError

        from streams.connect import BrokerUnavailable

        try:
            return fn(args)
        except ValidationError as e:
            for err in e.errors():
                where = ".".join(str(p) for p in err["loc"])
                what = f"ACCESSWATCH_{where.upper()}" if where else "settings"
                print(f"accesswatch: {what}: {err['msg']}", file=sys.stderr)
            return 2
        except BrokerUnavailable as e:
            print(f"accesswatch: {e}", file=sys.stderr)
            return 3
        except KeyboardInterrupt:
            print("\naccesswatch: interrupted", file=sys.stderr)
            return 130

    return run


def _settings(**overrides: Any) -> Any:
    from streams.settings import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _ready(s: Any) -> None:
    from streams.connect import quiet_kafka_logs, wait_for_broker

    quiet_kafka_logs()
    wait_for_broker(s, deadline=s.broker_wait or None,
                    say=lambda m: print(f"accesswatch: {m}", file=sys.stderr))


@_friendly
def _worker(args: argparse.Namespace) -> int:
    from streams.worker import run_worker

    s = _settings(web_host=args.web_host, web_port=args.web_port, metrics_host=args.metrics_host,
                  metrics_port=args.metrics_port, batch_size=args.batch_size,
                  rules_path=args.rules, model_path=args.model)
    return run_worker(s)


@_friendly
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
    return 1 if any(st.state == "mismatch" for st in statuses) else 0


@_friendly
def _load_ref(args: argparse.Namespace) -> int:
    from accesswatch.ops.produce import load_reference

    s = _settings()
    _ready(s)
    results = load_reference(s, args.dir)
    for kind, sent in results.items():
        print(f"{s.ref_topics[kind]:<16} {sent.records:>8,} records sent, {sent.refused:,} refused"
              + (f", {sent.failed:,} FAILED" if sent.failed else ""))
    return 1 if any(sent.failed for sent in results.values()) else 0


@_friendly
def _replay(args: argparse.Namespace) -> int:
    from accesswatch.ops.produce import replay

    s = _settings()
    _ready(s)
    sent = replay(s, args.events, args.rate, limit=args.limit, progress=not args.no_progress)
    rate = sent.records / sent.seconds if sent.seconds else 0.0
    print(f"{sent.records:,} events sent to {s.topic_events} in {sent.seconds:.1f} s "
          f"({rate:,.0f}/s); {sent.failed:,} failed", file=sys.stderr)
    return 1 if sent.failed else 0


@_friendly
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
        print(f"accesswatch: topic {s.topic_alerts} does not exist "
              "(run `accesswatch topics create`)", file=sys.stderr)
        return 2
    asyncio.run(tail(s, parts, from_beginning=args.from_beginning, max_alerts=args.max,
                     idle_exit=args.idle_exit, as_json=args.json,
                     colour=use_colour(args.color, sys.stdout)))
    return 0


@_friendly
def _config(args: argparse.Namespace) -> int:
    values = _settings().masked()
    if args.json:
        print(json.dumps(values, indent=2))
    else:
        for name, value in values.items():
            shown = "" if value is None else value
            print(f"ACCESSWATCH_{name.upper():<28} {shown}")
    return 0
