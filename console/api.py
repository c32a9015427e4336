"""The JSON API for alerts, the live feed (server-sent events) and the alert exports.

Listing is done on the server (``console.alert_index``): a page of rows, the
total that match and a cursor for the next page.  Members, subjects and cases
(``console.api_workspace``) are reached by their opaque ids; names, postcodes
and query text never appear in a URL or a response.  Request logs carry only
the route template, never the path or query string.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import msgspec
from aiohttp import web

from accesswatch.core import Alert
from console.alert_index import PAGE_DEFAULT, Query, QueryError
from console.ecs import to_ecs
from console.exports import alerts_csv
from console.sessions import SESSION_COOKIE, session_user
from console.state import SEVERITIES, ConsoleState, detail, summary
from console.triage import STATUSES, TriageError, decide, false_positives, false_positives_csv
from console.web import (
    OIDC,
    RECORDER,
    SIGNER,
    STATE,
    TRIAGE_LOCK,
    USERS,
    current_session,
    current_user,
    require,
)

KEEPALIVE = 15.0
SESSION_CHECK_S = 0.5
BULK_MAX = 500
# The old ``sort`` values, still accepted: risk (highest score first) and newest.
SORT_ALIASES = {"risk": ("score", "desc"), "newest": ("created_at", "desc")}


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/api/me", me)
    r.add_get("/api/alerts", alerts)
    r.add_get("/api/alerts.csv", alerts_csv_export)
    r.add_get("/api/alerts.ndjson", alerts_ndjson_export)
    r.add_post("/api/alerts/bulk", bulk_triage)
    r.add_get("/api/alerts/{alert_id}", alert_detail)
    r.add_get("/api/alerts/{alert_id}/ecs", alert_ecs)
    r.add_post("/api/alerts/{alert_id}/triage", triage)
    r.add_get("/api/stream", stream)
    r.add_get("/api/ecs", ecs_all)
    r.add_get("/api/false-positives.csv", fp_csv)
    r.add_get("/api/false-positives.json", fp_json)


async def me(request: web.Request) -> web.Response:
    user, session = current_user(request), current_session(request)
    history = request.app[STATE].history
    stats = await asyncio.to_thread(history.stats) if history is not None else None
    return web.json_response({
        "history": stats,
        "username": user.username, "role": user.role,
        "permissions": sorted(user.permissions),
        "csrf_token": request.app[SIGNER].csrf_token(session),
        "session_expires": _iso(session.expires),
        "assignees": sorted(u.username for u in request.app[USERS].by_name.values()
                            if u.may("triage")),
    })


def alert_query(request: web.Request) -> Query:
    """The listing a request asks for; a ``QueryError`` says what is wrong with it."""
    q = request.query
    sort, direction = q.get("sort", "score"), q.get("dir", "desc")
    if sort in SORT_ALIASES:
        sort, direction = SORT_ALIASES[sort]
    severity, status = q.get("severity", ""), q.get("status", "")
    if severity and severity not in SEVERITIES:
        raise QueryError(f"severity is one of {', '.join(SEVERITIES)}")
    if status and status not in STATUSES:
        raise QueryError(f"status is one of {', '.join(STATUSES)}")
    equal = {"severity": severity, "status": status, "rule_id": q.get("rule", "")[:64],
             "area": q.get("area", "")[:128], "case_id": q.get("case", "")[:64],
             "user_id": q.get("member", "")[:64],
             "assignee": q.get("assignee", "")[:64]}
    if equal["assignee"] == "me":
        equal["assignee"] = current_user(request).username
    return Query(sort=sort, dir=direction, limit=_limit(q.get("limit")),
                 cursor=q.get("cursor") or None, text=q.get("q", "").strip()[:200],
                 start_ms=_time(q.get("from"), "from"), end_ms=_time(q.get("to"), "to"),
                 equal={k: v for k, v in equal.items() if v})


def _limit(raw: str | None) -> int:
    try:
        return max(1, min(int(raw or PAGE_DEFAULT), 500))
    except ValueError:
        return PAGE_DEFAULT


def _time(raw: str | None, name: str) -> int | None:
    if not raw:
        return None
    try:
        when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as e:
        raise QueryError(f"{name} is a date and time such as 2026-03-02T09:00:00Z") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def bad_query(e: QueryError) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=msgspec.json.encode({"error": str(e)}).decode(),
                              content_type="application/json")


async def alerts(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        page = state.index.alerts(alert_query(request))
    except QueryError as e:
        raise bad_query(e) from None
    for row in page.rows:
        row["rule_name"] = state.rule_names.get(row["rule_id"], row["rule_id"])
    return web.json_response({
        "alerts": page.rows, "total": page.total, "held": len(state.alerts.alerts),
        "dropped": state.alerts.dropped, "limit": state.alerts.limit,
        "next_cursor": page.next_cursor, "ready": state.ready, "choices": choices(state),
    })


def choices(state: ConsoleState) -> dict[str, Any]:
    """What each filter offers, from what is held."""
    index = state.index
    held = set(index.distinct("alerts", "severity"))
    return {
        "severity": [s for s in SEVERITIES if s in held],
        "rule": [{"id": r, "name": state.rule_names.get(r, r)}
                 for r in index.distinct("alerts", "rule_id")],
        "area": index.distinct("alerts", "area"),
        "status": list(STATUSES),
        "assignee": index.distinct("alerts", "assignee"),
    }


async def alerts_csv_export(request: web.Request) -> web.StreamResponse:
    """The filtered view, every matching row, as CSV (streamed)."""
    state = request.app[STATE]
    try:
        rows = state.index.alert_rows(alert_query(request))
    except QueryError as e:
        raise bad_query(e) from None
    resp = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="alerts.csv"'})
    await resp.prepare(request)

    def named(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "rule_name": state.rule_names.get(row["rule_id"], row["rule_id"])}

    lines = alerts_csv(named(r) for r in rows)
    buf: list[str] = []
    for line in lines:
        buf.append(line)
        if len(buf) >= 500:
            await resp.write("".join(buf).encode())
            buf = []
    await resp.write("".join(buf).encode())
    await resp.write_eof()
    return resp


async def alerts_ndjson_export(request: web.Request) -> web.StreamResponse:
    """The filtered view as ECS NDJSON, in the view's order."""
    state = request.app[STATE]
    try:
        rows = state.index.alert_rows(alert_query(request))
    except QueryError as e:
        raise bad_query(e) from None
    resp = web.StreamResponse(headers={
        "Content-Type": "application/x-ndjson",
        "Content-Disposition": 'attachment; filename="alerts.ecs.ndjson"'})
    await resp.prepare(request)
    buf = bytearray()
    for row in rows:
        alert = state.alerts.get(row["alert_id"])
        if alert is not None:
            buf += msgspec.json.encode(_ecs(request, alert)) + b"\n"
        if len(buf) > 256 * 1024:
            await resp.write(bytes(buf))
            buf.clear()
    await resp.write(bytes(buf))
    await resp.write_eof()
    return resp


