"""Signed-out sessions, kept in SQLite until they expire, so a restart keeps them out.

The console's data dir holds ``revocations.sqlite3``: the ids of signed-out
sessions with their expiry (pruned once past it) and the failed sign-ins that
lock an account or an address (``console.lockout``).  A cookie carries its
session id; the server keeps no session table, only this list of ended ones.

>>> revoked = Revocations(None, clock=lambda: 1000.0)   # None: in memory
>>> revoked.revoke("sid-1", expires=1600.0)
>>> "sid-1" in revoked, "sid-2" in revoked
(True, False)
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

FILE = "revocations.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS revoked (sid TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS failures (id INTEGER PRIMARY KEY, account TEXT NOT NULL,
                                     address TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS failures_account ON failures (account, at);
CREATE INDEX IF NOT EXISTS failures_address ON failures (address, at);
"""


def open_db(path: Path | None) -> sqlite3.Connection:
    """The file (made with its directory when missing), or a private in-memory one."""
    if path is None:
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Used only from the event loop's thread, but opened where the app is built.
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                             timeout=5)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    return db


class Revocations:
    """Session ids signed out before they expired; ``path`` None keeps them in memory."""

    def __init__(self, path: Path | None, clock: Callable[[], float] = time.time) -> None:
        self.db, self._clock = open_db(path), clock

    def revoke(self, sid: str, expires: float) -> None:
        now = self._clock()
        self.db.execute("DELETE FROM revoked WHERE expires <= ?", (now,))
        if expires > now:
            self.db.execute("INSERT OR REPLACE INTO revoked VALUES (?, ?)", (sid, expires))

    def __contains__(self, sid: object) -> bool:
        return self.db.execute("SELECT 1 FROM revoked WHERE sid = ?", (sid,)).fetchone() \
            is not None

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM revoked").fetchone()[0])

    def close(self) -> None:
        self.db.close()
