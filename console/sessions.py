"""Signed session cookies that expire, and CSRF tokens bound to a session.

A cookie is ``base64(json).base64(hmac-sha256)``: the server keeps no session
table, so a restart with the same secret keeps analysts signed in.  Signing
out revokes the session id for the rest of its life.

>>> signer = SessionSigner(b"k" * 32, lifetime=60, clock=lambda: 1000.0)
>>> cookie, session = signer.issue("alice")
>>> signer.read(cookie).username, signer.read(cookie + "x")
('alice', None)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

SESSION_COOKIE = "aw_session"
LOGIN_COOKIE = "aw_login"


@dataclass(frozen=True)
class Session:
    sid: str
    username: str
    issued: float
    expires: float


class SessionSigner:
    def __init__(self, secret: bytes, lifetime: float,
                 clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes")
        self._secret, self.lifetime, self._clock = secret, lifetime, clock
        self._revoked: dict[str, float] = {}

    def issue(self, username: str) -> tuple[str, Session]:
        now = self._clock()
        session = Session(secrets.token_urlsafe(16), username, now, now + self.lifetime)
        payload = _b64(json.dumps({"sid": session.sid, "u": username, "iat": session.issued,
                                   "exp": session.expires}, separators=(",", ":")).encode())
        return f"{payload}.{self._mac('session', payload)}", session

    def read(self, cookie: str | None) -> Session | None:
        """The session, or None when missing, forged, expired or signed out."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac("session", payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
            session = Session(str(data["sid"]), str(data["u"]), float(data["iat"]),
                              float(data["exp"]))
        except (ValueError, KeyError, TypeError):
            return None
        if self._clock() >= session.expires or session.sid in self._revoked:
            return None
        return session

    def revoke(self, session: Session) -> None:
        now = self._clock()
        self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > now}
        self._revoked[session.sid] = session.expires

    def csrf_token(self, session: Session) -> str:
        return self._mac("csrf", session.sid)

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))

    # Before sign-in there is no session: the login form's token is bound to a
    # random nonce in its own SameSite=Strict cookie (a signed double submit).
    def login_nonce(self) -> str:
        return secrets.token_urlsafe(16)

    def login_token(self, nonce: str) -> str:
        return self._mac("login", nonce)

    def login_ok(self, nonce: str | None, token: str | None) -> bool:
        return bool(nonce) and bool(token) and hmac.compare_digest(
            str(token), self.login_token(str(nonce)))

    def _mac(self, purpose: str, value: str) -> str:
        return _b64(hmac.new(self._secret, f"{purpose}:{value}".encode(), hashlib.sha256)
                    .digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