def _alert(request: web.Request) -> Alert:
    alert = request.app[STATE].alerts.get(request.match_info["alert_id"])
    if alert is None:
        raise web.HTTPNotFound(text='{"error": "no such alert"}', content_type="application/json")
    return alert


async def alert_detail(request: web.Request) -> web.Response:
    return web.json_response(detail(request.app[STATE], _alert(request)))


async def alert_ecs(request: web.Request) -> web.Response:
    return web.json_response(_ecs(request, _alert(request)))


def _ecs(request: web.Request, alert: Alert) -> dict[str, Any]:
    state = request.app[STATE]
    return to_ecs(alert, member=state.staff.members.get(alert.user_id),
                  decision=state.triage.get(alert.alert_id))


async def triage(request: web.Request) -> web.Response:
    require(request, "triage")
    state, alert = request.app[STATE], _alert(request)
    if not state.caught_up.get("triage"):
        return _error(503, "decisions are still being read back; try again in a moment")
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    status, out = await _decide(request, alert, body, seen=body.get("version"))
    if status != 200:
        return _error(status, str(out))
    return web.json_response({"triage": msgspec.to_builtins(out),
                              "summary": summary(state, alert)})


async def bulk_triage(request: web.Request) -> web.Response:
    """One action on many alerts; each succeeds or fails on its own, and says which."""
    require(request, "triage")
    state = request.app[STATE]
    if not state.caught_up.get("triage"):
        return _error(503, "decisions are still being read back; try again in a moment")
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    ids = bulk_ids(body, "alert_ids", "alert")
    if isinstance(ids, web.Response):
        return ids
    results: list[dict[str, Any]] = []
    for alert_id in ids:
        alert = state.alerts.get(alert_id)
        if alert is None:
            results.append({"alert_id": alert_id, "ok": False, "error": "no such alert"})
            continue
        status, out = await _decide(request, alert, body, seen=None)
        results.append({"alert_id": alert_id, "ok": status == 200,
                        **({"summary": summary(state, alert)} if status == 200
                           else {"error": str(out)})})
    return web.json_response({"results": results,
                              "done": sum(1 for r in results if r["ok"])})


