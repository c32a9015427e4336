"""Signed session cookies expire, refuse tampering and sign-out; CSRF tokens bind to one session."""

from __future__ import annotations

import base64
import json

import pytest

from console.sessions import SessionSigner

SECRET = b"s" * 32


def signer(now: list[float], lifetime: float = 600) -> SessionSigner:
    return SessionSigner(SECRET, lifetime, clock=lambda: now[0])


def test_a_fresh_cookie_reads_back() -> None:
    now = [1000.0]
    cookie, session = signer(now).issue("alice")
    back = signer(now).read(cookie)  # another signer with the same secret: a restart
    assert back == session and back.username == "alice" and back.expires == 1600.0


def test_sessions_expire() -> None:
    now = [1000.0]
    s = signer(now)
    cookie, _ = s.issue("alice")
    now[0] = 1599.0
    assert s.read(cookie) is not None
    now[0] = 1600.0
    assert s.read(cookie) is None


def _forge(cookie: str, **changes: object) -> str:
    payload, mac = cookie.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{forged}.{mac}"


@pytest.mark.parametrize("tamper", [
    lambda c: _forge(c, u="admin"),
    lambda c: _forge(c, exp=10**12),
    lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),
    lambda c: c.split(".")[0],
    lambda c: "",
    lambda c: "a.b.c",
    lambda c: "!!!." + c.split(".")[1],
])
def test_a_tampered_cookie_is_refused(tamper) -> None:  # type: ignore[no-untyped-def]
    now = [1000.0]
    s = signer(now)
    cookie, _ = s.issue("alice")
    assert s.read(tamper(cookie)) is None


def test_another_secret_cannot_read_it() -> None:
    now = [1000.0]
    cookie, _ = signer(now).issue("alice")
    assert SessionSigner(b"t" * 32, 600, clock=lambda: now[0]).read(cookie) is None


def test_sign_out_revokes_only_that_session() -> None:
    now = [1000.0]
    s = signer(now)
    a, session_a = s.issue("alice")
    b, _ = s.issue("alice")
    s.revoke(session_a)
    assert s.read(a) is None and s.read(b) is not None


def test_csrf_tokens_belong_to_one_session() -> None:
    now = [1000.0]
    s = signer(now)
    _, one = s.issue("alice")
    _, two = s.issue("alice")
    token = s.csrf_token(one)
    assert s.csrf_ok(one, token)
    assert not s.csrf_ok(two, token)
    assert not s.csrf_ok(one, None) and not s.csrf_ok(one, "")


def test_login_form_tokens_belong_to_their_nonce() -> None:
    s = signer([0.0])
    nonce = s.login_nonce()
    assert s.login_ok(nonce, s.login_token(nonce))
    assert not s.login_ok(s.login_nonce(), s.login_token(nonce))
    assert not s.login_ok(None, s.login_token(nonce)) and not s.login_ok(nonce, None)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        SessionSigner(b"short", 60)
