"""One error path for the CLI: whatever went wrong becomes one line on stderr and an exit code.

    accesswatch evaluate: --labels alerts.jsonl: not a labels file: it needs an
    "incidents" list (give the labels.json `accesswatch generate` wrote)

Exit 2: the command line or a setting asks for something that cannot be; 1: the
command failed while running (a file's content, the broker, a closed pipe).
``accesswatch --debug …`` or ``ACCESSWATCH_DEBUG=1`` print the traceback too.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from typing import Any

from accesswatch.errors import AccessWatchError, UsageError

USAGE, FAILED, INTERRUPTED = 2, 1, 130
PREFIX = "ACCESSWATCH_"
DEBUG_VARIABLE = "ACCESSWATCH_DEBUG"


def debug_from_environment() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def report(error: BaseException, prog: str, *, debug: bool) -> int:
    """Say what went wrong in one line (after the traceback, with ``debug``); the exit code."""
    if isinstance(error, BrokenPipeError):
        silence_stdout()  # the reader left (`| head`): nothing to say, and nowhere to say it
        return FAILED
    if debug:
        traceback.print_exception(error)
    if isinstance(error, KeyboardInterrupt):
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    line, code = explain(error)
    print(f"{prog}: {line}", file=sys.stderr)
    return code


def explain(error: BaseException) -> tuple[str, int]:
    """(the line, the exit code) for ``error``."""
    if isinstance(error, UsageError):
        return str(error), USAGE
    if isinstance(error, AccessWatchError):
        summary = getattr(error, "summary", None)  # a rule pack's many problems: the first
        return (summary() if callable(summary) else str(error)), FAILED
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(error, pydantic.ValidationError):
        return settings_problem(error), USAGE
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error} (check the path)", FAILED
    kafka_errors = sys.modules.get("kafka.errors")
    if kafka_errors is not None and isinstance(error, kafka_errors.KafkaError):
        return (f"Kafka: {type(error).__name__}: {error} "
                "(check ACCESSWATCH_BOOTSTRAP_SERVERS and the broker)"), FAILED
    return (f"unexpected {type(error).__name__}: {error} "
            "(`accesswatch --debug COMMAND …` shows where; please report it)"), FAILED


def settings_problem(error: Any) -> str:
    """A pydantic ``ValidationError`` of the settings as one line naming each variable,
    its value, where it was set (environment or .env) and what is wrong."""
    from accesswatch.ops.environment import setting_source

    parts = []
    for err in error.errors():
        msg = str(err["msg"]).removeprefix("Value error, ")
        loc = [str(p) for p in err["loc"]]
        if not loc:  # a check across settings: say which of those it names came from .env
            named = sorted(set(re.findall(r"ACCESSWATCH_[A-Z_]+[A-Z]", msg)))
            in_file = [n for n in named if setting_source(n[len(PREFIX):].lower()) == ".env"]
            parts.append(msg + (f" ({', '.join(in_file)} set in .env)" if in_file else ""))
            continue
        name = f"{PREFIX}{loc[0].upper()}"
        secret = any(word in name for word in ("PASSWORD", "SECRET"))
        value = "" if secret else f"={err.get('input')}"
        where = {"environment": "the environment", "default": "the command line"}.get(
            setting_source(loc[0]), ".env")
        parts.append(f"{name}{value} (set in {where}): {msg}; fix or unset it")
    return "; ".join(parts)


def silence_stdout() -> None:
    """Point stdout at /dev/null, so the flush at exit cannot fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
