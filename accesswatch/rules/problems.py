"""Every problem in a rule pack, gathered and raised at once (pySigma's ``collect_errors``)."""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from accesswatch.errors import RulesError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a pack: ``rules.yaml:41 rule AW-S07: window must be > 0``."""

    path: str
    line: int | None
    rule_id: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        who = f" rule {self.rule_id}" if self.rule_id else ""
        return f"{where}{who}: {self.message}"


class RulePackError(RulesError):
    """A pack with one or more problems; ``problems`` lists them in file order.

    ``str()`` is one line per problem, the first standing on its own::

        3 problems in rules.yaml: rules.yaml:12 rule AW-101: Object contains ...
          rules.yaml:20 rule AW-102: Invalid enum value 'huge' - at `$.severity` ...
          rules.yaml:31 rule AW-103: repeated key 'severity' (first at line 29)

    ``summary()`` is one line for a terse error path.  ``path``, ``line``,
    ``rule_id`` and ``message`` are the first problem's, as for a ``RulesError``.
    """

    def __init__(self, source: str, found: Sequence[Problem]) -> None:
        if not found:
            raise ValueError("a RulePackError needs at least one problem")
        ordered = sorted(found, key=lambda p: p.line or 0)  # stable: file-level ones first
        first = ordered[0]
        super().__init__(first.path, first.line, first.rule_id, first.message)
        self.source = source
        self.details: tuple[Problem, ...] = tuple(ordered)
        self.problems: list[str] = [str(p) for p in ordered]

    def __reduce__(self) -> tuple[type[RulePackError], tuple[str, tuple[Problem, ...]]]:
        return RulePackError, (self.source, self.details)  # crosses a process boundary whole

    def __str__(self) -> str:
        return "\n".join([self._first_line(), *(f"  {p}" for p in self.problems[1:])])

    def summary(self) -> str:
        """The first problem on one line, with how many more and how to list them."""
        more = len(self.problems) - 1
        if more == 0:
            return self.problems[0]
        if self.source.startswith("<"):  # parsed from a string: no file to name
            return f"{self._first_line()} (and {more} more)"
        listing = f"accesswatch rules {shlex.quote(self.source)}"
        return f"{self._first_line()} (and {more} more; run `{listing}` to list them)"

    def _first_line(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0]
        return f"{len(self.problems)} problems in {self.source}: {self.problems[0]}"


class Problems:
    """Collects a pack's problems as the loader finds them; ``raise_any()`` ends the load."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.found: list[Problem] = []

    def add(self, line: int | None, rule_id: str | None, message: str) -> None:
        self.found.append(Problem(self.source, line, rule_id, message))

    def fail(self, line: int | None, rule_id: str | None, message: str) -> NoReturn:
        """Add a problem that stops the load, and raise it with those found so far."""
        self.add(line, rule_id, message)
        raise RulePackError(self.source, self.found)

    def raise_any(self) -> None:
        if self.found:
            raise RulePackError(self.source, self.found)


def nearest(word: object, choices: Iterable[str]) -> str | None:
    """The choice ``word`` was most likely meant to be: ``nearest("sevrity", fields)``."""
    close = difflib.get_close_matches(str(word), sorted(choices), n=1)
    return close[0] if close else None
