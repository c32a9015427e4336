"""The JSON API, the live feed (server-sent events) and the exports.

Query strings carry only filter choices (severity, rule id, area, status, sort);
a member is reached through one of their alert ids, never by name or id in a URL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import msgspec
from aiohttp import web

from accesswatch.core import Alert
from console.ecs import to_ecs
from console.sessions import SESSION_COOKIE
from console.state import SEVERITIES, SORTS, detail, listing, summary
from console.triage import STATUSES, TriageError, decide, false_positives, false_positives_csv
from console.web import (
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


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/api/me", me)
    r.add_get("/api/alerts", alerts)
    r.add_get("/api/alerts/{alert_id}", alert_detail)
    r.add_get("/api/alerts/{alert_id}/ecs", alert_ecs)
    r.add_post("/api/alerts/{alert_id}/triage", triage)
    r.add_get("/api/stream", stream)
    r.add_get("/api/ecs", ecs_all)
    r.add_get("/api/false-positives.csv", fp_csv)
    r.add_get("/api/false-positives.json", fp_json)


async def me(request: web.Request) -> web.Response:
    user, session = current_user(request), current_session(request)
    return web.json_response({
        "username": user.username, "role": user.role,
        "permissions": sorted(user.permissions),
        "csrf_token": request.app[SIGNER].csrf_token(session),
        "session_expires": _iso(session.expires),
        "assignees": sorted(u.username for u in request.app[USERS].by_name.values()
                            if u.may("triage")),
    })


async def alerts(request: web.Request) -> web.Response:
    q = request.query
    severity, status, sort = q.get("severity", ""), q.get("status", ""), q.get("sort", "risk")
    if (severity and severity not in SEVERITIES) or (status and status not in STATUSES) \
            or sort not in SORTS:
        raise web.HTTPBadRequest(text='{"error": "unknown filter value"}',
                                 content_type="application/json")
    try:
        limit = max(1, min(int(q.get("limit", "500")), 5000))
    except ValueError:
        limit = 500
    return web.json_response(listing(request.app[STATE], severity=severity,
                                     rule=q.get("rule", "")[:64], area=q.get("area", "")[:128],
                                     status=status, sort=sort, limit=limit))


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
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError
    except ValueError:
        return _error(400, "send a JSON object")
    assignee = body.get("assignee") or None
    if assignee is not None and not (request.app[USERS].get(str(assignee))
                                     and request.app[USERS].by_name[str(assignee)].may("triage")):
        return _error(400, "assign to a console user who may triage")
    async with request.app[TRIAGE_LOCK]:  # decide on the latest version, then write, one at a time
        held = state.triage.get(alert.alert_id)
        seen = body.get("version")
        if seen is not None and seen != (held.version if held else 0):
            return _error(409, "someone else decided on this alert meanwhile: reload it")
        try:
            decision = decide(held, alert.alert_id, str(body.get("action", "")),
                              by=current_user(request).username, at=_iso(None),
                              note=str(body.get("note") or ""), assignee=assignee)
        except TriageError as e:
            return _error(400, str(e))
        try:
            await request.app[RECORDER](decision, decision.history[-1])  # type: ignore[operator]
        except Exception:  # the broker did not confirm: nothing was decided
            return _error(503, "the decision could not be recorded (broker unavailable); "
                               "nothing was changed")
        state.apply_decision(decision)
    return web.json_response({"triage": msgspec.to_builtins(decision),
                              "summary": summary(state, alert)})


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``alert`` (a feed row, new or changed), ``hello`` on connect."""
    state, signer = request.app[STATE], request.app[SIGNER]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    q = state.hub.subscribe()
    try:
        await resp.write(b"retry: 1000\nevent: hello\ndata: {\"ready\": %s}\n\n"
                         % (b"true" if state.ready else b"false"))
        while True:
            try:
                kind, data = await asyncio.wait_for(q.get(), KEEPALIVE)
            except TimeoutError:
                # An expired or signed-out session ends its stream; the browser's
                # reconnect then meets a 401 and goes to the sign-in page.
                if signer.read(request.cookies.get(SESSION_COOKIE)) is None:
                    break
                await resp.write(b": keepalive\n\n")
                continue
            if kind == "close":
                break
            await resp.write(f"event: {kind}\ndata: {data}\n\n".encode())
        await resp.write_eof()
    except ConnectionResetError:
        pass  # the browser went away
    finally:
        state.hub.unsubscribe(q)
    return resp


async def ecs_all(request: web.Request) -> web.StreamResponse:
    """Every alert held, as ECS NDJSON (newest last)."""
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
