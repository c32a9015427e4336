"""Allow-list entries that say why, and until when: for ``lists:`` and ``exempt:``.

An entry is a plain string, which applies until someone removes it, or a
mapping that keeps the decision on record::

    audit_accounts:
      - psd-audit-1
      - {value: u1234, reason: "PSD review of Op HALO, ref PSD-2026-031", expires: 2026-06-30}

``value`` and ``reason`` are required; ``expires`` (YYYY-MM-DD) is optional.
An entry applies up to and including its ``expires`` day, in the pack's time
zone; from the next day it is left out, and the loader warns, once per entry,
naming the file, the line, where it is and the entry's value and reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from accesswatch.rules.problems import Problem, Problems, nearest
from accesswatch.rules.schema import line_of

ENTRY_KEYS = ("value", "reason", "expires")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
SHAPE = "a string, or a mapping with `value`, `reason` and optionally `expires`"


def today_in(zone: str) -> date:
    """Today's date in ``zone``: the day an allow-list entry's expiry is judged by."""
    return datetime.now(ZoneInfo(zone)).date()


@dataclass(frozen=True)
class Entry:
    value: str
    reason: str | None = None
    expires: date | None = None


@dataclass
class Allowances:
    """Reads the allow-list entries of one pack against one day.

    ``warnings`` says which entries lapsed (one line each); ``next_expiry`` is
    the soonest expiry among the entries that still apply, the day after which
    the pack must be read again.
    """

    problems: Problems
    today: date
    warnings: list[str] = field(default_factory=list)
    next_expiry: date | None = None

    def values(
        self, items: list[Any], node: yaml.Node | None, where: str, rule_id: str | None
    ) -> list[str] | None:
        """The values of the entries that apply today; None when one is malformed.

        ``where`` names the list in messages (``list 'audit_accounts'``,
        ``exempt.users``); its problems and warnings are added here.
        """
        nodes = node.value if isinstance(node, yaml.SequenceNode) else []
        applied: list[str] = []
        good = True
        for n, item in enumerate(items):
            ok, value = self.read(item, nodes[n] if n < len(nodes) else node, where, n, rule_id)
            good = good and ok
            if value is not None:
                applied.append(value)
        return applied if good else None

    def read(
        self, item: Any, node: yaml.Node | None, where: str, n: int, rule_id: str | None
    ) -> tuple[bool, str | None]:
        """(whether item ``n`` is well formed, its value if it applies today)."""
        at = line_of(node)
        entry = read_entry(item)
        if isinstance(entry, str):
            self.problems.add(at, rule_id, f"{where} entry {n + 1}: {entry}")
            return False, None
        if entry.expires is not None and entry.expires < self.today:
            why = " ".join((entry.reason or "").split())  # one line, whatever the YAML held
            message = (
                f"{where} entry {entry.value!r} expired on {entry.expires} and is "
                f"not applied (reason: {why})"
            )
            self.warnings.append(str(Problem(self.problems.source, at, rule_id, message)))
            return True, None
        if entry.expires is not None and (
            self.next_expiry is None or entry.expires < self.next_expiry
        ):
            self.next_expiry = entry.expires
        return True, entry.value


def read_entry(item: Any) -> Entry | str:
    """An allow-list entry, or what is wrong with it."""
    if isinstance(item, str):
        return Entry(item)
    if not isinstance(item, dict):
        return f"must be {SHAPE}, not {item!r}"
    for key in item:
        if key not in ENTRY_KEYS:
            guess = nearest(key, ENTRY_KEYS)
            hint = f"; did you mean `{guess}`?" if guess else ""
            return f"unknown key {key!r} (allowed: {', '.join(ENTRY_KEYS)}{hint})"
    value, reason = item.get("value"), item.get("reason")
    if not isinstance(value, str) or not value.strip():
        return "`value` must be the user, role or unit, a non-empty string"
    if not isinstance(reason, str) or not reason.strip():
        return (
            f"{value!r} needs a `reason`: why it is allowed, and on whose authority "
            "(only a plain string entry goes without)"
        )
    if "expires" not in item:
        return Entry(value, reason)
    expires = _date(item["expires"])
    if expires is None:
        return f"{value!r} expires {item['expires']!r}: not a date like 2027-03-31"
    return Entry(value, reason, expires)


def _date(value: Any) -> date | None:
    """A YYYY-MM-DD date (the loader keeps YAML dates as text), or None."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:  # 2027-02-30
        return None
