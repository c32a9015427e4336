"""The project's errors: each message says what was wrong and where."""

from __future__ import annotations


class AccessWatchError(Exception):
    """Base of every error accesswatch raises on purpose."""


class InvalidRecord(AccessWatchError):
    """A wire record broke its contract.

    ``reason`` is for people (``ts: no time zone``); ``reason_class`` is a
    short fixed word for metrics and DLQ headers (``bad_timestamp``).  Neither
    ever carries free text from the record.
    """

    def __init__(self, reason: str, reason_class: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reason_class = reason_class


class RulesError(AccessWatchError):
    """A rules file failed validation: ``file:line rule ID: message``."""

    def __init__(self, path: str, line: int | None, rule_id: str | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        who = f" rule {rule_id}" if rule_id else ""
        super().__init__(f"{where}{who}: {message}")
        self.path = path
        self.line = line
        self.rule_id = rule_id
        self.message = message


class ReferenceDataError(AccessWatchError):
    """A reference-data file could not be read."""


class UsageError(AccessWatchError):
    """The command line or a setting asks for something that cannot be: the CLI exits 2."""
