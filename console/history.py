"""Every access the console has read, kept for weeks on disk: a member's timeline
and a subject's accounting of disclosures.

One SQLite file in WAL mode, fed from ``access.events``.  An event that comes
again (same id, same time: a redelivery) changes nothing, and the next offset of
each partition is stored in the same transaction as the rows, so a restart
resumes exactly where the last stored batch ended.  One thread writes; reads
have their own connection, so a long write (a batch, a prune) never holds up a
read.  Query text is never stored.

>>> import tempfile
>>> h = History(Path(tempfile.mkdtemp()) / "history.sqlite3", retention_days=35)
>>> e = HistoryEvent("e1", 1772438400000, "2026-03-02T08:00:00Z", "u1", "PNC", "view",
...                  "T1", "person", "P1")
>>> h.add([e, e], {0: 2}), h.add([e], {0: 3}), h.flush(), h.offsets()
(1, 0, None, {0: 3})
>>> rows, total = h.timeline("u1", 0, 1772438400000)
>>> [r.event_id for r in rows], total
(['e1'], 1)
>>> h.close()
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import msgspec

from accesswatch.contract.events import AccessEvent
from accesswatch.contract.timestamps import format_ts

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
SCHEMA_VERSION = 1
_PRUNE_CHUNK = 50_000  # rows per delete transaction: keeps the WAL file small
_LOOKUP_SLACK_MS = 1000  # alert times are cut to the millisecond, event times rounded

# No index on event_id alone: random keys make every batch rewrite pages all
# over it (it halved the ingest rate).  Redeliveries repeat the event time, so
# (t_ms, event_id) finds them, and that index grows at its end, as time does.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT NOT NULL,
    t_ms INTEGER NOT NULL,
    ts TEXT NOT NULL,
    user_id TEXT NOT NULL,
    system TEXT NOT NULL,
    action TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    subject_type TEXT,
    subject_id TEXT,
    case_ref TEXT,
    result_count INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS events_time ON events (t_ms, event_id);
CREATE INDEX IF NOT EXISTS events_user ON events (user_id, t_ms);
CREATE INDEX IF NOT EXISTS events_subject ON events (subject_id, t_ms)
    WHERE subject_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS offsets (
    partition INTEGER PRIMARY KEY,
    next_offset INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta VALUES ('rows', 0);
"""
_COLUMNS = ("event_id, t_ms, ts, user_id, system, action, terminal_id, subject_type, "
            "subject_id, case_ref, result_count")
_INSERT = f"INSERT OR IGNORE INTO events ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
# One parameter however many ids: a JSON array read by SQLite's json_each.
_IDS = "(SELECT value FROM json_each(?))"
_NEWEST = "ORDER BY t_ms DESC, event_id DESC"


class HistoryEvent(msgspec.Struct, gc=False):
    """An access as the console keeps it: who, when, where, what was opened and
    under which case; never the query text, which may name a person."""

    event_id: str
    t_ms: int
    ts: str
    user_id: str
    system: str
    action: str
    terminal_id: str
    subject_type: str | None = None
    subject_id: str | None = None
    case_ref: str | None = None
    result_count: int | None = None

    @classmethod
    def of(cls, e: AccessEvent) -> HistoryEvent:
        return cls(e.event_id, round(e.t * 1000), e.ts, e.user_id, e.system, e.action,
                   e.terminal_id, e.subject_type, e.subject_id, e.case_ref, e.result_count)


