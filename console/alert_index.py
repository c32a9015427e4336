"""The listing behind ``/api/alerts`` and ``/api/cases``: filter, sort and page on the server.

An in-memory SQLite database holds one row per alert and one per case, kept in
step with the console's state as alerts, decisions and cases change.  A page is
one indexed query with a keyset cursor (the sort value and id of the last row
shown), so page 1,000 costs what page 1 does; the total is a ``COUNT`` over the
same filter, so the page never claims less than the server holds.

>>> index = AlertIndex()
>>> for n in range(3):
...     index.put_alert(Row(alert_id=f"aw-{n}", created_at=f"2026-03-02T09:0{n}:00Z",
...         first_seen="2026-03-02T09:00:00Z", last_seen="2026-03-02T09:00:00Z",
...         user_id="E1", rule_id="AW-002", title="t", severity="high", score=50.0 + n))
>>> page = index.alerts(Query(sort="score", dir="desc", limit=2))
>>> [r["alert_id"] for r in page.rows], page.total
(['aw-2', 'aw-1'], 3)
>>> [r["alert_id"] for r in index.alerts(Query(sort="score", dir="desc", limit=2,
...                                               cursor=page.next_cursor)).rows]
['aw-0']
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec

from accesswatch.contract.timestamps import parse_ts

SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}
PAGE_MAX = 500
PAGE_DEFAULT = 100

# Sortable columns: name → SQL expression (never taken from the request as text).
ALERT_SORTS: dict[str, str] = {
    "created_at": "created_ms", "first_seen": "first_ms", "last_seen": "last_ms",
    "score": "score", "severity": "sev_rank", "rule_id": "rule_id", "title": "title",
    "user_id": "user_id", "area": "area", "status": "status", "assignee": "assignee",
    "count": "count", "updated_at": "updated_ms",
}
CASE_SORTS: dict[str, str] = {
    "last_seen": "last_ms", "first_seen": "first_ms", "risk": "risk", "severity": "sev_rank",
    "user_id": "user_id", "status": "status", "owner": "owner", "alerts": "alerts",
    "updated_at": "updated_ms", "area": "area",
}

_SCHEMA = """
CREATE TABLE alerts (
    rid INTEGER PRIMARY KEY, alert_id TEXT UNIQUE, created_at TEXT, created_ms INTEGER,
    updated_at TEXT, updated_ms INTEGER, version INTEGER, first_seen TEXT, first_ms INTEGER,
    last_seen TEXT,
    last_ms INTEGER, user_id TEXT, rule_id TEXT, title TEXT, severity TEXT, sev_rank INTEGER,
    score REAL, count INTEGER, area TEXT, status TEXT, assignee TEXT, reason TEXT,
    case_id TEXT, text TEXT);
CREATE INDEX alerts_score ON alerts (score, alert_id);
CREATE INDEX alerts_created ON alerts (created_ms, alert_id);
CREATE INDEX alerts_last ON alerts (last_ms, alert_id);
CREATE INDEX alerts_user ON alerts (user_id);
CREATE INDEX alerts_severity ON alerts (severity);
CREATE INDEX alerts_rule ON alerts (rule_id);
CREATE INDEX alerts_area ON alerts (area);
CREATE INDEX alerts_status ON alerts (status);
CREATE INDEX alerts_assignee ON alerts (assignee);
CREATE INDEX alerts_case ON alerts (case_id);
CREATE VIRTUAL TABLE alerts_text USING fts5 (text, tokenize='trigram', detail='none');
CREATE TABLE cases (
    case_id TEXT PRIMARY KEY, user_id TEXT, area TEXT, alerts INTEGER, first_seen TEXT,
    first_ms INTEGER, last_seen TEXT, last_ms INTEGER, risk REAL, severity TEXT,
    sev_rank INTEGER, rule_ids TEXT, status TEXT, owner TEXT, outcome TEXT,
    proposed_by TEXT, version INTEGER, updated_at TEXT, updated_ms INTEGER,
    previous_case_id TEXT, text TEXT);
