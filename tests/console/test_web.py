"""The HTTP app without a broker: who may see what, CSRF, roles, logs, the live feed."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from console.sessions import SESSION_COOKIE, SessionSigner
from console.web import PUBLIC
from tests.console.helpers import (
    QUERY_TEXT,
    SECRET,
    FakeRecorder,
    alert,
    make_app,
    make_state,
    run,
    sign_in,
)

Client = TestClient[Any, Any]
SAMPLE = {"alert_id": "aw-00000000000000000001", "name": "app.js", "case_id": "C-0123456789ab",
          "user_id": "E00412", "subject_id": "P-204"}


def routes() -> list[tuple[str, str, str]]:
    """(method, template, a concrete path) for every route the app serves."""
    out = []
    for route in make_app().router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD":
            continue
        template = resource.canonical
        path = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], template)
        out.append((route.method, template, path))
    return out


def test_the_route_table_is_what_this_test_covers() -> None:
    templates = {t for _, t, _ in routes()}
    assert {"/", "/api/alerts", "/api/alerts/{alert_id}", "/api/alerts/{alert_id}/triage",
            "/api/stream", "/api/me", "/api/ecs", "/api/false-positives.csv",
            "/static/{name}", "/logout", "/api/alerts.csv", "/api/alerts.ndjson",
            "/api/alerts/bulk", "/api/cases", "/api/cases/{case_id}",
            "/api/cases/{case_id}/evidence.zip", "/api/members/{user_id}/timeline",
            "/api/subjects/{subject_id}", "/api/watchlist"} <= templates


def _forged_cookies() -> list[dict[str, str] | None]:
    valid, _ = SessionSigner(SECRET, 3600).issue("lena")
    expired, _ = SessionSigner(SECRET, 3600, clock=lambda: 0.0).issue("lena")
    other_key, _ = SessionSigner(b"another-secret-another-secret", 3600).issue("lena")
    ghost, _ = SessionSigner(SECRET, 3600).issue("somebody-not-in-the-users-file")
    return [None, {SESSION_COOKIE: "garbage"}, {SESSION_COOKIE: expired},
            {SESSION_COOKIE: other_key}, {SESSION_COOKIE: ghost},
            {SESSION_COOKIE: valid[:-3] + "abc"}]


@pytest.mark.parametrize("cookies", _forged_cookies(),
                         ids=["none", "garbage", "expired", "other-key", "unknown-user", "bad-mac"])
def test_every_page_and_api_refuses_a_request_without_a_valid_session(
        cookies: dict[str, str] | None) -> None:
    async def body(client: Client) -> list[tuple[str, str, int]]:
        seen = []
        if cookies:
            client.session.cookie_jar.update_cookies(cookies)
        unmatched = [("GET", "(unmatched)", "/no/such/page"), ("GET", "(unmatched)", "/api/x")]
        for method, template, path in [*routes(), *unmatched]:
            if (method, template) in PUBLIC:
                continue
            resp = await client.request(method, path, allow_redirects=False,
                                        headers={"X-CSRF-Token": "x"})
            text = await resp.text()
            assert "E00412" not in text and "aw-0000" not in text, (method, path)
            if resp.status == 303:
                assert resp.headers["Location"] == "/login"
            seen.append((method, path, resp.status))
        return seen

    seen = run(make_app(), body)
    assert len(seen) >= 14
    for method, path, status in seen:
        if method == "GET" and not path.startswith("/api/"):
            assert status == 303, (method, path, status)  # a page: to the sign-in page
        else:
            assert status == 401, (method, path, status)


def test_only_the_login_page_healthz_and_metrics_are_public() -> None:
    # The single sign-on routes are public but exist only when it is configured.
    assert {("GET", "/login"), ("POST", "/login"), ("GET", "/healthz"),
            ("GET", "/metrics"), ("GET", "/login/oidc"), ("GET", "/oidc/callback")} == PUBLIC

    async def body(client: Client) -> None:
        health = await client.get("/healthz")
        assert health.status == 200 and set(await health.json()) >= {"ok"}
        page = await client.get("/login")
        assert page.status == 200 and 'name="password"' in await page.text()

    run(make_app(), body)


def test_sign_in_sets_a_strict_httponly_cookie_and_opens_the_api() -> None:
    async def body(client: Client) -> None:
        page = await (await client.get("/login")).text()
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        wrong = await client.post("/login", data={"username": "lena", "password": "nope",
                                                  "csrf": token}, allow_redirects=False)
        assert wrong.status == 401 and "Wrong user name or password" in await wrong.text()
        page = await (await client.get("/login")).text()
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        ok = await client.post("/login", data={"username": "lena", "password": "lead-password-1",
                                               "csrf": token}, allow_redirects=False)
        assert ok.status == 303 and ok.headers["Location"] == "/"
        cookie = next(v for v in ok.headers.getall("Set-Cookie") if v.startswith(SESSION_COOKIE))
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert "Max-Age=3600" in cookie
        me = await (await client.get("/api/me")).json()
        assert me["username"] == "lena" and me["role"] == "lead"
        index = await client.get("/")
        assert index.status == 200 and "accesswatch console" in await index.text()

    run(make_app(), body)


def test_sign_in_without_the_form_token_is_refused() -> None:
    async def body(client: Client) -> None:
        resp = await client.post("/login", data={"username": "lena",
                                                 "password": "lead-password-1"},
                                 allow_redirects=False)
        assert resp.status == 403
        assert (await client.get("/api/me")).status == 401

    run(make_app(), body)


def test_repeated_failures_are_throttled() -> None:
    async def body(client: Client) -> int:
        status = 0
        for _ in range(6):
            page = await (await client.get("/login")).text()
            token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
            resp = await client.post("/login", data={"username": "lena", "password": "guess",
                                                     "csrf": token}, allow_redirects=False)
            status = resp.status
        return status

    assert run(make_app(), body) == 429


def test_posts_need_the_sessions_csrf_token_and_our_origin() -> None:
    recorder = FakeRecorder()

    async def body(client: Client) -> None:
        token = await sign_in(client, "ana")
        url = "/api/alerts/aw-00000000000000000001/triage"
        payload = {"action": "acknowledge"}
        assert (await client.post(url, json=payload)).status == 403
        assert (await client.post(url, json=payload,
                                  headers={"X-CSRF-Token": "forged"})).status == 403
        assert (await client.post(url, json=payload, headers={
            "X-CSRF-Token": token, "Origin": "https://evil.example"})).status == 403
        assert recorder.written == []
        ok = await client.post(url, json=payload, headers={"X-CSRF-Token": token})
        assert ok.status == 200, await ok.text()
        assert (await client.post("/logout", headers={"X-CSRF-Token": "x"})).status == 403

    run(make_app(recorder=recorder), body)
    assert len(recorder.written) == 1


def test_sign_out_ends_the_session_for_good() -> None:
    async def body(client: Client) -> None:
        token = await sign_in(client)
        jar = client.session.cookie_jar
        cookie = jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
        assert (await client.post("/logout", headers={"X-CSRF-Token": token})).status == 200
        client.session.cookie_jar.update_cookies({SESSION_COOKIE: cookie})  # replay the old one
        assert (await client.get("/api/me")).status == 401

    run(make_app(), body)


def test_roles_limit_what_a_user_may_do() -> None:
    async def body(client: Client) -> None:
        token = await sign_in(client, "vic")
        assert (await client.get("/api/alerts")).status == 200
        resp = await client.post("/api/alerts/aw-00000000000000000001/triage",
                                 json={"action": "acknowledge"}, headers={"X-CSRF-Token": token})
        assert resp.status == 403
        assert (await client.get("/api/false-positives.csv")).status == 403
        assert (await client.get("/api/false-positives.json")).status == 403

    run(make_app(), body)


def test_triage_is_recorded_then_applied_with_who_and_when() -> None:
    recorder, state = FakeRecorder(), make_state()

    async def body(client: Client) -> None:
        token = await sign_in(client, "ana")
        url = "/api/alerts/aw-00000000000000000001/triage"
        h = {"X-CSRF-Token": token}
        no_note = await client.post(url, json={"action": "misuse"}, headers=h)
        assert no_note.status == 400 and "note" in (await no_note.json())["error"]
        bad_assignee = await client.post(url, json={"action": "assign", "assignee": "vic"},
                                         headers=h)
        assert bad_assignee.status == 400
        done = await client.post(url, json={"action": "misuse", "note": "no case", "version": 0},
                                 headers=h)
        assert done.status == 200
        out = await done.json()
        assert out["triage"]["status"] == "misuse" and out["triage"]["by"] == "ana"
        assert out["summary"]["status"] == "misuse"
        stale = await client.post(url, json={"action": "justified", "note": "x", "version": 0},
                                  headers=h)
        assert stale.status == 409
        recorder.fail = True
        down = await client.post(url, json={"action": "justified", "note": "x", "version": 1},
                                 headers=h)
        assert down.status == 503
        missing = await client.post("/api/alerts/aw-nope/triage", json={"action": "acknowledge"},
                                    headers=h)
        assert missing.status == 404

    run(make_app(state, recorder), body)
    assert [d.status for d, _ in recorder.written] == ["misuse"]
    assert recorder.written[0][1].by == "ana" and recorder.written[0][1].at.endswith("Z")
    assert state.triage.status_of("aw-00000000000000000001") == "misuse"


def test_triage_waits_until_decisions_are_read_back() -> None:
    state = make_state()
    state.caught_up["triage"] = False

    async def body(client: Client) -> int:
        token = await sign_in(client, "ana")
        resp = await client.post("/api/alerts/aw-00000000000000000001/triage",
                                 json={"action": "acknowledge"}, headers={"X-CSRF-Token": token})
        assert (await client.get("/healthz")).status == 503
        return resp.status

    assert run(make_app(state), body) == 503


def test_the_feed_filters_and_sorts() -> None:
    async def body(client: Client) -> None:
        await sign_in(client)
        rows = (await (await client.get("/api/alerts")).json())["alerts"]
        assert [r["score"] for r in rows] == [85.0, 70.0]
        newest = (await (await client.get("/api/alerts?sort=newest")).json())["alerts"]
        assert newest[0]["created_at"] == "2026-03-02T10:00:00Z"
        high = (await (await client.get("/api/alerts?severity=high")).json())
        assert [r["rule_id"] for r in high["alerts"]] == ["AW-002"]
        assert high["choices"]["area"] == ["North"]
        north = (await (await client.get("/api/alerts?area=North&status=new")).json())["alerts"]
        assert len(north) == 2
        assert (await client.get("/api/alerts?severity=huge")).status == 400

    run(make_app(), body)


def test_detail_shows_reasons_and_evidence_but_never_the_query_text() -> None:
    async def body(client: Client) -> None:
        await sign_in(client)
        resp = await client.get("/api/alerts/aw-00000000000000000001")
        text = await resp.text()
        assert QUERY_TEXT not in text
        d = await resp.json()
        assert d["alert"]["reasons"][0].startswith("opened the person record P-204")
        assert [(e["event_id"], e["system"], e["action"], e["subject_id"]) for e in d["evidence"]] \
            == [("ev-1", "PNC", "view", "P-204"), ("ev-2", "PNC", "view", "P-204")]
        assert d["member"]["area"] == "North"
        assert [h["alert_id"] for h in d["history"]] == ["aw-00000000000000000001",
                                                         "aw-00000000000000000002"]
        assert (await client.get("/api/alerts/aw-unknown")).status == 404
        ecs = await (await client.get("/api/alerts/aw-00000000000000000001/ecs")).json()
        assert ecs["event"]["kind"] == "alert" and ecs["accesswatch"]["member"]["area"] == "North"
        lines = (await (await client.get("/api/ecs")).text()).splitlines()
        assert len(lines) == 2

    run(make_app(), body)


def test_false_positives_download_for_leads() -> None:
    recorder = FakeRecorder()

    async def body(client: Client) -> None:
        token = await sign_in(client, "lena")
        await client.post("/api/alerts/aw-00000000000000000002/triage", headers={
            "X-CSRF-Token": token}, json={"action": "false_positive", "note": "test account"})
        resp = await client.get("/api/false-positives.csv")
        assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
        lines = (await resp.text()).splitlines()
        assert lines[0].startswith("alert_id,rule_id,user_id") and len(lines) == 2
        assert "aw-00000000000000000002" in lines[1] and "test account" in lines[1]
        rows = await (await client.get("/api/false-positives.json")).json()
        assert rows[0]["decided_by"] == "lena" and rows[0]["rule_id"] == "AW-011"

    run(make_app(recorder=recorder), body)


def test_responses_carry_security_headers() -> None:
    async def body(client: Client) -> None:
        login = await client.get("/login")
        assert "style-src 'nonce-" in login.headers["Content-Security-Policy"]
        await sign_in(client)
        for path in ("/", "/api/alerts", "/static/app.js"):
            resp = await client.get(path)
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert resp.headers["X-Frame-Options"] == "DENY"
            assert resp.headers["Cache-Control"] == "no-store"
        assert (await client.get("/static/secrets.txt")).status == 404
        assert (await client.get("/static/index.html")).status == 404

    run(make_app(), body)


def test_logs_hold_method_route_and_status_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def body(client: Client) -> None:
        await sign_in(client, "ana")
        await client.get("/api/alerts?area=North&rule=AW-002&secret=E00412")
        await client.get("/api/alerts/aw-00000000000000000001")

    run(make_app(), body)
    # The sign-in line alone names the console user and address (an audit need).
    signed_in = "signed in: user ana role analyst address 127.0.0.1"
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET /api/alerts 200" in text and "GET /api/alerts/{alert_id} 200" in text
    assert "POST /login 303" in text and signed_in in text
    for private in ("ana", "North", "E00412", "P-204", "aw-00000000000000000001", QUERY_TEXT,
                    "analyst-password-1"):
        assert private not in text.replace(signed_in, ""), private


def test_new_alerts_and_decisions_arrive_on_the_live_feed() -> None:
    state = make_state()

    async def body(client: Client) -> list[str]:
        await sign_in(client)
        resp = await client.get("/api/stream")
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        got: list[str] = []

        async def read_events() -> None:
            buf = b""
            while len(got) < 2:
                buf += await resp.content.readany()
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    if block.startswith(b"event: alert"):
                        got.append(block.decode())

        reader = asyncio.create_task(read_events())
        await asyncio.sleep(0)
        while not state.hub.listeners:
            await asyncio.sleep(0.01)
        state.add_alert(alert("aw-live", severity="critical", score=90.0))
        from console.triage import decide

        state.apply_decision(decide(None, "aw-live", "acknowledge", by="ana",
                                    at="2026-03-02T11:00:00Z"))
        await asyncio.wait_for(reader, 5)
        resp.close()
        return got

    got = run(make_app(state), body)
    assert '"alert_id":"aw-live"' in got[0] and '"status":"new"' in got[0]
    assert '"status":"acknowledged"' in got[1]