def bulk_ids(body: dict[str, Any], key: str, noun: str) -> list[str] | web.Response:
    """The ids a bulk request names, each once, in order; or the 400 saying what is wrong."""
    ids = body.get(key)
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        return _error(400, f"give {key}: a list of {noun} ids")
    if len(ids) > BULK_MAX:
        return _error(400, f"at most {BULK_MAX} {noun}s at once")
    return list(dict.fromkeys(ids))


def may_triage(request: web.Request, username: str) -> bool:
    """Whether ``username`` is a console user who may triage (an assignee, a case owner)."""
    user = request.app[USERS].get(username)
    return user is not None and user.may("triage")


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError
    except ValueError:
        return _error(400, "send a JSON object")
    return body


async def _decide(request: web.Request, alert: Alert, body: dict[str, Any],
                  seen: object) -> tuple[int, object]:
    """Record one triage step on ``alert``: (200, decision) or (status, what went wrong)."""
    state = request.app[STATE]
    assignee = body.get("assignee") or None
    if assignee is not None and not may_triage(request, str(assignee)):
        return 400, "assign to a console user who may triage"
    async with request.app[TRIAGE_LOCK]:  # decide on the latest version, then write, one at a time
        held = state.triage.get(alert.alert_id)
        if seen is not None and seen != (held.version if held else 0):
            return 409, "someone else decided on this alert meanwhile: reload it"
        try:
            decision = decide(held, alert.alert_id, str(body.get("action", "")),
                              by=current_user(request).username, at=_iso(None),
                              note=str(body.get("note") or ""), assignee=assignee)
        except TriageError as e:
            return 400, str(e)
        try:
            await request.app[RECORDER](decision, decision.history[-1])  # type: ignore[operator]
        except Exception:  # the broker did not confirm: nothing was decided
            return 503, ("the decision could not be recorded (broker unavailable); "
                         "nothing was changed")
        state.apply_decision(decision)
    return 200, decision


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``alert`` (a feed row, new or changed), ``hello`` on connect."""
    state, signer, users = request.app[STATE], request.app[SIGNER], request.app[USERS]
    cookie, sso = request.cookies.get(SESSION_COOKIE), OIDC in request.app
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    q = state.hub.subscribe()
    try:
        await resp.write(b"retry: 1000\nevent: hello\ndata: {\"ready\": %s}\n\n"
                         % (b"true" if state.ready else b"false"))
        checked = wrote = time.monotonic()
        while True:
            try:
                kind, data = await asyncio.wait_for(q.get(), SESSION_CHECK_S)
            except TimeoutError:
                kind, data = "", ""
            now = time.monotonic()
            # Sign-out, expiry, a removed user or a changed role or password ends the
            # stream within SESSION_CHECK_S, busy feed or quiet; the browser's reconnect
            # then meets a 401 and goes to the sign-in page.
            if not kind or now - checked >= SESSION_CHECK_S:
                if session_user(signer, users, cookie, sso=sso) is None:
                    break
                checked = now
            if kind == "close":
                break
            if kind:
                await resp.write(f"event: {kind}\ndata: {data}\n\n".encode())
                wrote = now
            elif now - wrote >= KEEPALIVE:
                await resp.write(b": keepalive\n\n")
                wrote = now
        await resp.write_eof()
    except ConnectionResetError:
        pass  # the browser went away
    finally:
        state.hub.unsubscribe(q)
    return resp


async def ecs_all(request: web.Request) -> web.StreamResponse:
    """Every alert held, as ECS NDJSON (in arrival order)."""
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    for alert in list(request.app[STATE].alerts.alerts.values()):
        await resp.write(msgspec.json.encode(_ecs(request, alert)) + b"\n")
    await resp.write_eof()
    return resp


def _fp_rows(request: web.Request) -> list[dict[str, object]]:
    require(request, "export")
    state = request.app[STATE]
    return false_positives(state.triage, state.alerts.alerts)


async def fp_csv(request: web.Request) -> web.Response:
    body = false_positives_csv(_fp_rows(request))
    return web.Response(text=body, content_type="text/csv", headers={
        "Content-Disposition": 'attachment; filename="false-positives.csv"'})


async def fp_json(request: web.Request) -> web.Response:
    return web.json_response(_fp_rows(request), headers={
        "Content-Disposition": 'attachment; filename="false-positives.json"'})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _iso(t: float | None) -> str:
    when = dt.datetime.now(dt.UTC) if t is None else dt.datetime.fromtimestamp(t, dt.UTC)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")