CREATE INDEX cases_last ON cases (last_ms, case_id);
CREATE INDEX cases_risk ON cases (risk, case_id);
CREATE INDEX cases_user ON cases (user_id);
"""

_ALERT_COLUMNS = ("alert_id", "created_at", "updated_at", "version", "first_seen", "last_seen",
                  "user_id", "rule_id", "title", "severity", "score", "count", "area", "status",
                  "assignee", "reason", "case_id")
_CASE_COLUMNS = ("case_id", "user_id", "area", "alerts", "first_seen", "last_seen", "risk",
                 "severity", "rule_ids", "status", "owner", "outcome", "proposed_by", "version",
                 "updated_at", "previous_case_id")


class Row(msgspec.Struct, kw_only=True):
    """An alert as the listing shows it (no evidence, no model)."""

    alert_id: str
    created_at: str
    first_seen: str
    last_seen: str
    user_id: str
    rule_id: str
    title: str
    severity: str
    score: float
    updated_at: str | None = None
    version: int = 1
    count: int = 1
    area: str = "unknown"
    status: str = "new"
    assignee: str | None = None
    reason: str = ""
    case_id: str | None = None
    search: str = ""  # what free text matches besides the columns: subject ids, reasons


class CaseRow(msgspec.Struct, kw_only=True):
    case_id: str
    user_id: str
    first_seen: str
    last_seen: str
    alerts: int
    risk: float
    severity: str
    area: str = "unknown"
    rule_ids: list[str] = msgspec.field(default_factory=list)
    status: str = "new"
    owner: str | None = None
    outcome: str | None = None
    proposed_by: str | None = None
    version: int = 0
    updated_at: str | None = None
    previous_case_id: str | None = None


class QueryError(ValueError):
    """A listing request that names no known column or value: said for the analyst."""


@dataclass
class Query:
    """What one page asks for.  Equality filters are column → value."""

    sort: str = "score"
    dir: str = "desc"
    limit: int = PAGE_DEFAULT
    cursor: str | None = None
    text: str = ""
    start_ms: int | None = None  # overlaps [start, end] by event time
    end_ms: int | None = None
    equal: dict[str, str] = field(default_factory=dict)


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int
    next_cursor: str | None


def _ms(iso: str | None) -> int | None:
    if not iso:
        return None
    try:
        return int(parse_ts(iso) * 1000)
    except Exception:  # an unreadable time sorts first rather than breaking the page
        return 0


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class AlertIndex:
    def __init__(self) -> None:
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.executescript(_SCHEMA)
        self.changes = 0  # counts every change, so a reader can tell its copy is stale
        self._rids: dict[str, int] = {}  # alert id → its row (and its search entry)
        self._next_rid = 0
        self._cached: dict[tuple[str, str], tuple[int, list[str]]] = {}

    # --- changes ------------------------------------------------------------
    def put_alert(self, r: Row) -> None:
        self.changes += 1
        text = " ".join([r.alert_id, r.user_id, r.rule_id, r.title, r.reason,
                         r.search]).lower()
        rid = self._rids.get(r.alert_id)
        if rid is None:
            rid = self._rids[r.alert_id] = self._next_rid = self._next_rid + 1
        else:
            self._untext(rid)
        self.db.execute("INSERT INTO alerts_text (rowid, text) VALUES (?, ?)", (rid, text))
        self.db.execute(
            "INSERT OR REPLACE INTO alerts VALUES "
            "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (rid, r.alert_id, r.created_at, _ms(r.created_at), r.updated_at,
             _ms(r.updated_at or r.created_at), r.version, r.first_seen, _ms(r.first_seen),
             r.last_seen, _ms(r.last_seen), r.user_id, r.rule_id, r.title, r.severity,
             SEVERITY_RANK.get(r.severity, 0), r.score, r.count, r.area, r.status,
             r.assignee or "", r.reason, r.case_id, text))

    def set_triage(self, alert_id: str, status: str, assignee: str | None) -> None:
        self.changes += 1
        self.db.execute("UPDATE alerts SET status = ?, assignee = ? WHERE alert_id = ?",
                        (status, assignee or "", alert_id))

    def set_case(self, alert_ids: Sequence[str], case_id: str) -> None:
        """Which case the alerts are in (found with the ``case_id`` filter, not by text)."""
        self.changes += 1
        self.db.executemany("UPDATE alerts SET case_id = ? WHERE alert_id = ?",
                            [(case_id, a) for a in alert_ids])

    def drop_alert(self, alert_id: str) -> None:
        self.changes += 1
        rid = self._rids.pop(alert_id, None)
        if rid is not None:
            self._untext(rid)
            self.db.execute("DELETE FROM alerts WHERE rid = ?", (rid,))

    def _untext(self, rid: int) -> str | None:
        """Take the alert's text out of the search index; returns that text."""
        row = self.db.execute("SELECT text FROM alerts WHERE rid = ?", (rid,)).fetchone()
        if row is None:
            return None
        self.db.execute("DELETE FROM alerts_text WHERE rowid = ?", (rid,))
        return str(row[0])

    def replace_cases(self, user_id: str, cases: Sequence[CaseRow]) -> None:
        """The member's cases, all of them: a regrouping may merge, split or rename."""
        self.changes += 1
        self.db.execute("DELETE FROM cases WHERE user_id = ?", (user_id,))
        self.db.executemany(
            "INSERT OR REPLACE INTO cases VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(c.case_id, c.user_id, c.area, c.alerts, c.first_seen, _ms(c.first_seen),
              c.last_seen, _ms(c.last_seen), c.risk, c.severity,
              SEVERITY_RANK.get(c.severity, 0), " ".join(c.rule_ids), c.status, c.owner or "",
              c.outcome, c.proposed_by, c.version, c.updated_at, _ms(c.updated_at) or 0,
              c.previous_case_id,
              " ".join([c.case_id, c.user_id, c.area, *c.rule_ids, c.owner or ""]).lower())
             for c in cases])

    # --- reads --------------------------------------------------------------
    def alerts(self, q: Query) -> Page:
        return self._page("alerts", "alert_id", ALERT_SORTS, _ALERT_COLUMNS, q)

    def cases(self, q: Query) -> Page:
        page = self._page("cases", "case_id", CASE_SORTS, _CASE_COLUMNS, q)
        for row in page.rows:
            row["rule_ids"] = row["rule_ids"].split() if row["rule_ids"] else []
        return page

    def alert_rows(self, q: Query, chunk: int = 2000) -> Iterator[dict[str, Any]]:
        """Every row matching ``q`` from the first, in its order, a page at a time (for
        exports).  The first page is read now: a query the index cannot answer raises
        ``QueryError`` here, before the caller has sent anything."""
        q = replace(q, limit=chunk, cursor=None, equal=dict(q.equal))
        return self._pages(q, self._alert_page(q, chunk))

    def _pages(self, q: Query, page: Page) -> Iterator[dict[str, Any]]:
        while True:
            yield from page.rows
            if page.next_cursor is None:
                return
            page = self._alert_page(replace(q, cursor=page.next_cursor), q.limit)

    def _alert_page(self, q: Query, chunk: int) -> Page:
        return self._page("alerts", "alert_id", ALERT_SORTS, _ALERT_COLUMNS, q, count=False,
                          page_max=chunk)

    def count(self, table: str) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def distinct(self, table: str, column: str) -> list[str]:
        """The values ``column`` holds (a filter's choices); worked out again only
        after a change, since each is a scan of the table."""
        held = self._cached.get((table, column))
        if held is not None and held[0] == self.changes:
            return held[1]
        sql = f"SELECT DISTINCT {column} FROM {table} ORDER BY 1"
        values = [v for (v,) in self.db.execute(sql) if v not in (None, "")]
        self._cached[(table, column)] = (self.changes, values)
        return values

    def _page(self, table: str, key: str, sorts: dict[str, str], columns: tuple[str, ...],
              q: Query, *, count: bool = True, page_max: int = PAGE_MAX) -> Page:
        """One page: a ``COUNT`` over the filter, then the rows after the cursor."""
        if q.sort not in sorts:
            raise QueryError(f"cannot sort by {q.sort!r}: one of {', '.join(sorts)}")
        if q.dir not in ("asc", "desc"):
            raise QueryError("dir is asc or desc")
        col = sorts[q.sort]
        where, args = self._where(q, columns, searchable=table == "alerts")
        total = -1
        if count:
            total = int(self.db.execute(f"SELECT COUNT(*) FROM {table} {_and(where)}",
                                        args).fetchone()[0])
        if q.cursor:
            value, last = _decode_cursor(q.cursor)
            op = "<" if q.dir == "desc" else ">"
            where = [*where, f"({col}, {key}) {op} (?, ?)"]
            args = [*args, value, last]
        order = "DESC" if q.dir == "desc" else "ASC"
        if q.text and table == "alerts" and len(q.text) >= 3 and 0 <= total < 5000:
            # The search index found few rows: sort those, rather than walk the sort's
            # index checking every row ("+" keeps SQLite off that index).
            col = f"+{col}"
        limit = max(1, min(q.limit, page_max))
        sql = (f"SELECT {', '.join(columns)}, {col} FROM {table} {_and(where)} "
               f"ORDER BY {col} {order}, {key} {order} LIMIT ?")
        got = self.db.execute(sql, [*args, limit + 1]).fetchall()
        more = len(got) > limit
        got = got[:limit]
        rows = [dict(zip(columns, r[:-1], strict=True)) for r in got]
        for row in rows:
            for empty in ("assignee", "owner"):
                if row.get(empty) == "":
                    row[empty] = None
        cursor = _encode_cursor(got[-1][-1], got[-1][0]) if more and got else None
        return Page(rows, total, cursor)

    @staticmethod
    def _where(q: Query, columns: tuple[str, ...],
               searchable: bool = False) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        for column, value in q.equal.items():
            if column not in columns:
                raise QueryError(f"cannot filter by {column!r}")
            if column in ("assignee", "owner") and value == "-":  # unassigned
                where.append(f"{column} = ''")
                continue
            where.append(f"{column} = ?")
            args.append(value)
        if q.text and searchable and len(q.text) >= 3:
            # A trigram index answers "contains" without reading every row (for GLOB
            # or LIKE without ESCAPE only: a LIKE with one scans the whole index).
            where.append("rid IN (SELECT rowid FROM alerts_text WHERE text GLOB ?)")
            args.append(_glob(q.text))
        elif q.text:
            where.append("text LIKE ? ESCAPE '\\'")
            args.append(_like(q.text))
        if q.start_ms is not None:
            where.append("last_ms >= ?")
            args.append(q.start_ms)
        if q.end_ms is not None:
            where.append("first_ms <= ?")
            args.append(q.end_ms)
        return where, args


def _glob(text: str) -> str:
    """A GLOB pattern for "contains ``text``", lower case, its own wildcards literal.

    >>> _glob("P-1*2?")
    '*p-1[*]2[?]*'
    """
    special = {"*": "[*]", "?": "[?]", "[": "[[]"}
    return "*" + "".join(special.get(c, c) for c in text.lower()) + "*"


def _and(where: list[str]) -> str:
    return "WHERE " + " AND ".join(where) if where else ""


def _encode_cursor(value: Any, key: str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([value, key])).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, key = msgspec.json.decode(raw)
        if not isinstance(key, str) or not isinstance(value, (int, float, str)):
            raise ValueError
        return value, key
    except (ValueError, msgspec.DecodeError) as e:
        raise QueryError("the cursor is not one this console gave") from e
