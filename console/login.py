"""Signing in and out: the only page served without a session."""

from __future__ import annotations

import hashlib
import html
import logging
import secrets

from aiohttp import web

from console.auth import Users, authenticate
from console.client_address import client_address
from console.lockout import account_key
from console.sessions import LOGIN_COOKIE, SESSION_COOKIE
from console.web import OIDC, SIGNER, THROTTLE, USERS, current_session, current_user, secure_cookies

log = logging.getLogger("accesswatch.console.auth")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · accesswatch console</title>
<link rel="icon" href="data:,">
<style nonce="{nonce}">
body {{ font: 15px/1.4 system-ui, sans-serif; background: #0f172a; color: #e2e8f0;
       display: grid; place-items: center; min-height: 100vh; margin: 0; }}
form {{ background: #1e293b; padding: 2rem 2.2rem; border-radius: 10px; width: 20rem;
        box-shadow: 0 10px 30px #0008; }}
h1 {{ font-size: 1.2rem; margin: 0 0 .3rem; }} p.sub {{ color: #94a3b8; margin: 0 0 1.2rem; }}
label {{ display: block; margin: .8rem 0 .3rem; color: #cbd5e1; }}
input {{ width: 100%; box-sizing: border-box; padding: .55rem; border-radius: 6px;
         border: 1px solid #334155; background: #0f172a; color: #e2e8f0; font-size: 1rem; }}
button {{ margin-top: 1.3rem; width: 100%; padding: .6rem; border: 0; border-radius: 6px;
          background: #2563eb; color: white; font-size: 1rem; cursor: pointer; }}
.error {{ background: #7f1d1d; color: #fecaca; padding: .5rem .7rem; border-radius: 6px; }}
p.sso {{ margin: 1rem 0 0; text-align: center; }} p.sso a {{ color: #93c5fd; }}
</style></head>
<body><form method="post" action="/login">
<h1>accesswatch console</h1><p class="sub">Professional standards · authorised staff only</p>
{message}
<input type="hidden" name="csrf" value="{token}">
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password"
 required>
<button type="submit">Sign in</button>
{sso}</form></body></html>
"""


def _render(request: web.Request, message: str = "", status: int = 200) -> web.Response:
    signer = request.app[SIGNER]
    nonce = signer.login_nonce()
    style_nonce = secrets.token_urlsafe(12)
    body = _PAGE.format(nonce=style_nonce, token=signer.login_token(nonce),
                        message=f'<p class="error" role="alert">{html.escape(message)}</p>'
                        if message else "", sso=_SSO_LINK if OIDC in request.app else "")
    resp = web.Response(text=body, content_type="text/html", status=status)
    resp.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{style_nonce}'; img-src data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")
    resp.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="Strict", path="/login",
                    secure=secure_cookies(request), max_age=3600)
    return resp


_SSO_LINK = '<p class="sso"><a href="/login/oidc">Sign in with single sign-on</a></p>\n'


def error_page(request: web.Request, message: str, status: int) -> web.Response:
    """The sign-in page with one line saying what went wrong (console.oidc's refusals)."""
    return _render(request, message, status)


async def page(request: web.Request) -> web.Response:
    return _render(request)


async def sign_in(request: web.Request) -> web.Response:
    app = request.app
    form = await request.post()
    if not app[SIGNER].login_ok(request.cookies.get(LOGIN_COOKIE), _text(form.get("csrf"))):
        return _render(request, "The sign-in form had expired. Please try again.", 403)
    username, password = _text(form.get("username")), _text(form.get("password"))
    account, address = account_key(username), client_address(request)
    who, lockout = _who(app[USERS], username), app[THROTTLE]
    locked = lockout.locked(account, address)
    if locked is not None:
        log.warning("sign-in refused: %s locked after failed attempts; user %s address %s",
                    locked, who, address)
        return _render(request, "Too many failed attempts. Wait a few minutes.", 429)
    attempt = lockout.attempt(account, address)  # a failure unless it succeeds
    user = await authenticate(app[USERS], username, password)
    if user is None:
        log.info("sign-in refused: wrong user name or password; user %s address %s",
                 who, address)
        return _render(request, "Wrong user name or password.", 401)
    lockout.succeeded(account, attempt)
    cookie, _ = app[SIGNER].issue(user.username, app[SIGNER].grant(user))
    resp = web.HTTPSeeOther("/")
    resp.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="Strict", path="/",
                    secure=secure_cookies(request), max_age=int(app[SIGNER].lifetime))
    resp.del_cookie(LOGIN_COOKIE, path="/login")
    log.info("signed in: user %s role %s address %s", user.username, user.role, address)
    raise resp


async def sign_out(request: web.Request) -> web.Response:
    request.app[SIGNER].revoke(current_session(request))
    log.info("signed out: user %s address %s", current_user(request).username,
             client_address(request))
    resp = web.json_response({"signed_out": True})
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


def _who(users: Users, username: str) -> str:
    """A known user's name; an unknown one only as a digest, as it may be a password
    typed into the wrong box."""
    if users.get(username) is not None:
        return username
    return "unknown:" + hashlib.sha256(username.encode()).hexdigest()[:12]


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
