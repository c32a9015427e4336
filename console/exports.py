"""Exports an investigator can file: a filtered view as CSV, a case as an evidence pack.

>>> lines = list(alerts_csv([{"alert_id": "aw-1", "reason": "=HYPERLINK(\\"x\\")",
...                           "rule_id": "AW-002", "score": 70.0}]))
>>> lines[0].split(",")[:3], lines[1].split(",")[0], "'=HYPERLINK" in lines[1]
(['alert_id', 'created_at', 'updated_at'], 'aw-1', True)

The evidence pack is a ZIP of JSON files, a printable ``summary.html`` and a
``manifest.json`` holding each file's SHA-256; the same input gives the same
bytes.  It never holds an event's query text: the timeline keeps only the
fields listed in ``TIMELINE_FIELDS``.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import itertools
import re
import zipfile
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from accesswatch.core import Alert
from console.cases import CaseView
from console.store import StaffInfo
from console.triage import Decision, _cell

ALERT_COLUMNS = ("alert_id", "created_at", "updated_at", "version", "first_seen", "last_seen",
                 "user_id", "rule_id", "rule_name", "title", "severity", "score", "count",
                 "area", "status", "assignee", "reason", "case_id")
CASE_COLUMNS = ("case_id", "user_id", "area", "alerts", "first_seen", "last_seen", "risk",
                "severity", "rule_ids", "status", "owner", "outcome", "proposed_by", "version",
                "updated_at")
# What of an access the pack may carry: never the query text, which may name a person.
TIMELINE_FIELDS = ("event_id", "ts", "user_id", "system", "action", "terminal_id",
                   "subject_type", "subject_id", "case_ref", "result_count", "justified",
                   "why", "alert_ids")
PACK_FILES = ("case.json", "alerts.json", "timeline.json", "triage.json", "reference.json",
              "summary.html")
PACK_FORMAT = "accesswatch-evidence-pack/1"


def table_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> Iterator[str]:
    """A header line, then one line per row; every cell safe to open in a spreadsheet."""
    out = io.StringIO()
    # CRLF (RFC 4180) also makes the writer quote a cell holding a bare CR, which
    # a spreadsheet would otherwise read as the start of a new row.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    yield out.getvalue()
    for row in rows:
        out.seek(0)
        out.truncate()
        writer.writerow([_cell(row.get(c)) for c in columns])
        yield out.getvalue()


def alerts_csv(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The alert listing's rows as CSV lines (streamed: one row read, one line out)."""
    return table_csv(rows, ALERT_COLUMNS)


def cases_csv(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The case listing's rows as CSV lines."""
    return table_csv(rows, CASE_COLUMNS)


def evidence_filename(case_id: str) -> str:
    """A download name safe in a Content-Disposition header.

    >>> evidence_filename('C-1"; x=<y>')
    'evidence-C-1___x__y_.zip'
    """
    return "evidence-" + re.sub(r"[^A-Za-z0-9._-]", "_", case_id)[:80] + ".zip"


def timeline_rows(timeline: Iterable[Any],
                  why: Callable[[Any], str] | None = None) -> list[dict[str, Any]]:
    """Accesses (``HistoryEvent`` structs or the API's event dicts) as the pack keeps them.

    ``why`` says why an access was not justified (``""`` when it was), for events
    that do not say so themselves.
    """
    rows = []
    for ev in timeline:
        raw = dict(ev) if isinstance(ev, Mapping) else msgspec.to_builtins(ev)
        row = {k: raw[k] for k in TIMELINE_FIELDS if raw.get(k) is not None}
        if "why" not in row and why is not None:
            row["why"] = why(ev)
        if "why" in row and "justified" not in row:
            row["justified"] = not row["why"]
        rows.append(row)
    return rows


def evidence_pack(*, case: CaseView, alerts: Sequence[Alert], decisions: Mapping[str, Decision],
                  timeline: Sequence[Any], member: StaffInfo | None,
                  reference: Mapping[str, Any], generated_by: str, at: str,
                  timeline_total: int | None = None,
                  why: Callable[[Any], str] | None = None) -> bytes:
    """One case as a ZIP: JSON for machines, ``summary.html`` to print, a manifest of hashes.

    ``timeline`` is the member's accesses over the case's window (``HistoryEvent``
    structs or dicts); ``timeline_total`` how many there were, if more than given.
    ``reference`` holds the reference facts used (cases cited, protected subjects).
    """
    alerts = sorted(alerts, key=lambda a: (a.first_seen, a.alert_id))
    events = timeline_rows(timeline, why)
    triage = {a.alert_id: decisions[a.alert_id] for a in alerts if a.alert_id in decisions}
    who = {"user_id": case.user_id, **(msgspec.to_builtins(member) if member else {})}
    files = {
        "case.json": _json({"case": case, "member": who}),
        "alerts.json": _json(alerts),
        "timeline.json": _json({"events": events,
                                "total": max(timeline_total or 0, len(events))}),
        "triage.json": _json({"case": case.record, "alerts": triage}),
        "reference.json": _json(reference),
    }
    digests = {name: hashlib.sha256(body).hexdigest() for name, body in files.items()}
    files["summary.html"] = summary_html(
        case=case, alerts=alerts, decisions=triage, events=events, member=member,
        reference=reference, generated_by=generated_by, at=at,
        timeline_total=timeline_total, digests=digests).encode()
    manifest = {"format": PACK_FORMAT, "case_id": case.case_id, "generated_by": generated_by,
                "generated_at": at,
                "files": [{"name": name, "bytes": len(files[name]),
                           "sha256": hashlib.sha256(files[name]).hexdigest()}
                          for name in PACK_FILES]}
    files["manifest.json"] = _json(manifest)
    out = io.BytesIO()
    stamp = _zip_time(at)
    with zipfile.ZipFile(out, "w") as z:
        for name in (*PACK_FILES, "manifest.json"):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, files[name])
    return out.getvalue()


