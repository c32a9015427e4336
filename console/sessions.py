"""Signed session cookies that expire, and CSRF tokens bound to a session.

A cookie is ``base64(json).base64(hmac-sha256)``: the server keeps no session
table, so a restart with the same secret keeps analysts signed in.  Signing
out revokes the session id for the rest of its life (``console.revocations``,
kept on disk).  A session also carries a ``grant``: a keyed digest of the
user's role and password hash when they signed in, so a changed password or
role, or a removed user, ends every session of theirs (``session_user``).

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
from typing import TYPE_CHECKING

from console.revocations import Revocations

if TYPE_CHECKING:
    from console.auth import User, Users

SESSION_COOKIE = "aw_session"
LOGIN_COOKIE = "aw_login"


@dataclass(frozen=True)
class Session:
    sid: str
    username: str
    issued: float
    expires: float
    grant: str = ""
    role: str = ""  # single sign-on only: the role from the provider's claim
    source: str = "local"  # "local": the users file; "oidc": single sign-on (console.oidc)


class SessionSigner:
    def __init__(self, secret: bytes, lifetime: float,
                 clock: Callable[[], float] = time.time,
                 revocations: Revocations | None = None) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes")
        self._secret, self.lifetime, self._clock = secret, lifetime, clock
        self.revocations = revocations if revocations is not None else Revocations(None, clock)

    def issue(self, username: str, grant: str = "", *, role: str = "",
              source: str = "local") -> tuple[str, Session]:
        now = self._clock()
        session = Session(secrets.token_urlsafe(16), username, now, now + self.lifetime, grant,
                          role, source)
        sso = {"r": role, "src": source} if source != "local" else {}
        payload = _b64(json.dumps({"sid": session.sid, "u": username, "iat": session.issued,
                                   "exp": session.expires, "g": grant, **sso},
                                  separators=(",", ":")).encode())
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
                              float(data["exp"]), str(data.get("g", "")),
                              str(data.get("r", "")), str(data.get("src", "local")))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        if self._clock() >= session.expires or session.sid in self.revocations:
            return None
        return session

    def revoke(self, session: Session) -> None:
        self.revocations.revoke(session.sid, session.expires)

    def grant(self, user: User) -> str:
        """What a session of ``user`` must carry: it changes with their role or password."""
        return self._mac("grant", f"{user.username}\0{user.role}\0{user.password_hash}")[:22]

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


def session_user(signer: SessionSigner, users: Users, cookie: str | None, *,
                 sso: bool = False) -> tuple[Session, User] | None:
    """The session and its user, or None when the cookie is not valid (forged, expired,
    signed out) or the user was removed or has another role or password since.
    A single sign-on session (``sso``: while it is configured) brings its own user."""
    session = signer.read(cookie)
    if session is not None and session.source != "local":
        user = sso_user(session) if sso and session.source == "oidc" else None
    else:
        user = users.get(session.username) if session is not None else None
    if session is None or user is None or not hmac.compare_digest(session.grant,
                                                                  signer.grant(user)):
        return None
    return session, user


def sso_user(session: Session) -> User | None:
    """The user a single sign-on session stands for: not in the users file."""
    from console.auth import ROLES, User

    return User(session.username, session.role, "") if session.role in ROLES else None
