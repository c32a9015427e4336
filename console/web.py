"""The console's HTTP app: who may see what, what is logged, and the page itself.

Every route needs a signed-in session except those in ``PUBLIC``.  A request
without one gets 401 (API) or a redirect to the sign-in page, never data.  A
state-changing request also needs the session's CSRF token in ``X-CSRF-Token``
and, when the browser sends an ``Origin``, our own.  The log line of a request
is its method, route template and status: no query string, no alert content.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from console.auth import User, Users
from console.lockout import SignInLockout
from console.sessions import SESSION_COOKIE, Session, SessionSigner, session_user
from console.state import ConsoleState
from console.triage import Decision, Step

log = logging.getLogger("accesswatch.console.http")
Recorder = Callable[[Decision, Step], Awaitable[None]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATE = web.AppKey("state", ConsoleState)
USERS = web.AppKey("users", Users)
SIGNER = web.AppKey("signer", SessionSigner)
RECORDER = web.AppKey("recorder", object)
THROTTLE = web.AppKey("throttle", SignInLockout)
TRIAGE_LOCK = web.AppKey("triage_lock", asyncio.Lock)
SECURE = web.AppKey("secure_cookies", object)  # True, False or None: as the request's scheme
OIDC = web.AppKey("oidc", object)  # console.oidc.OidcClient, when single sign-on is on

_RequestKey: Any = getattr(web, "RequestKey", None)  # aiohttp >= 3.14; plain strings before
SESSION_KEY: Any = _RequestKey("session", Session) if _RequestKey else "session"
USER_KEY: Any = _RequestKey("user", User) if _RequestKey else "user"
# How the app must be run (server and tests alike): aiohttp's own access log would
# write every URL with its query string, so it is off; ours is ``log_requests``.
RUNNER_OPTIONS: dict[str, Any] = {"access_log": None, "handle_signals": False,
                                  "shutdown_timeout": 5}

# /metrics as a worker's (streams/serve.py): a scraper has no session, and the metrics
# name no one (console/metrics.py).
PUBLIC = frozenset({("GET", "/login"), ("POST", "/login"), ("GET", "/healthz"),
                    ("GET", "/metrics"), ("GET", "/login/oidc"), ("GET", "/oidc/callback")})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
STATIC = {"app.js": "text/javascript", "app.css": "text/css", "index.html": "text/html"}


def build_app(*, state: ConsoleState, users: Users, signer: SessionSigner,
              recorder: Recorder | None, secure_cookies: bool | None = None,
              case_recorder: object = None, watch_recorder: object = None,
              consultation_recorder: object = None,
              consultation_log: object = None) -> web.Application:
    """The console's app; the recorders write decisions, cases and watch-list entries
    to their topics (tests give fakes)."""
    from console import api, api_workspace, consultations, login

    app = web.Application(middlewares=[log_requests, authenticate, consultations.record_reads],
                          client_max_size=64 * 1024)
    app[STATE], app[USERS], app[SIGNER] = state, users, signer
    app[RECORDER], app[SECURE] = recorder, secure_cookies
    # Failed sign-ins are kept beside the revoked sessions (revocations.sqlite3).
    app[THROTTLE] = SignInLockout(signer.revocations.db)
    app[TRIAGE_LOCK] = asyncio.Lock()
    app[api_workspace.CASE_RECORDER] = case_recorder
    app[api_workspace.WATCH_RECORDER] = watch_recorder
    # Every read of personal data is recorded here first (console.consultations).
    app[consultations.RECORDER], app[consultations.LOG] = consultation_recorder, consultation_log
    app.on_response_prepare.append(_security_headers)
    app.on_shutdown.append(_close_streams)
    r = app.router
    r.add_get("/login", login.page)
    r.add_post("/login", login.sign_in)
    r.add_post("/logout", login.sign_out)
    r.add_get("/healthz", healthz)
    r.add_get("/", index)
    r.add_get("/static/{name}", static)
    api.add_routes(r)
    api_workspace.add_routes(r)
    consultations.add_routes(r)
    return app


def template_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(unmatched)"


@web.middleware
async def log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    started, status = time.monotonic(), 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        log.info("%s %s %d %.0fms", request.method, template_of(request), status,
                 (time.monotonic() - started) * 1000)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (request.method, template_of(request)) in PUBLIC:
        return await handler(request)
    app = request.app
    found = session_user(app[SIGNER], app[USERS], request.cookies.get(SESSION_COOKIE),
                         sso=OIDC in app)
    if found is None:
        return _refuse(request)
    session, user = found
    if request.method not in SAFE_METHODS:
        if not _same_origin(request):
            return _json_error(403, "cross-origin request refused")
        if not app[SIGNER].csrf_ok(session, request.headers.get("X-CSRF-Token")):
            return _json_error(403, "missing or wrong CSRF token: reload the page")
    request[SESSION_KEY], request[USER_KEY] = session, user
    return await handler(request)


def current_user(request: web.Request) -> User:
    user: User = request[USER_KEY]
    return user


def current_session(request: web.Request) -> Session:
    session: Session = request[SESSION_KEY]
    return session


def require(request: web.Request, permission: str) -> None:
    if not current_user(request).may(permission):
        raise web.HTTPForbidden(text=f'{{"error": "your role may not {permission}"}}',
                                content_type="application/json")


def _refuse(request: web.Request) -> web.StreamResponse:
    if request.method == "GET" and not request.path.startswith("/api/"):
        raise web.HTTPSeeOther("/login")
    return _json_error(401, "sign in first")


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("Cache-Control", "no-store")
    h["X-Content-Type-Options"] = "nosniff"
    h["X-Frame-Options"] = "DENY"
    h["Referrer-Policy"] = "no-referrer"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if secure_cookies(request):
        h["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"


def secure_cookies(request: web.Request) -> bool:
    """Cookies ``Secure`` (and HSTS sent): as configured, else when served over TLS."""
    configured = request.app[SECURE]
    return request.secure if configured is None else bool(configured)


async def _close_streams(app: web.Application) -> None:
    app[STATE].hub.close_all()


async def healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = {"ok": state.ready, **{f"{k}_caught_up": v for k, v in state.caught_up.items()}}
    return web.json_response(body, status=200 if state.ready else 503)


_files: dict[str, bytes] = {}


def _file(name: str) -> bytes:
    if name not in _files:
        _files[name] = resources.files("console").joinpath("static", name).read_bytes()
    return _files[name]


async def index(request: web.Request) -> web.Response:
    return web.Response(body=_file("index.html"), content_type="text/html", charset="utf-8")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC or name == "index.html":
        raise web.HTTPNotFound()
    return web.Response(body=_file(name), content_type=STATIC[name], charset="utf-8")