def _json(value: Any) -> bytes:
    return msgspec.json.format(msgspec.json.encode(value, order="deterministic"), indent=2)


def _zip_time(at: str) -> tuple[int, int, int, int, int, int]:
    # The generation time, not the clock: the same pack twice is the same bytes.
    try:
        t = datetime.fromisoformat(at).astimezone(UTC)
    except ValueError:
        return (1980, 1, 1, 0, 0, 0)
    return (max(t.year, 1980), t.month, t.day, t.hour, t.minute, t.second)


# --- the printable summary ----------------------------------------------------------

_CSS = """
body{font:10.5pt/1.4 system-ui,sans-serif;color:#111;margin:1.5em auto;max-width:60em}
h1{font-size:16pt;margin:0 0 .2em}h2{font-size:12.5pt;margin:1.4em 0 .4em;
border-bottom:1px solid #999}p.meta{color:#444;margin:0 0 1em}
dl{display:grid;grid-template-columns:max-content auto;gap:.15em 1em;margin:0}
dt{font-weight:600}dd{margin:0}
table{border-collapse:collapse;width:100%;font-size:9pt}
th,td{border:1px solid #bbb;padding:.2em .4em;text-align:left;vertical-align:top}
td{overflow-wrap:break-word}th{background:#eee;white-space:nowrap}
tr.unjustified td{background:#fdecea}
ul{margin:0;padding-left:1.1em}.none{color:#666;font-style:italic}code{font-size:9pt}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}tr{break-inside:avoid}
thead{display:table-header-group}}
"""


def _e(value: object) -> str:
    """Text for HTML: ``None`` shows as a dash, everything else escaped."""
    return "–" if value is None or value == "" else html.escape(str(value), quote=True)


