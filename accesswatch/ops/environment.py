"""Where each ``ACCESSWATCH_*`` setting came from, and variables that set nothing.

    accesswatch: warning: ACCESSWATCH_PARTITONS (set in the environment) is not a
    setting and is ignored; did you mean ACCESSWATCH_PARTITIONS?

Settings come, strongest first, from the command line, the environment, a
``.env`` file in the working directory, and the defaults (pydantic-settings
matches names without regard to case).
"""

from __future__ import annotations

import difflib
import functools
import os
import sys
from pathlib import Path
from typing import Any, TextIO

PREFIX = "ACCESSWATCH_"
DOTENV = ".env"
# Read by something other than the settings classes: the CLI, the worker's own
# restart count, and the tests' broker.
NOT_SETTINGS = frozenset({"ACCESSWATCH_DEBUG", "ACCESSWATCH_WORKER_RESTARTS",
                          "ACCESSWATCH_TEST_BROKER"})
_warned = False


def from_environment() -> dict[str, str]:
    """``ACCESSWATCH_*`` variables of the environment, names upper-cased."""
    return {k.upper(): v for k, v in os.environ.items() if k.upper().startswith(PREFIX)}


def from_dotenv() -> dict[str, str]:
    """``ACCESSWATCH_*`` entries of ``./.env`` (where the settings read it), names upper-cased."""
    path = Path(DOTENV)
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    try:
        values = dotenv_values(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    return {k.upper(): v or "" for k, v in values.items() if k.upper().startswith(PREFIX)}


def setting_source(field: str) -> str:
    """Where setting ``field`` (``partitions``) took its value: environment, .env or default."""
    name = f"{PREFIX}{field.upper()}"
    if name in from_environment():
        return "environment"
    if name in from_dotenv():
        return DOTENV
    return "default"


@functools.cache
def known_names() -> frozenset[str]:
    """Every ``ACCESSWATCH_*`` variable something reads: the pipeline's and console's settings."""
    from console.config import ConsoleSettings

    return frozenset({f"{PREFIX}{name.upper()}" for name in ConsoleSettings.model_fields}
                     | NOT_SETTINGS)


def unknown_variables() -> list[str]:
    """One line for each ``ACCESSWATCH_*`` variable that sets nothing, with a likely name."""
    lines = []
    seen = {**{k: DOTENV for k in from_dotenv()},
            **{k: "the environment" for k in from_environment()}}
    for name, where in sorted(seen.items()):
        if name in known_names():
            continue
        close = difflib.get_close_matches(name, sorted(known_names()), n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]}?" if close else "; `accesswatch config` lists them"
        lines.append(f"{name} (set in {where}) is not a setting and is ignored{hint}")
    return lines


def warn_unknown_variables(out: TextIO | None = None) -> None:
    """Warn, once a process, about ``ACCESSWATCH_*`` variables that set nothing."""
    global _warned
    if _warned:
        return
    _warned = True
    for line in unknown_variables():
        print(f"accesswatch: warning: {line}", file=out or sys.stderr)


# What a setting left unset means, for `accesswatch config`.
UNSET_MEANS = {
    "broker_wait": "worker and console wait for ever; one-shot commands give up after 30 s",
    "rules_path": "the shipped rule pack",
    "model_path": "no anomaly model",
    "data_dir": "a temporary directory",
    "instance_id": "dynamic group membership",
    "console_users": "the console refuses to serve without one",
    "console_secret": "a random one: sessions end when the console stops",
}


def shown_value(s: Any, name: str, value: Any) -> str:
    """``value`` of setting ``name`` as `accesswatch config` prints it: never a blank."""
    if name == "dlq_partitions" and value is None:
        return f"{s.dlq_partition_count} (as ACCESSWATCH_PARTITIONS)"
    if name == "topic_triage" and value is None:
        return f"{s.triage_topic} (the alert topic + .triage)"
    if name == "topic_triage_audit" and value is None:
        return f"{s.triage_audit_topic} (the triage topic + .audit)"
    if value is None or value == "":
        means = UNSET_MEANS.get(name)
        return f"(none: {means})" if means else "(none)"
    return str(value)
