"""Sessions that end: sign-out survives a restart, streams close within a second of
sign-out, expiry, a role change or removal, a changed password ends the sessions, the
users file reloads, sign-ins lock per account and per address, hashing is off the loop."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from console import auth
from console.auth import Users, hash_password, load_users
from console.client_address import from_header, parse_networks, trust_proxies
from console.lockout import LockoutPolicy, SignInLockout, account_key
from console.revocations import FILE, Revocations
from console.sessions import LOGIN_COOKIE, SESSION_COOKIE, SessionSigner
from console.users_file import reloader, watch_users_file
from console.web import SECURE, USERS
from tests.console.helpers import (
    PASSWORDS,
    SECRET,
    make_app,
    make_state,
    make_users,
    run,
    sign_in,
    users_yaml,
)

Client = TestClient[Any, Any]
CLOSE_WITHIN_S = 1.0


def app_over(data_dir: Path, *, users_file: Path | None = None, users: Users | None = None,
             clock: Callable[[], float] = time.time, proxies: str = "") -> web.Application:
    """A console app whose revocations and lockouts live in ``data_dir``."""
    signer = SessionSigner(SECRET, 3600, clock=clock, revocations=Revocations(data_dir / FILE))
    app = make_app(state=make_state(), signer=signer)
    if users is not None:  # the same users file as before the restart
        app[USERS].replace(users)
    if users_file is not None:
        app[USERS].replace(load_users(users_file))
        watch_users_file(app, users_file)
    if proxies:
        trust_proxies(app, parse_networks(proxies))
    return app


def write_users(path: Path, users: Users, **changes: tuple[str, str] | None) -> None:
    """Rewrite the users file: ``name=(role, hash)`` changes a user, ``name=None`` removes."""
    entries = {n: (u.role, u.password_hash) for n, u in users.by_name.items()}
    entries.update(changes)  # type: ignore[arg-type]
    lines = ["session_minutes: 60", "users:"] + [
        f'  {n}: {{role: {e[0]}, password: "{e[1]}"}}' for n, e in entries.items() if e]
    path.write_text("\n".join(lines) + "\n")


def cookie_of(client: Client) -> str:
    return client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value


async def open_stream(client: Client, cookie: str | None = None) -> ClientResponse:
    resp = await client.get("/api/stream",
                            cookies={SESSION_COOKIE: cookie} if cookie else None)
    assert resp.status == 200
    assert b"event: hello" in await resp.content.readuntil(b"\n\n")
    return resp


async def seconds_to_close(resp: ClientResponse) -> float:
    started = time.monotonic()
    await asyncio.wait_for(resp.content.read(), 10)  # to the end of the stream
    return time.monotonic() - started


async def still_open(resp: ClientResponse, app: web.Application) -> bool:
    """The stream still delivers: a new event reaches it."""
    from console.web import STATE

    app[STATE].hub.publish("alert", {"probe": True})
    while True:
        chunk = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
        if b"probe" in chunk:
            return True


async def form_token(client: Client) -> str:
    page = await (await client.get("/login")).text()
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


async def try_sign_in(client: Client, name: str, password: str,
                      address: str | None = None) -> int:
    token = await form_token(client)
    headers = {"X-Forwarded-For": address} if address else {}
    resp = await client.post("/login", data={"username": name, "password": password,
                                             "csrf": token},
                             headers=headers, allow_redirects=False)
    return resp.status


# -- revocation survives a restart --------------------------------------------------------

def test_a_signed_out_cookie_stays_out_after_a_restart(tmp_path: Path) -> None:
    async def first(client: Client) -> tuple[str, str]:
        csrf = await sign_in(client, "lena")
        gone = cookie_of(client)
        assert (await client.post("/logout", headers={"X-CSRF-Token": csrf})).status == 200
        assert (await client.get("/api/me")).status == 401
        client.session.cookie_jar.clear()
        await sign_in(client, "lena")
        return gone, cookie_of(client)

    users = make_users()
    gone, kept = run(app_over(tmp_path, users=users), first)

    async def after_restart(client: Client) -> tuple[int, int]:
        statuses = []
        for cookie in (gone, kept):
            client.session.cookie_jar.clear()
            client.session.cookie_jar.update_cookies({SESSION_COOKIE: cookie})
            statuses.append((await client.get("/api/me")).status)
        return statuses[0], statuses[1]

    assert run(app_over(tmp_path, users=users), after_restart) == (401, 200)


def test_revocations_are_pruned_once_expired(tmp_path: Path) -> None:
    now = [1000.0]
    revoked = Revocations(tmp_path / FILE, clock=lambda: now[0])
    revoked.revoke("a", expires=1100.0)
    revoked.revoke("b", expires=1500.0)
    now[0] = 1200.0
    revoked.revoke("c", expires=1300.0)
    again = Revocations(tmp_path / FILE, clock=lambda: now[0])
    assert len(again) == 2 and "a" not in again and "b" in again and "c" in again


# -- streams end within a second ----------------------------------------------------------

def test_sign_out_closes_the_stream_within_a_second_on_a_busy_feed(tmp_path: Path) -> None:
    app = app_over(tmp_path)

    async def body(client: Client) -> float:
        csrf = await sign_in(client, "lena")
        resp = await open_stream(client)
        from console.web import STATE

        async def busy() -> None:  # alerts keep coming: the stream must not wait for a lull
            while True:
                app[STATE].hub.publish("alert", {"n": 1})
                await asyncio.sleep(0.02)

        feeding = asyncio.create_task(busy())
        try:
            assert (await client.post("/logout", headers={"X-CSRF-Token": csrf})).status == 200
            return await seconds_to_close(resp)
        finally:
            feeding.cancel()

    assert run(app, body) < CLOSE_WITHIN_S


def test_expiry_closes_the_stream_within_a_second(tmp_path: Path) -> None:
    now = [time.time()]
    app = app_over(tmp_path, clock=lambda: now[0])

    async def body(client: Client) -> float:
        await sign_in(client, "lena")
        resp = await open_stream(client)
        now[0] += 3600  # the session's lifetime has passed
        return await seconds_to_close(resp)

    assert run(app, body) < CLOSE_WITHIN_S


@pytest.mark.parametrize("change", ["role", "removal", "password"])
def test_a_users_file_change_closes_that_users_stream_only(tmp_path: Path, change: str) -> None:
    path = users_yaml(tmp_path / "users.yaml")
    app = app_over(tmp_path, users_file=path)
    users = load_users(path)
    new = {"role": ("viewer", users.by_name["ana"].password_hash), "removal": None,
           "password": ("analyst", hash_password("a new password 1", n=2**10))}[change]

    async def body(client: Client) -> float:
        await sign_in(client, "vic")
        vic = cookie_of(client)
        client.session.cookie_jar.clear()
        await sign_in(client, "ana")
        resp, theirs = await open_stream(client), await open_stream(client, vic)
        write_users(path, users, ana=new)
        took = await seconds_to_close(resp)
        assert await still_open(theirs, app)  # vic's session is untouched
        assert (await client.get("/api/me", cookies={SESSION_COOKIE: vic})).status == 200
        assert (await client.get("/api/me")).status == 401
        if change == "password":
            assert await try_sign_in(client, "ana", PASSWORDS["ana"]) == 401
            assert await try_sign_in(client, "ana", "a new password 1") == 303
        if change == "role":
            assert await try_sign_in(client, "ana", PASSWORDS["ana"]) == 303
            assert (await (await client.get("/api/me")).json())["role"] == "viewer"
        return took

    assert run(app, body) < CLOSE_WITHIN_S


def test_a_bad_users_file_keeps_the_users_and_logs_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = users_yaml(tmp_path / "users.yaml")
    users = load_users(path)
    check = reloader(users, path)
    assert not check()  # unchanged
    path.write_text("users: {ana: {role: boss, password: x}}\n")
    with caplog.at_level(logging.INFO, "accesswatch.console.auth"):
        assert not check() and not check()
    assert set(users.by_name) == set(PASSWORDS)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "not reloaded" in errors[0].getMessage()
    write_users(path, load_users(users_yaml(tmp_path / "other.yaml")), vic=None)
    assert check() and set(users.by_name) == {"lena", "ana"}


# -- lockout per account and per address --------------------------------------------------

def test_failures_lock_the_account_everywhere_but_not_colleagues(tmp_path: Path) -> None:
    app = app_over(tmp_path, proxies="127.0.0.1")

    async def body(client: Client) -> list[int]:
        got = [await try_sign_in(client, "lena", "wrong", "10.0.0.1") for _ in range(5)]
        got.append(await try_sign_in(client, "lena", PASSWORDS["lena"], "10.0.0.2"))
        got.append(await try_sign_in(client, "ana", PASSWORDS["ana"], "10.0.0.1"))
        return got

    assert run(app, body) == [401] * 5 + [429, 303]

    async def after_restart(client: Client) -> int:
        return await try_sign_in(client, "lena", PASSWORDS["lena"], "10.0.0.3")

    assert run(app_over(tmp_path, proxies="127.0.0.1"), after_restart) == 429


def test_failures_from_one_address_lock_that_address_only(tmp_path: Path) -> None:
    app = app_over(tmp_path, proxies="127.0.0.1")

    async def body(client: Client) -> list[int]:
        names = ["lena", "ana", "vic", "nobody", "someone"]
        got = [await try_sign_in(client, names[i % 5], "wrong", "10.0.0.9") for i in range(20)]
        assert got == [401] * 20  # four each: no account is locked
        return [await try_sign_in(client, "ana", PASSWORDS["ana"], "10.0.0.9"),
                await try_sign_in(client, "ana", PASSWORDS["ana"], "10.0.0.10")]

    assert run(app, body) == [429, 303]


def test_a_success_forgets_the_accounts_failures() -> None:
    now = [0.0]
    lockout = SignInLockout(Revocations(None).db, LockoutPolicy(3, 100, 60),
                            clock=lambda: now[0])
    lena = account_key("lena")
    for _ in range(2):
        lockout.attempt(lena, "a")
    lockout.succeeded(lena, lockout.attempt(lena, "a"))
    for _ in range(2):
        lockout.attempt(lena, "a")
    assert lockout.locked(lena, "a") is None
    lockout.attempt(lena, "b")
    assert lockout.locked(lena, "c") == "account"
    now[0] = 61.0  # the window has passed
    assert lockout.locked(lena, "c") is None


def test_sign_ins_are_logged_with_user_and_address_never_the_password(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = app_over(tmp_path, proxies="127.0.0.1")

    async def body(client: Client) -> None:
        await try_sign_in(client, "lena", "Wrong-Secret-1", "203.0.113.5")
        await try_sign_in(client, "Typed-Secret-2", "x", "203.0.113.5")
        await try_sign_in(client, "lena", PASSWORDS["lena"], "203.0.113.5")

    with caplog.at_level(logging.INFO, "accesswatch.console"):
        run(app, body)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "wrong user name or password; user lena address 203.0.113.5" in text
    assert "signed in: user lena role lead address 203.0.113.5" in text
    assert re.search(r"user unknown:[0-9a-f]{12} address 203\.0\.113\.5", text)
    for secret in ("Wrong-Secret-1", "Typed-Secret-2", PASSWORDS["lena"]):
        assert secret not in text


@pytest.mark.parametrize(("peer", "header", "want"), [
    ("198.51.100.1", ["203.0.113.5"], "198.51.100.1"),           # untrusted peer: ignored
    ("10.0.0.2", ["203.0.113.5"], "203.0.113.5"),
    ("10.0.0.2", ["1.1.1.1, 203.0.113.5, 10.0.0.3"], "203.0.113.5"),  # rightmost untrusted
    ("10.0.0.2", ["1.1.1.1", "203.0.113.5"], "203.0.113.5"),     # repeated header lines
    ("10.0.0.2", [], "10.0.0.2"),
    ("10.0.0.2", ["not-an-address"], "10.0.0.2"),
    ("10.0.0.2", ["2001:db8::7"], "2001:db8::7"),
])
def test_the_client_address_comes_from_a_trusted_proxy_only(
        peer: str, header: list[str], want: str) -> None:
    assert from_header(peer, header, parse_networks("10.0.0.0/8")) == want


def test_a_bad_trusted_proxy_is_refused() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.999"):
        parse_networks("10.0.0.0/8, 10.0.0.999")


# -- hashing off the event loop; secure cookies and HSTS ----------------------------------

def test_a_sign_in_does_not_hold_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    entered, release = threading.Event(), threading.Event()
    released: list[bool] = []
    real = auth.verify_password

    def slow_verify(password: str, stored: str) -> bool:
        entered.set()
        # Released by the loop while this runs; on the loop itself it times out instead.
        released.append(release.wait(3))
        return real(password, stored)

    monkeypatch.setattr(auth, "verify_password", slow_verify)

    async def body(client: Client) -> int:
        signing_in = asyncio.create_task(sign_in(client, "lena"))
        while not entered.is_set():
            await asyncio.sleep(0.01)
        healthz = await asyncio.wait_for(client.get("/healthz"), 2)  # while the hash runs
        release.set()
        await signing_in
        return healthz.status

    assert run(make_app(), body) == 200
    assert released == [True]


@pytest.mark.parametrize(("secure", "want"), [(None, False), (True, True), (False, False)])
def test_secure_cookies_and_hsts_as_configured(secure: bool | None, want: bool) -> None:
    app = make_app()
    app[SECURE] = secure

    async def body(client: Client) -> list[bool]:
        page = await client.get("/login")
        nonce = page.cookies[LOGIN_COOKIE]
        token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert token
        # The test client speaks plain HTTP, so it would keep back a Secure cookie.
        client.session.cookie_jar.update_cookies({LOGIN_COOKIE: nonce.value},
                                                 client.make_url("/login"))
        resp = await client.post("/login", data={"username": "lena", "csrf": token.group(1),
                                                 "password": PASSWORDS["lena"]},
                                 allow_redirects=False)
        assert resp.status == 303
        hsts = {r.headers.get("Strict-Transport-Security") for r in (page, resp)}
        assert hsts in ({None}, {"max-age=31536000; includeSubDomains"})
        return [bool(nonce["secure"]), bool(resp.cookies[SESSION_COOKIE]["secure"]),
                hsts != {None}]

    assert run(app, body) == [want] * 3