class History:
    """The access history in ``path``, keeping ``retention_days`` of event time
    (0 keeps everything).

    ``add``, ``flush`` and ``prune`` are for one writer thread at a time (the
    feed, through ``asyncio.to_thread``); reads may come from any thread.
    Batches are committed together, up to ``commit_rows`` rows or
    ``commit_after_s`` seconds after the first uncommitted one (a thread of
    this class commits when due): one commit per 5,000-row batch would rewrite
    the same index pages ten times over.  Lists come newest first; where a
    ``limit`` cuts one, its total still counts every match.
    """

    def __init__(self, path: Path, retention_days: float, *, commit_rows: int = 50_000,
                 commit_after_s: float = 0.5, cache_mb: int = 64) -> None:
        if retention_days < 0:
            raise ValueError(f"retention_days must be >= 0, not {retention_days}")
        self.path = path
        self.retention_ms = round(retention_days * DAY_MS)
        self.commit_rows, self.commit_after_s = commit_rows, commit_after_s
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _connect(path, cache_mb)
        version = self._writer.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            self._writer.close()
            raise ValueError(f"{path}: history schema {version}, this console reads "
                             f"{SCHEMA_VERSION}; move the file aside to start afresh")
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.execute(f"PRAGMA journal_size_limit={64 << 20}")
        self._writer.executescript(
            f"BEGIN; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
        self._reader = _connect(path, max(cache_mb // 2, 2))
        self._reader.execute("PRAGMA query_only=1")
        self._read_lock = threading.Lock()
        self._due = threading.Condition()  # guards the writer connection
        self._open_since: float | None = None  # monotonic start of the open transaction
        self._pending = 0
        self._failed: BaseException | None = None
        self._closed = False
        self._committer = threading.Thread(target=self._commit_when_due,
                                           name="history-commit", daemon=True)
        self._committer.start()

    # ---- writing (one thread) ---------------------------------------------
    def add(self, rows: Sequence[HistoryEvent], offsets: dict[int, int]) -> int:
        """Store ``rows`` and each partition's next offset, together; returns how
        many rows were new.

        They are readable once committed (within ``commit_after_s``).  If this
        raises, the uncommitted batches are gone with their offsets: resume
        reading from ``offsets()``.
        """
        params = [msgspec.structs.astuple(r) for r in rows]
        with self._due:
            if self._failed is not None:
                failed, self._failed = self._failed, None
                raise RuntimeError("the history's last commit failed; resume from "
                                   "offsets()") from failed
            if self._closed:
                raise RuntimeError("the history is closed")
            db = self._writer
            if self._open_since is None:
                db.execute("BEGIN IMMEDIATE")
                self._open_since = time.monotonic()
            try:
                new = db.executemany(_INSERT, params).rowcount if params else 0
                db.executemany("INSERT OR REPLACE INTO offsets VALUES (?, ?)",
                               list(offsets.items()))
                if new:
                    db.execute("UPDATE meta SET value = value + ? WHERE name = 'rows'",
                               (new,))
            except BaseException:
                self._end("ROLLBACK")
                raise
            self._pending += len(params)
            if self._pending >= self.commit_rows or self.commit_after_s <= 0:
                self._end("COMMIT")
            else:
                self._due.notify()
        return new

    def flush(self) -> None:
        """Commit what ``add`` has stored so far, now."""
        with self._due:
            if self._open_since is not None:
                self._end("COMMIT")

    def prune(self, now_ms: int) -> int:
        """Delete events whose event time is more than the retention before
        ``now_ms``; returns how many.  Retention 0 deletes nothing."""
        if not self.retention_ms:
            return 0
        cutoff, deleted = now_ms - self.retention_ms, 0
        while True:
            with self._due:
                if self._open_since is not None:
                    self._end("COMMIT")
                db = self._writer
                db.execute("BEGIN IMMEDIATE")
                try:
                    n = db.execute(
                        "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events "
                        "WHERE t_ms < ? ORDER BY t_ms LIMIT ?)", (cutoff, _PRUNE_CHUNK)
                    ).rowcount
                    db.execute("UPDATE meta SET value = value - ? WHERE name = 'rows'", (n,))
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            deleted += n
            if n < _PRUNE_CHUNK:
                return deleted

    def close(self) -> None:
        """Commit what is pending and close the file."""
        with self._due:
            if self._closed:
                return
            if self._open_since is not None:
                self._end("COMMIT")
            self._closed = True
            self._due.notify()
        self._committer.join()
        with self._due, self._read_lock:
            self._reader.close()
            self._writer.execute("PRAGMA optimize")
            self._writer.close()

    def _end(self, how: str) -> None:
        self._open_since, self._pending = None, 0
        try:
            self._writer.execute(how)
        except sqlite3.Error:
            if self._writer.in_transaction:  # a failed COMMIT leaves it open
                self._writer.execute("ROLLBACK")
            raise

    def _commit_when_due(self) -> None:
        with self._due:
            while not self._closed:
                if self._open_since is None:
                    self._due.wait()
                    continue
                wait = self._open_since + self.commit_after_s - time.monotonic()
                if wait > 0:
                    self._due.wait(wait)
                    continue
                try:
                    self._end("COMMIT")
                except sqlite3.Error as e:  # the next add raises it
                    self._failed = e

    # ---- reading (any thread) ---------------------------------------------
    def offsets(self) -> dict[int, int]:
        """Where to resume ``access.events``: the next offset of each stored partition."""
        return dict(self._all("SELECT partition, next_offset FROM offsets", ()))

    def events(self, event_ids: Collection[str], user_id: str, start_ms: int,
               end_ms: int) -> dict[str, HistoryEvent]:
        """Those of ``event_ids`` that ``user_id`` made between ``start_ms`` and
        ``end_ms`` (an alert's evidence: its member, first_seen, last_seen), by id."""
        if not event_ids:
            return {}
        rows = self._all(
            f"SELECT {_COLUMNS} FROM events INDEXED BY events_user WHERE user_id = ? "
            f"AND t_ms BETWEEN ? AND ? AND event_id IN {_IDS}",
            (user_id, start_ms - _LOOKUP_SLACK_MS, end_ms + _LOOKUP_SLACK_MS,
             _json(event_ids)))
        return {r[0]: HistoryEvent(*r) for r in rows}

    def newest_of(self, user_id: str) -> int | None:
        """The event time (ms) of the member's newest access held, if any."""
        return self._all("SELECT max(t_ms) FROM events INDEXED BY events_user "
                         "WHERE user_id = ?", (user_id,))[0][0]

    def timeline(self, user_id: str, start_ms: int, end_ms: int, *, system: str | None = None,
                 action: str | None = None, subject_type: str | None = None,
                 limit: int = 5000) -> tuple[list[HistoryEvent], int]:
        """The member's accesses with ``start_ms <= t_ms <= end_ms``, newest first:
        at most ``limit`` of them, and how many match in all."""
        where, params = ["user_id = ? AND t_ms BETWEEN ? AND ?"], [user_id, start_ms, end_ms]
        for column, value in (("system", system), ("action", action),
                              ("subject_type", subject_type)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        return self._page("events_user", " AND ".join(where), params, limit)

    def choices(self, user_id: str, start_ms: int, end_ms: int) -> dict[str, list[str]]:
        """The systems, actions and subject types among the member's accesses in
        the window, for the timeline's filters."""
        rows = self._all("SELECT DISTINCT system, action, subject_type FROM events "
                         "INDEXED BY events_user WHERE user_id = ? AND t_ms BETWEEN ? AND ?",
                         (user_id, start_ms, end_ms))
        return {name: sorted({r[i] for r in rows if r[i] is not None})
                for i, name in enumerate(("system", "action", "subject_type"))}

    def hourly(self, user_id: str, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """(start of the hour in ms, accesses) for each hour in the window in
        which the member made any, oldest first: activity in event time."""
        return self._all(
            f"SELECT t_ms / {HOUR_MS} * {HOUR_MS} AS hour, count(*) FROM events "
            "INDEXED BY events_user WHERE user_id = ? AND t_ms BETWEEN ? AND ? "
            "GROUP BY hour ORDER BY hour", (user_id, start_ms, end_ms))

    def subject(self, subject_id: str, start_ms: int | None = None, end_ms: int | None = None,
                limit: int = 5000) -> tuple[list[HistoryEvent], int]:
        """Every access to ``subject_id`` by anyone in the window, newest first:
        at most ``limit``, and how many in all (who opened this record)."""
        lo = start_ms if start_ms is not None else -(2**63)
        hi = end_ms if end_ms is not None else 2**63 - 1
        return self._page("events_subject", "subject_id = ? AND t_ms BETWEEN ? AND ?",
                          [subject_id, lo, hi], limit)

    def opens_of(self, subject_ids: Collection[str], since_ms: int,
                 limit: int) -> list[HistoryEvent]:
        """The newest ``limit`` accesses to any of ``subject_ids`` at or after
        ``since_ms``, newest first (the watch-list's recent opens)."""
        if not subject_ids:
            return []
        rows = self._all(
            f"SELECT {_COLUMNS} FROM events INDEXED BY events_subject "
            f"WHERE subject_id IN {_IDS} AND t_ms >= ? {_NEWEST} LIMIT ?",
            (_json(subject_ids), since_ms, limit))
        return [HistoryEvent(*r) for r in rows]

    def stats(self) -> dict[str, Any]:
        """Rows held, the oldest and newest event time, and the bytes on disk."""
        with self._read_lock:
            rows, lo, hi = self._reader.execute(
                "SELECT (SELECT value FROM meta WHERE name = 'rows'), "
                "(SELECT min(t_ms) FROM events), (SELECT max(t_ms) FROM events)").fetchone()
        files = (self.path, self.path.with_name(self.path.name + "-wal"))
        return {
            "rows": rows,
            "oldest": format_ts(lo / 1000) if lo is not None else None,
            "newest": format_ts(hi / 1000) if hi is not None else None,
            "oldest_ms": lo,
            "newest_ms": hi,
            "bytes": sum(f.stat().st_size for f in files if f.exists()),
            "retention_days": self.retention_ms / DAY_MS,
        }

    def _page(self, index: str, where: str, params: list[Any],
              limit: int) -> tuple[list[HistoryEvent], int]:
        limit = max(limit, 0)
        with self._read_lock:
            db = self._reader
            db.execute("BEGIN")  # the rows and the total from one snapshot
            try:
                rows = db.execute(f"SELECT {_COLUMNS} FROM events INDEXED BY {index} "
                                  f"WHERE {where} {_NEWEST} LIMIT ?", [*params, limit]
                                  ).fetchall()
                total = len(rows) if len(rows) < limit else db.execute(
                    f"SELECT count(*) FROM events INDEXED BY {index} WHERE {where}", params
                ).fetchone()[0]
            finally:
                db.execute("COMMIT")
        return [HistoryEvent(*r) for r in rows], total

    def _all(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._read_lock:
            return self._reader.execute(sql, params).fetchall()


def _connect(path: Path, cache_mb: int) -> sqlite3.Connection:
    # Autocommit (isolation_level None): transactions are explicit, and a read
    # never holds a snapshot open between calls.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=10000")
    db.execute(f"PRAGMA cache_size=-{cache_mb * 1024}")
    # NORMAL in WAL mode: a power cut may lose the last commits, never
    # consistency; their offsets go with them, so those events are read again.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA temp_store=MEMORY")
    return db


def _json(values: Collection[str]) -> str:
    return msgspec.json.encode(list(values)).decode()
