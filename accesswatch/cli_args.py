"""The CLI's parser: usage errors in one line, defaults in the help, arguments checked.

A value the command cannot use is refused while the command line is read, so
the user hears about ``--staff 10`` or a ``--labels`` that is a directory in
one line (exit 2) before anything runs:

    accesswatch generate: argument --staff: 10 is too few: at least 40 are needed to
    place every scenario (see `accesswatch generate --help`)
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions and epilogs (the examples) as written; shows each option's default.

    An option without a default (None) or a flag says in its help what happens
    when it is not given, so only real values are appended.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        # A paragraph of prose with a line too long is wrapped afresh; examples
        # (indented lines) and short lines stay as written.
        out = []
        for para in text.split("\n\n"):
            lines = para.splitlines()
            if all(len(indent + ln) <= width or ln.startswith(" ") for ln in lines):
                out.append("\n".join(indent + ln for ln in lines))
            else:
                out.append(textwrap.fill(" ".join(lines), width, initial_indent=indent,
                                         subsequent_indent=indent))
        return "\n\n".join(out)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or "default:" in text or default is None
                or default is False or default is argparse.SUPPRESS or action.required):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line naming the command at fault.

    Subcommands get this class too (argparse makes them with the parent's), so
    ``accesswatch worker --bogus`` is refused by the worker's parser, not the top one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        # The parsers that read this command line, outermost first, for check_paths.
        setattr(parsed, PARSERS, [self, *getattr(parsed, PARSERS, [])])
        return parsed, extras


PARSERS = "_parsers"


class PathArg:
    """A path argument: parsing only makes the ``Path``; ``check_paths`` looks at the disk.

    So a command line can be parsed where its files are not (a Compose file's,
    in a test), and the files are checked in the order the options are declared.
    """

    def __init__(self, check: Callable[[str], Path]) -> None:
        self.check = check
        self.__name__ = check.__name__  # argparse names the type in some messages

    def __call__(self, text: str) -> Path:
        return Path(text)


def check_paths(args: argparse.Namespace) -> None:
    """Check each path argument of the parsed command; a bad one is a usage error."""
    for parser in getattr(args, PARSERS, []):
        for action in parser._actions:
            value = getattr(args, action.dest, None)
            if isinstance(action.type, PathArg) and value is not None:
                try:
                    action.type.check(str(value))
                except argparse.ArgumentTypeError as e:
                    name = "/".join(action.option_strings) or action.metavar or action.dest
                    parser.error(f"argument {name}: {e}")


# ---- argument types: each raises ArgumentTypeError with the reason -----------------


def _existing_file(text: str) -> Path:
    """A file to read; a named pipe will do (``<(zcat events.jsonl.gz)``)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; give a file")
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path


def _existing_dir(text: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a directory")
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such directory")
    return path


def _output_file(text: str) -> Path:
    """A file to write (replaced if it exists), in a directory that exists."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; give a file name")
    parent = path.parent
    if not parent.is_dir():
        what = "is a file" if parent.exists() else "does not exist"
        raise argparse.ArgumentTypeError(f"{text}: directory {parent} {what}")
    return path


def _output_dir(text: str) -> Path:
    """A directory to write into, made if missing; never a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text} is a file; give a directory (several files are written into it)"
        )
    return path


existing_file = PathArg(_existing_file)
existing_dir = PathArg(_existing_dir)
output_file = PathArg(_output_file)
output_dir = PathArg(_output_dir)


def whole(minimum: int, why: str = "") -> Callable[[str], int]:
    """A whole number of at least ``minimum``; ``why`` explains the floor."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(why.format(value=value) if why else
                                             f"{value} is too small: at least {minimum}")
        return value

    return parse


def number(minimum: float = 0.0, *, above: bool = False,
           maximum: float | None = None) -> Callable[[str], float]:
    """A number not below ``minimum`` (above it, with ``above``), at most ``maximum``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if value < minimum or (above and value == minimum):
            floor = f"above {minimum:g}" if above else f"at least {minimum:g}"
            raise argparse.ArgumentTypeError(f"{text} is too small: it must be {floor}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{text} is too large: at most {maximum:g}")
        return value

    return parse


def port(text: str) -> int:
    value = whole(0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0-65535)")
    return value


def timestamp(text: str) -> float:
    """An RFC 3339 time with its zone, as POSIX seconds."""
    from accesswatch.contract.timestamps import parse_ts
    from accesswatch.errors import InvalidRecord

    try:
        return parse_ts(text, "time")
    except InvalidRecord as e:
        raise argparse.ArgumentTypeError(f"{e.reason} (e.g. 2026-03-02T08:00:00Z)") from None
