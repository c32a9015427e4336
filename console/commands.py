"""``accesswatch console …``: serve, hash a password, export alerts as ECS."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import Any

from accesswatch.cli_args import existing_file, output_file, port

Handler = Callable[[argparse.Namespace], int]


def add_console_commands(sub: Any) -> dict[str, Handler]:
    c = sub.add_parser(
        "console", help="the security-operations console (web): live alerts, evidence, triage",
        description="Serve the console (no ACTION), or run one of its actions. Serving waits "
        "for ever for an unreachable broker unless ACCESSWATCH_BROKER_WAIT is set; "
        "export-ecs gives up after ACCESSWATCH_BROKER_WAIT seconds (default 30).",
        epilog="examples:\n"
        "  accesswatch console hash-password        # for the users file\n"
        "  accesswatch console --users users.yaml --port 8080\n"
        "  accesswatch console export-ecs --out alerts.ecs.ndjson")
    c.add_argument("--host", metavar="HOST",
                   help="address to serve on (default: ACCESSWATCH_CONSOLE_HOST, 127.0.0.1)")
    c.add_argument("--port", type=port, metavar="PORT",
                   help="port to serve on (default: ACCESSWATCH_CONSOLE_PORT, 8080)")
    c.add_argument("--users", type=existing_file, metavar="FILE",
                   help="users file, YAML with hashed passwords "
                   "(default: ACCESSWATCH_CONSOLE_USERS; required to serve)")
    c.add_argument("--webhook-url", metavar="URL",
                   help="also POST each alert, as ECS JSON, to this URL "
                   "(default: ACCESSWATCH_CONSOLE_WEBHOOK_URL, else none)")
    actions = c.add_subparsers(dest="console_action", metavar="ACTION")
    hp = actions.add_parser("hash-password", help="print a password hash for the users file",
                            epilog="example:\n  accesswatch console hash-password --stdin "
                            "< password.txt")
    hp.add_argument("--stdin", action="store_true",
                    help="read the password from standard input (default: ask twice)")
    ex = actions.add_parser("export-ecs", help="write every alert on the topic as ECS NDJSON",
                            epilog="example:\n  accesswatch console export-ecs --out "
                            "alerts.ecs.ndjson")
    ex.add_argument("--out", type=output_file, metavar="FILE",
                    help="file to write (default: standard output)")
    co = actions.add_parser(
        "consultations", help="export the consultation log: who read what, when, from "
        "where and why",
        description="Write the consultations (every read of personal data through the "
        "console) recorded from --from up to --to, read from the start of the topic "
        "ACCESSWATCH_TOPIC_CONSULTATIONS (default console.consultations). Gives up after "
        "ACCESSWATCH_BROKER_WAIT seconds (default 30) for an unreachable broker.",
        epilog="examples:\n"
        "  accesswatch console consultations --from 2026-03-01T00:00:00Z "
        "--to 2026-04-01T00:00:00Z --out march.csv\n"
        "  accesswatch console consultations --from 2026-03-01 --to 2026-03-02 "
        "--subject P-204 --format json")
    co.add_argument("--from", dest="start", required=True, type=_iso, metavar="ISO",
                    help="first time included (ISO 8601; no zone: UTC)")
    co.add_argument("--to", dest="end", required=True, type=_iso, metavar="ISO",
                    help="first time left out (ISO 8601; no zone: UTC)")
    co.add_argument("--user", metavar="U", help="only this console user (or staff id) "
                    "(default: every user)")
    co.add_argument("--subject", metavar="S",
                    help="only reads that showed this subject or member id "
                    "(default: every read)")
    co.add_argument("--format", choices=("csv", "json"), default="csv",
                    help="CSV (a header, CRLF, formula-safe cells) or JSON lines "
                    "(default: csv)")
    co.add_argument("--out", type=output_file, metavar="FILE",
                    help="file to write (default: standard output)")
    return {"console": _console}


def _iso(text: str) -> str:
    from console.consultations import parse_time

    try:
        return parse_time(text, "it")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date and time; give one such "
                                         "as 2026-03-02T09:00:00Z") from None


def _console(args: argparse.Namespace) -> int:
    if args.console_action == "hash-password":
        return _hash_password(args)
    if args.console_action == "consultations":
        return _consultations(args)
    return _export_ecs(args) if args.console_action == "export-ecs" else _serve(args)


def console_settings(**overrides: Any) -> Any:
    from accesswatch.ops.environment import warn_unknown_variables
    from console.config import ConsoleSettings

    warn_unknown_variables()
    return ConsoleSettings(**{k: v for k, v in overrides.items() if v is not None})


def _say(message: str) -> None:
    print(f"accesswatch {message}", file=sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    from accesswatch.ops.commands import _ready
    from console.server import configure_logging, run_console

    s = console_settings(console_host=args.host, console_port=args.port, console_users=args.users,
                          console_webhook_url=args.webhook_url)
    configure_logging(s.log_level)
    return run_console(s, _say, lambda: _ready(s, one_shot=False))


def _export_ecs(args: argparse.Namespace) -> int:
    from accesswatch.ops.commands import _ready
    from console.siem import export_ecs

    s = console_settings()
    _ready(s)
    if args.out is None:
        written = export_ecs(s, sys.stdout)
    else:
        with args.out.open("w", encoding="utf-8") as out:
            written = export_ecs(s, out)
    _say(f"console: {written:,} alerts written as ECS")
    return 0


def _consultations(args: argparse.Namespace) -> int:
    from accesswatch.ops.commands import _ready
    from console import siem
    from console.consultations import _ms, export_lines, read_consultations

    if _ms(args.start) >= _ms(args.end):
        _say("console consultations: --from is after --to (or the same time)")
        return 2
    s = console_settings()
    _ready(s)
    found, bad = read_consultations(
        (value for _, value in siem.read_to_end(s, s.consultations_topic)),
        start=args.start, end=args.end, user=args.user, subject=args.subject)
    if args.out is None:
        sys.stdout.writelines(export_lines(found, args.format))
    else:
        with args.out.open("w", encoding="utf-8", newline="") as out:
            out.writelines(export_lines(found, args.format))
    _say(f"console: {len(found):,} consultations written"
         + (f"; {bad:,} unreadable records skipped" if bad else ""))
    return 0


def _hash_password(args: argparse.Namespace) -> int:
    from console.auth import hash_password

    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            _say("console: the passwords differ")
            return 1
    if len(password) < 12:
        _say("console: use at least 12 characters")
        return 1
    print(hash_password(password))
    return 0
