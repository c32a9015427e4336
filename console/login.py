"""Signing in and out: the only page served without a session."""

from __future__ import annotations

import hashlib
import html
import logging
import secrets

from aiohttp import web

from console.sessions import LOGIN_COOKIE, SESSION_COOKIE
from console.web import SECURE, SIGNER, THROTTLE, USERS, current_session

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
</form></body></html>
"""


def _render(request: web.Request, message: str = "", status: int = 200) -> web.Response:
    signer = request.app[SIGNER]
    nonce = signer.login_nonce()
    style_nonce = secrets.token_urlsafe(12)
    body = _PAGE.format(nonce=style_nonce, token=signer.login_token(nonce),
                        message=f'<p class="error" role="alert">{html.escape(message)}</p>'
                        if message else "")
    resp = web.Response(text=body, content_type="text/html", status=status)
    resp.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{style_nonce}'; img-src data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")
    resp.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="Strict", path="/login",
                    secure=_secure(request), max_age=3600)
    return resp


async def page(request: web.Request) -> web.Response:
    return _render(request)


async def sign_in(request: web.Request) -> web.Response:
    app = request.app
    form = await request.post()
    if not app[SIGNER].login_ok(request.cookies.get(LOGIN_COOKIE), _text(form.get("csrf"))):
        return _render(request, "The sign-in form had expired. Please try again.", 403)
    username, password = _text(form.get("username")), _text(form.get("password"))
    # Throttle keys: a digest of the name (never logged) and the client address.
    keys = ("user:" + hashlib.sha256(username.encode()).hexdigest(),
            "addr:" + (request.remote or "?"))
    throttle = app[THROTTLE]
    if throttle.blocked(*keys):
        log.warning("sign-in refused: too many failed attempts")
        return _render(request, "Too many failed attempts. Wait a few minutes.", 429)
    user = app[USERS].authenticate(username, password)
    if user is None:
        throttle.failed(*keys)
        log.info("sign-in refused: wrong user name or password")
        return _render(request, "Wrong user name or password.", 401)
    throttle.succeeded(*keys)
    cookie, _ = app[SIGNER].issue(user.username)
    resp = web.HTTPSeeOther("/")
    resp.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="Strict", path="/",
                    secure=_secure(request), max_age=int(app[SIGNER].lifetime))
    resp.del_cookie(LOGIN_COOKIE, path="/login")
    log.info("signed in (role %s)", user.role)
    raise resp


async def sign_out(request: web.Request) -> web.Response:
    request.app[SIGNER].revoke(current_session(request))
    resp = web.json_response({"signed_out": True})
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


def _secure(request: web.Request) -> bool:
    configured = request.app[SECURE]
    return request.secure if configured is None else bool(configured)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