def _table(head: Sequence[str], rows: Iterable[Sequence[object]],
           classes: Iterable[str] = (), raw: Container[int] = ()) -> str:
    """A table; the cells in columns ``raw`` are HTML already built from escaped parts."""
    body = []
    for row, cls in zip(rows, itertools.chain(classes, itertools.repeat("")), strict=False):
        cells = "".join(f"<td>{c if i in raw else _e(c)}</td>" for i, c in enumerate(row))
        body.append(f'<tr class="{_e(cls)}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    if not body:
        return '<p class="none">None.</p>'
    heads = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f"<table><thead><tr>{heads}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _dl(pairs: Iterable[tuple[str, object]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in pairs) + "</dl>"


def _ul(items: Iterable[object]) -> str:
    return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _approval(case: CaseView) -> str:
    r = case.record
    if r is None or r.proposed is None:
        return "not needed" if case.outcome and case.outcome != "misuse" else "none"
    p = r.proposed
    proposed = f"{p.outcome} proposed by {p.by} at {p.at}"
    if r.approved_by:
        return f"{proposed}; approved by {r.approved_by}"
    return f"{proposed}; awaiting a lead's approval"


def summary_html(*, case: CaseView, alerts: Sequence[Alert], decisions: Mapping[str, Decision],
                 events: Sequence[Mapping[str, Any]], member: StaffInfo | None,
                 reference: Mapping[str, Any], generated_by: str, at: str,
                 timeline_total: int | None = None,
                 digests: Mapping[str, str] | None = None) -> str:
    """The pack's summary: self-contained (inline style, no script), every value escaped."""
    r = case.record
    title = f"Evidence pack: case {case.case_id}"
    facts = [
        ("Member", case.user_id),
        ("Role", member.role if member else "not in the staff directory"),
        ("Unit", member.unit if member else None), ("Area", member.area if member else None),
        ("Staff status", member.status if member else None),
        ("Window (event time)", f"{case.first_seen or '?'} to {case.last_seen or '?'}"),
        ("Risk", f"{case.risk:.1f} / 100"), ("Severity", case.severity),
        ("Alerts", case.alerts), ("Status", case.status), ("Outcome", case.outcome),
        ("Owner", case.owner), ("Approval", _approval(case)),
        ("Previous case", case.previous_case_id), ("Record version", case.version),
    ]
    alert_rows = [(a.alert_id, a.rule_id, a.title, a.severity, a.score, a.first_seen,
                   a.last_seen, a.count,
                   decisions[a.alert_id].status if a.alert_id in decisions else "new",
                   _ul(a.reasons)) for a in alerts]
    total = max(timeline_total or 0, len(events))
    shown = (f"{len(events):,} accesses" if total == len(events)
             else f"{len(events):,} of {total:,} accesses (the rest are not in this pack)")
    timeline = _table(
        ("Time", "System", "Action", "Terminal", "Subject", "Case ref", "Justified", "Alerts"),
        [(ev.get("ts"), ev.get("system"), ev.get("action"), ev.get("terminal_id"),
          " ".join(str(ev[k]) for k in ("subject_type", "subject_id") if ev.get(k)),
          ev.get("case_ref"), _justified(ev), " ".join(ev.get("alert_ids") or ()))
         for ev in events],
        ["unjustified" if ev.get("justified") is False else "" for ev in events])
    steps = r.history if r else []
    dropped = (r.version - len(steps)) if r else 0
    case_history = _table(("Time", "By", "Role", "Action", "Owner / outcome", "Note"),
                          [(s.at, s.by, s.role, s.action, s.owner or s.outcome, s.note)
                           for s in steps])
    if dropped > 0:
        case_history += (f'<p class="none">{dropped} earlier step(s) are on the cases audit '
                         "topic.</p>")
    triage = _table(("Alert", "Time", "By", "Action", "Assignee", "Note"),
                    [(aid, s.at, s.by, s.action, s.assignee, s.note)
                     for aid, d in decisions.items() for s in d.history])
    files = _table(("File", "SHA-256"), sorted((digests or {}).items()))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        # Opened from disk, the page may run nothing and fetch nothing.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">Generated by accesswatch for {_e(generated_by)} at {_e(at)}. '
        "Times are UTC, in event time.</p>",
        "<h2>Summary</h2>", _dl(facts),
        f"<h2>Alerts ({len(alerts)})</h2>",
        _table(("Alert", "Rule", "Title", "Severity", "Score", "First seen", "Last seen",
                "Events", "Triage", "Reasons"), alert_rows, raw={9}),
        f"<h2>Timeline: {_e(shown)}</h2>", timeline,
        "<h2>Case history</h2>", case_history,
        "<h2>Triage of its alerts</h2>", triage,
        "<h2>Reference facts</h2>", _facts(reference),
        "<h2>Files in this pack</h2>", files,
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _justified(ev: Mapping[str, Any]) -> str:
    if "justified" not in ev:
        return "not judged"
    return "yes" if ev["justified"] else f"no: {ev.get('why') or 'no reason given'}"


def _facts(value: Any) -> str:
    """Any JSON-like value as nested lists, tables and definition lists, escaped."""
    value = msgspec.to_builtins(value)
    if isinstance(value, dict):
        if not value:
            return '<p class="none">None.</p>'
        return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_facts(v)}</dd>"
                                for k, v in value.items()) + "</dl>"
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            head = list(dict.fromkeys(k for v in value for k in v))
            return _table(head, [[_facts(v.get(k)) for k in head] for v in value],
                          raw=range(len(head)))
        return _e(", ".join(str(v) for v in value)) if value else "–"
    return _e(value)
