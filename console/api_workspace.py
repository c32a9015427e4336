"""The investigation workspace's API: cases, a member's timeline, a subject's side,
the watch-list and a case's evidence pack.

A member's timeline and a subject's page are read from the access history
(``console.history``), so they hold every access the console has kept, not
only the ones alerts cite.  Each open is judged against the case facts the
console holds (``console.directory``): justified, or why not.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from accesswatch.core import Alert
from console.alert_index import CASE_SORTS, Query, QueryError
from console.api import (
    _error,
    _iso,
    _json_object,
    _limit,
    _time,
    bad_query,
    bulk_ids,
    may_triage,
    summary,
)
from console.cases import ACTIONS as CASE_ACTIONS
from console.cases import CASE_STATUSES, CaseError, CaseRecord, CaseView, decide_case
from console.directory import WatchError, watch_entry
from console.state import SEVERITIES, ConsoleState, judged
from console.web import STATE, TRIAGE_LOCK, current_user, require

DAY_MS = 86_400_000
TIMELINE_DAYS = 14
TIMELINE_MAX = 5000
SUBJECT_MAX = 2000
WATCH_DAYS = 7
WATCH_MAX = 500
PACK_TIMELINE_MAX = 100_000  # a pack holding fewer accesses than the window says so
CaseRecorder = Callable[[CaseRecord], Awaitable[None]]
WatchRecorder = Callable[[str, bytes | None], Awaitable[None]]
CASE_RECORDER = web.AppKey("case_recorder", object)
WATCH_RECORDER = web.AppKey("watch_recorder", object)


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/api/cases", cases)
    r.add_post("/api/cases/bulk", bulk_cases)
    r.add_get("/api/cases/{case_id}", case_detail)
    r.add_post("/api/cases/{case_id}", case_action)
    r.add_get("/api/cases/{case_id}/evidence.zip", evidence_pack)
    r.add_get("/api/members/{user_id}/timeline", timeline)
    r.add_get("/api/subjects/{subject_id}", subject)
    r.add_get("/api/watchlist", watchlist)
    r.add_post("/api/watchlist", watch_add)
    r.add_post("/api/watchlist/remove", watch_remove)


# --- cases ---------------------------------------------------------------------------
def case_query(request: web.Request) -> Query:
    q = request.query
    sort, direction = q.get("sort", "last_seen"), q.get("dir", "desc")
    if sort not in CASE_SORTS:
        raise QueryError(f"cannot sort cases by {sort!r}")
    status, severity = q.get("status", ""), q.get("severity", "")
    if status and status not in CASE_STATUSES:
        raise QueryError(f"status is one of {', '.join(CASE_STATUSES)}")
    if severity and severity not in SEVERITIES:
        raise QueryError(f"severity is one of {', '.join(SEVERITIES)}")
    owner = q.get("owner", "")[:64]
    if owner == "me":
        owner = current_user(request).username
    equal = {"status": status, "severity": severity, "owner": owner,
             "outcome": q.get("outcome", "")[:32], "area": q.get("area", "")[:128],
             "user_id": q.get("member", "")[:64]}
    return Query(sort=sort, dir=direction, limit=_limit(q.get("limit")),
                 cursor=q.get("cursor") or None, text=q.get("q", "").strip()[:200],
                 start_ms=_time(q.get("from"), "from"), end_ms=_time(q.get("to"), "to"),
                 equal={k: v for k, v in equal.items() if v})


async def cases(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.settle()
    try:
        page = state.index.cases(case_query(request))
    except QueryError as e:
        raise bad_query(e) from None
    index = state.index
    return web.json_response({
        "cases": page.rows, "total": page.total, "held": index.count("cases"),
        "next_cursor": page.next_cursor, "ready": state.ready,
        "choices": {"status": list(CASE_STATUSES), "outcome": list(OUTCOME_CHOICES),
                    "severity": [s for s in SEVERITIES
                                 if s in set(index.distinct("cases", "severity"))],
                    "owner": index.distinct("cases", "owner"),
                    "area": index.distinct("cases", "area")},
    })


OUTCOME_CHOICES = ("misuse", "justified", "false_positive", "no_further_action")


def _case(request: web.Request) -> CaseView:
    state = request.app[STATE]
    state.settle()
    view = state.case_views.get(request.match_info["case_id"])
    if view is None:
        raise web.HTTPNotFound(text='{"error": "no such case"}', content_type="application/json")
    return view


def case_json(state: ConsoleState, view: CaseView) -> dict[str, Any]:
    from console.state import case_row

    row: dict[str, Any] = msgspec.to_builtins(case_row(view, state.staff.area(view.user_id)))
    row["approved_by"] = view.approved_by
    return row


async def case_detail(request: web.Request) -> web.Response:
    state, view = request.app[STATE], _case(request)
    alerts = [summary(state, a) for a in _case_alerts(state, view)]
    info = state.staff.members.get(view.user_id)
    others = [case_json(state, v) for v in state.case_views.values()
              if v.user_id == view.user_id and v.case_id != view.case_id]
    return web.json_response({
        "case": case_json(state, view),
        "record": msgspec.to_builtins(view.record) if view.record else None,
        "alerts": alerts,
        "member": msgspec.to_builtins(info) if info else None,
        "member_cases": sorted(others, key=lambda c: c["first_seen"]),
        "actions": list(CASE_ACTIONS),
    })


def _case_alerts(state: ConsoleState, view: CaseView) -> list[Alert]:
    held = [state.alerts.get(a) for a in view.alert_ids]
    return sorted((a for a in held if a is not None), key=lambda a: (a.first_seen, a.alert_id))


async def case_action(request: web.Request) -> web.Response:
    require(request, "triage")
    state, view = request.app[STATE], _case(request)
    if not state.caught_up.get("cases", True):
        return _error(503, "cases are still being read back; try again in a moment")
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    status, out = await _decide_case(request, view, body, seen=body.get("version"))
    if status != 200:
        return _error(status, str(out))
    fresh = state.case_views.get(view.case_id, view)
    return web.json_response({"case": case_json(state, fresh),
                              "record": msgspec.to_builtins(out)})


async def bulk_cases(request: web.Request) -> web.Response:
    require(request, "triage")
    state = request.app[STATE]
    state.settle()
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    ids = bulk_ids(body, "case_ids", "case")
    if isinstance(ids, web.Response):
        return ids
    results: list[dict[str, Any]] = []
    for case_id in ids:
        view = state.case_views.get(case_id)
        if view is None:
            results.append({"case_id": case_id, "ok": False, "error": "no such case"})
            continue
        status, out = await _decide_case(request, view, body, seen=None)
        results.append({"case_id": case_id, "ok": status == 200,
                        **({} if status == 200 else {"error": str(out)})})
    return web.json_response({"results": results, "done": sum(r["ok"] for r in results)})


async def _decide_case(request: web.Request, view: CaseView, body: dict[str, Any],
                       seen: object) -> tuple[int, object]:
    state, user = request.app[STATE], current_user(request)
    owner = body.get("owner") or None
    if owner is not None and not may_triage(request, str(owner)):
        return 400, "give the case to a console user who may triage"
    async with request.app[TRIAGE_LOCK]:
        held = state.case_book.get(view.case_id)
        if seen is not None and seen != (held.version if held else 0):
            return 409, "someone else changed this case meanwhile: reload it"
        try:
            record = decide_case(held, view.case_id, view.user_id, view.alert_ids,
                                 str(body.get("action", "")), by=user.username, role=user.role,
                                 at=_iso(None), note=str(body.get("note") or ""),
                                 owner=owner and str(owner),
                                 outcome=body.get("outcome") and str(body.get("outcome")))
        except CaseError as e:
            return 400, str(e)
        try:
            await request.app[CASE_RECORDER](record)  # type: ignore[operator]
        except Exception:
            return 503, "the case could not be recorded (broker unavailable); nothing changed"
        state.apply_case(record)
    return 200, record


# --- a member's timeline ----------------------------------------------------------
def _window(request: web.Request, newest_ms: int | None,
            days: float = TIMELINE_DAYS) -> tuple[int, int]:
    try:
        start, end = _time(request.query.get("from"), "from"), _time(request.query.get("to"),
                                                                     "to")
    except QueryError as e:
        raise bad_query(e) from None
    if end is None:
        end = newest_ms if newest_ms is not None else int(dt.datetime.now(dt.UTC).timestamp()
                                                          * 1000)
    if start is None:
        start = end - int(days * DAY_MS)
    if start > end:
        raise bad_query(QueryError("from is after to"))
    return start, end


def _history(request: web.Request) -> Any:
    history = request.app[STATE].history
    if history is None:
        raise web.HTTPServiceUnavailable(
            text='{"error": "this console keeps no access history"}',
            content_type="application/json")
    return history


def _iso_ms(ms: int) -> str:
    return _iso(ms / 1000)


async def timeline(request: web.Request) -> web.Response:
    state, history = request.app[STATE], _history(request)
    user_id = request.match_info["user_id"]
    start, end = _window(request, await asyncio.to_thread(history.newest_of, user_id))
    q = request.query
    filters = {k: q.get(k) or None for k in ("system", "action", "subject_type")}
    limit = max(1, min(int(q.get("limit", TIMELINE_MAX)) if q.get("limit", "").isdigit()
                       else TIMELINE_MAX, TIMELINE_MAX))
    rows, total = await asyncio.to_thread(history.timeline, user_id, start, end, limit=limit,
                                          **filters)
    hourly = await asyncio.to_thread(history.hourly, user_id, start, end)
    offered = await asyncio.to_thread(history.choices, user_id, start, end)
    alerts = state.alerts.of_member(user_id)
    cited: dict[str, list[str]] = {}
    for a in alerts:
        for eid in a.event_ids:
            cited.setdefault(eid, []).append(a.alert_id)
    events = []
    for ev in sorted(rows, key=lambda e: (e.t_ms, e.event_id)):
        row = judged(state, ev)
        row["alert_ids"] = cited.get(ev.event_id, [])
        events.append(row)
    info = state.staff.members.get(user_id)
    in_window = [a for a in alerts if _overlaps(a, start, end)]
    member_cases = [case_json(state, v) for v in state.case_views.values()
                    if v.user_id == user_id]
    return web.json_response({
        "user_id": user_id, "member": msgspec.to_builtins(info) if info else None,
        "from": _iso_ms(start), "to": _iso_ms(end), "events": events, "total": total,
        "truncated": total > len(events),
        "alerts": [{"alert_id": a.alert_id, "first_seen": a.first_seen,
                    "last_seen": a.last_seen, "rule_id": a.rule_id, "title": a.title,
                    "severity": a.severity, "score": a.score,
                    "status": state.triage.status_of(a.alert_id),
                    "case_id": state.case_of.get(a.alert_id)} for a in in_window],
        "cases": sorted(member_cases, key=lambda c: c["first_seen"]),
        "hourly": [[_iso_ms(h), n] for h, n in hourly],
        "choices": offered,
    })


def _overlaps(a: Alert, start_ms: int, end_ms: int) -> bool:
    from console.cases import seconds

    return seconds(a.last_seen) * 1000 >= start_ms and seconds(a.first_seen) * 1000 <= end_ms


# --- a subject's side ------------------------------------------------------------
async def subject(request: web.Request) -> web.Response:
    state, history = request.app[STATE], _history(request)
    subject_id = request.match_info["subject_id"]
    q = request.query
    start = _time(q.get("from"), "from") if q.get("from") else None
    end = _time(q.get("to"), "to") if q.get("to") else None
    rows, total = await asyncio.to_thread(history.subject, subject_id, start, end,
                                          SUBJECT_MAX)
    alert_ids = state.by_subject.get(subject_id, set())
    alerts = sorted((a for a in (state.alerts.get(i) for i in alert_ids) if a is not None),
                    key=lambda a: a.last_seen, reverse=True)
    cited: dict[str, list[str]] = {}
    for a in alerts:
        for eid in a.event_ids:
            cited.setdefault(eid, []).append(a.alert_id)
    accesses = []
    for ev in rows:
        row = judged(state, ev)
        row["alert_ids"] = cited.get(ev.event_id, [])
        row["case_ids"] = sorted({c for c in (state.case_of.get(a) for a in row["alert_ids"])
                                  if c})
        accesses.append(row)
    return web.json_response({
        "subject": {"subject_id": subject_id, **_protection(state, subject_id)},
        "accesses": accesses, "total": total, "truncated": total > len(accesses),
        "people": len({r["user_id"] for r in accesses}),
        "unjustified": sum(1 for r in accesses if not r["justified"]),
        "alerts": [summary(state, a) for a in alerts],
    })


def _protection(state: ConsoleState, subject_id: str) -> dict[str, Any]:
    flags: list[str] = []
    subject_type = None
    if state.protected is not None:
        held = state.protected.get(subject_id)
        if held is not None:
            subject_type, flags = held.subject_type, list(held.flags)
    watch = None
    if state.watchlist is not None:
        entry = state.watchlist.get(subject_id)
        watch = msgspec.to_builtins(entry) if entry is not None else None
    return {"flags": flags, "subject_type": subject_type, "watch": watch}


# --- the watch-list ------------------------------------------------------------------
async def watchlist(request: web.Request) -> web.Response:
    state = request.app[STATE]
    days = float(WATCH_DAYS)
    raw = request.query.get("days", "")
    if raw:
        try:
            days = max(0.1, min(float(raw), 366.0))
        except ValueError:
            raise bad_query(QueryError("days is a number")) from None
    entries = _entries(state)
    opens: list[dict[str, Any]] = []
    truncated = False
    if state.history is not None and entries:
        stats = await asyncio.to_thread(state.history.stats)
        newest = stats.get("newest_ms") or int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        since = int(newest - days * DAY_MS)
        found = await asyncio.to_thread(state.history.opens_of,
                                        [e["subject_id"] for e in entries], since, WATCH_MAX * 4)
        for ev in found:
            row = judged(state, ev)
            if not row["justified"]:
                opens.append(row)
            if len(opens) >= WATCH_MAX:
                break
        # Cut short: by the list's own cap, or by reading only the newest opens of all.
        truncated = len(opens) >= WATCH_MAX or len(found) >= WATCH_MAX * 4
    return web.json_response({"subjects": entries, "opens": opens, "days": days,
                              "truncated": truncated,
                              "may_edit": current_user(request).role == "lead"})


def _entries(state: ConsoleState) -> list[dict[str, Any]]:
    if state.watchlist is None:
        return []
    return [msgspec.to_builtins(e) for e in state.watchlist.entries()]


async def watch_add(request: web.Request) -> web.Response:
    return await _watch(request, add=True)


async def watch_remove(request: web.Request) -> web.Response:
    return await _watch(request, add=False)


async def _watch(request: web.Request, *, add: bool) -> web.Response:
    if current_user(request).role != "lead":
        return _error(403, "only a lead may change the watch-list")
    state = request.app[STATE]
    if state.watchlist is None:
        return _error(503, "this console keeps no watch-list")
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    subject_id = str(body.get("subject_id") or "").strip()
    if not subject_id or len(subject_id) > 128:
        return _error(400, "give the subject id (1 to 128 characters)")
    value = None
    if add:
        try:
            entry = watch_entry(subject_id, str(body.get("reason") or ""),
                                by=current_user(request).username, at=_iso(None))
        except WatchError as e:
            return _error(400, str(e))
        value = msgspec.json.encode(entry)
    elif subject_id not in state.watchlist.added:
        return _error(400, "an analyst did not add this subject; its reference flags keep it "
                           "on the watch-list")
    try:
        await request.app[WATCH_RECORDER](subject_id, value)  # type: ignore[operator]
    except Exception:
        return _error(503, "the watch-list could not be changed (broker unavailable)")
    state.watchlist.apply_record(subject_id.encode(), value)
    return web.json_response({"subjects": _entries(state)})


# --- the evidence pack ------------------------------------------------------------
async def evidence_pack(request: web.Request) -> web.Response:
    from console.exports import evidence_filename
    from console.exports import evidence_pack as pack

    state, view = request.app[STATE], _case(request)
    alerts = _case_alerts(state, view)
    timeline_rows: list[Any] = []
    timeline_total = 0
    window = None
    if state.history is not None and view.first_seen:
        from console.cases import seconds

        start = int((seconds(view.first_seen) - 86400) * 1000)
        end = int((seconds(view.last_seen) + 86400) * 1000)
        rows, timeline_total = await asyncio.to_thread(state.history.timeline, view.user_id,
                                                       start, end, limit=PACK_TIMELINE_MAX)
        timeline_rows = [judged(state, ev) for ev in sorted(rows, key=lambda e: e.t_ms)]
        window = {"from": _iso_ms(start), "to": _iso_ms(end)}
    decisions = {a.alert_id: d for a in alerts if (d := state.triage.get(a.alert_id))}
    reference = {"window": window, **_reference_facts(state, view, timeline_rows)}
    body = pack(case=view, alerts=alerts, decisions=decisions, timeline=timeline_rows,
                member=state.staff.members.get(view.user_id), reference=reference,
                generated_by=current_user(request).username, at=_iso(None),
                timeline_total=timeline_total)
    return web.Response(body=body, content_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{evidence_filename(view.case_id)}"'})


def _reference_facts(state: ConsoleState, view: CaseView,
                     timeline_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The reference data the judgements rest on: the member's directory entry, each
    case reference cited and each protected subject opened."""
    info = state.staff.members.get(view.user_id)
    refs = sorted({r["case_ref"] for r in timeline_rows if r.get("case_ref")})
    cases = {}
    if state.case_facts is not None:
        for ref in refs:
            cases[ref] = state.case_facts.describe(ref)
    subjects = sorted({r["subject_id"] for r in timeline_rows if r.get("subject_id")})
    protected = {sid: _protection(state, sid) for sid in subjects}
    return {"member": msgspec.to_builtins(info) if info else None, "cases_cited": cases,
            "protected_subjects": {k: v for k, v in protected.items()
                                   if v["flags"] or v["watch"]}}
