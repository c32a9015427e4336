"""``accesswatch console …``: serve, hash a password, export alerts as ECS."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[argparse.Namespace], int]


def add_console_commands(sub: Any) -> dict[str, Handler]:
    c = sub.add_parser("console", help="the security-operations console (web): live alerts, "
                                       "evidence, triage")
    c.add_argument("--host", help="address to serve on (default 127.0.0.1)")
    c.add_argument("--port", type=int, help="port to serve on (default 8080)")
    c.add_argument("--users", type=Path, help="users file (YAML with hashed passwords)")
    c.add_argument("--webhook-url", help="also POST each alert, as ECS JSON, to this URL")
    actions = c.add_subparsers(dest="console_action", metavar="ACTION")
    hp = actions.add_parser("hash-password", help="print a password hash for the users file")
    hp.add_argument("--stdin", action="store_true", help="read the password from standard input")
    ex = actions.add_parser("export-ecs", help="write every alert on the topic as ECS NDJSON")
    ex.add_argument("--out", type=Path, help="file to write (default: standard output)")
    return {"console": _console}


def _console(args: argparse.Namespace) -> int:
    if args.console_action == "hash-password":
        return _hash_password(args)
    from accesswatch.ops.commands import _friendly

    return _friendly(_export_ecs if args.console_action == "export-ecs" else _serve)(args)


def _settings(**overrides: Any) -> Any:
    from console.config import ConsoleSettings

    return ConsoleSettings(**{k: v for k, v in overrides.items() if v is not None})


def _say(message: str) -> None:
    print(f"accesswatch {message}", file=sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    from accesswatch.ops.commands import _ready
    from console.server import configure_logging, run_console

    s = _settings(console_host=args.host, console_port=args.port, console_users=args.users,
                  console_webhook_url=args.webhook_url)
    configure_logging(s.log_level)
    return run_console(s, _say, lambda: _ready(s))


def _export_ecs(args: argparse.Namespace) -> int:
    from accesswatch.ops.commands import _ready
    from console.siem import export_ecs

    s = _settings()
    _ready(s)
    if args.out is None:
        written = export_ecs(s, sys.stdout)
    else:
        with args.out.open("w", encoding="utf-8") as out:
            written = export_ecs(s, out)
    _say(f"console: {written:,} alerts written as ECS")
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
