"""Single sign-on: OpenID Connect, authorization code flow with PKCE (S256).

``GET /login/oidc`` sends the browser to the force's identity provider with a
fresh state, nonce and code verifier, kept in a short-lived signed cookie.
``GET /oidc/callback`` checks the state, exchanges the code at the token
endpoint, validates the ID token (signature against the provider's JWKS, iss,
aud, exp, nonce) and issues the console's normal session cookie for
``preferred_username`` (else ``sub``) with the role in the configured claim.
The user and role live in the signed session (source ``oidc``): SSO users are
not in the users file.  A failure is one line on the sign-in page and one log
line; tokens, codes and names are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import jwt
from aiohttp import web

from console.auth import ConsoleConfigError, User
from console.client_address import client_address
from console.config import ConsoleSettings
from console.oidc_tokens import (
    SignOnError,
    identity,
    invalid,
    key_id,
    signing_key,
    validate_id_token,
)
from console.sessions import SESSION_COOKIE
from console.web import OIDC, SIGNER, secure_cookies

log = logging.getLogger("accesswatch.console.auth")

FLOW_COOKIE = "aw_oidc"
FLOW_SECONDS = 600  # from the redirect to the provider until its callback
_JWKS_REFRESH_S = 60.0  # an unknown key id refetches the JWKS at most this often
_SAFE_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # an OAuth error code, safe to show


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str | None
    redirect_url: str
    role_claim: str = "accesswatch_role"
    scopes: str = "openid profile"

    @classmethod
    def from_settings(cls, s: ConsoleSettings) -> OidcConfig | None:
        """None when no issuer is set; a half-configured SSO is refused at start."""
        if not s.console_oidc_issuer:
            return None
        missing = [name for name, value in (("CLIENT_ID", s.console_oidc_client_id),
                                            ("REDIRECT_URL", s.console_oidc_redirect_url))
                   if not value]
        if missing:
            raise ConsoleConfigError("single sign-on: ACCESSWATCH_CONSOLE_OIDC_ISSUER is set, "
                                     "so set " + " and ".join(
                                         f"ACCESSWATCH_CONSOLE_OIDC_{m}" for m in missing))
        if "openid" not in s.console_oidc_scopes.split():
            raise ConsoleConfigError("single sign-on: ACCESSWATCH_CONSOLE_OIDC_SCOPES must "
                                     "include openid")
        secret = s.console_oidc_client_secret
        return cls(s.console_oidc_issuer, str(s.console_oidc_client_id),
                   secret.get_secret_value() if secret else None,
                   str(s.console_oidc_redirect_url),
                   s.console_oidc_role_claim, s.console_oidc_scopes)


@dataclass(frozen=True)
class Flow:
    """One sign-in attempt: what the callback must match."""

    state: str
    nonce: str
    verifier: str
    expires: float

    @classmethod
    def start(cls, now: float) -> Flow:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24),
                   secrets.token_urlsafe(48), now + FLOW_SECONDS)

    @property
    def challenge(self) -> str:
        return _b64(hashlib.sha256(self.verifier.encode()).digest())


class OidcClient:
    """The provider's discovery document and keys (cached), and the token exchange."""

    def __init__(self, config: OidcConfig, *, retries: int = 3, timeout_s: float = 10.0,
                 backoff_s: float = 0.25) -> None:
        self.config, self._retries, self._backoff_s = config, retries, backoff_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None
        self._metadata: dict[str, Any] | None = None
        self._keys: jwt.PyJWKSet | None = None
        self._keys_at = -_JWKS_REFRESH_S

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def authorization_url(self, flow: Flow) -> str:
        meta = await self.metadata()
        query = urlencode({"response_type": "code", "client_id": self.config.client_id,
                           "redirect_uri": self.config.redirect_url,
                           "scope": self.config.scopes, "state": flow.state,
                           "nonce": flow.nonce, "code_challenge": flow.challenge,
                           "code_challenge_method": "S256"})
        endpoint = meta["authorization_endpoint"]
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    async def sign_in(self, code: str, flow: Flow) -> tuple[str, str]:
        """(user name, role) for the code the provider gave the callback."""
        meta = await self.metadata()
        token = await self._exchange(meta["token_endpoint"], code, flow)
        kid = key_id(token)
        keys = await self.jwks(refresh_for=kid)
        claims = validate_id_token(token, keys, issuer=meta["issuer"],
                                   client_id=self.config.client_id, nonce=flow.nonce)
        return identity(claims, self.config.role_claim)

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            doc = await self._get_json(url, "discovery")
            if str(doc.get("issuer", "")).rstrip("/") != self.config.issuer.rstrip("/"):
                raise _unavailable("the discovery document names another issuer")
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(doc.get(name), str):
                    raise _unavailable(f"the discovery document has no {name}")
            self._metadata = doc
        return self._metadata

    async def jwks(self, refresh_for: str | None = None) -> jwt.PyJWKSet:
        """The provider's keys; fetched again when a token names a key id not among them
        (the provider rotated its keys), at most once a minute."""
        now = time.monotonic()
        stale = self._keys is None or (refresh_for is not None
                                       and signing_key(self._keys, refresh_for, None) is None
                                       and now - self._keys_at >= _JWKS_REFRESH_S)
        if stale:
            doc = await self._get_json((await self.metadata())["jwks_uri"], "JWKS")
            try:
                self._keys = jwt.PyJWKSet.from_dict(doc)
            except jwt.PyJWTError as e:
                raise _unavailable(f"the JWKS holds no usable key: {type(e).__name__}") from None
            self._keys_at = now
        assert self._keys is not None
        return self._keys

    async def _exchange(self, endpoint: str, code: str, flow: Flow) -> str:
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": self.config.redirect_url, "code_verifier": flow.verifier}
        headers = {}
        if self.config.client_secret is None:
            form["client_id"] = self.config.client_id  # a public client
        else:  # client_secret_basic: RFC 6749 §2.3.1 form-encodes both first
            pair = f"{quote(self.config.client_id, safe='')}:" \
                   f"{quote(self.config.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        # Not retried: a code is single-use, a second try would be refused anyway.
        try:
            async with self._session().post(endpoint, data=form, headers=headers) as resp:
                body = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise _unavailable(f"token endpoint: {type(e).__name__}") from None
        if status != 200 or not isinstance(body, dict):
            code_name = body.get("error") if isinstance(body, dict) else None
            shown = code_name if isinstance(code_name, str) and _SAFE_CODE.fullmatch(
                code_name) else f"HTTP {status}"
            raise SignOnError("The identity provider refused to complete the sign-in "
                              f"({shown}). Please try again.",
                              f"token endpoint refused the code: {shown}", 502)
        token = body.get("id_token")
        if not isinstance(token, str):
            raise invalid("the token response has no id_token")
        return token

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        problem = ""
        for attempt in range(self._retries):
            if attempt:
                await asyncio.sleep(self._backoff_s * 2**attempt)  # 0.5 s, 1 s, …
            try:
                async with self._session().get(url) as resp:
                    if resp.status >= 500:
                        problem = f"HTTP {resp.status}"
                        continue
                    if resp.status != 200:
                        raise _unavailable(f"{what}: HTTP {resp.status}")
                    doc = await resp.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError) as e:
                problem = type(e).__name__
                continue
            except ValueError:
                raise _unavailable(f"{what}: not JSON") from None
            if not isinstance(doc, dict):
                raise _unavailable(f"{what}: not a JSON object")
            return doc
        raise _unavailable(f"{what}: {problem} after {self._retries} tries")

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        return self._http


def install(app: web.Application, client: OidcClient) -> None:
    """Add single sign-on to the console's app (its two routes are public in web.py)."""
    app[OIDC] = client
    app.router.add_get("/login/oidc", start)
    app.router.add_get("/oidc/callback", callback)

    async def close(_: web.Application) -> None:
        await client.close()

    app.on_cleanup.append(close)


async def start(request: web.Request) -> web.StreamResponse:
    from console.login import error_page

    client: OidcClient = request.app[OIDC]  # type: ignore[assignment]
    flow = Flow.start(time.time())
    try:
        url = await client.authorization_url(flow)
    except SignOnError as e:
        log.warning("single sign-on refused: %s; address %s", e.reason,
                    client_address(request))
        return error_page(request, e.message, e.status)
    resp = web.HTTPFound(url)
    # Lax, not Strict: the provider's redirect back is a cross-site navigation.
    resp.set_cookie(FLOW_COOKIE, _seal(request, flow), httponly=True, samesite="Lax",
                    path="/oidc", secure=secure_cookies(request), max_age=FLOW_SECONDS)
    raise resp


async def callback(request: web.Request) -> web.StreamResponse:
    from console.login import error_page

    try:
        username, role = await _complete(request)
    except SignOnError as e:
        log.warning("single sign-on refused: %s; address %s", e.reason,
                    client_address(request))
        resp = error_page(request, e.message, e.status)
        resp.del_cookie(FLOW_COOKIE, path="/oidc")
        return resp
    signer = request.app[SIGNER]
    grant = signer.grant(User(username, role, ""))  # as sessions.sso_user rebuilds it
    cookie, _ = signer.issue(username, grant, role=role, source="oidc")
    # A page, not a redirect: the session cookie is SameSite=Strict, and a browser
    # does not send it on a redirect chain that a cross-site navigation began.
    resp = web.Response(text=_CONTINUE, content_type="text/html")
    resp.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="Strict", path="/",
                    secure=secure_cookies(request), max_age=int(signer.lifetime))
    resp.del_cookie(FLOW_COOKIE, path="/oidc")
    log.info("signed in by single sign-on: user %s role %s address %s", username, role,
             client_address(request))
    return resp


async def _complete(request: web.Request) -> tuple[str, str]:
    q = request.query
    flow = _open(request, request.cookies.get(FLOW_COOKIE))
    if flow is None:
        raise SignOnError("The single sign-on attempt had expired. Please try again.",
                          "no valid sign-on cookie (expired, forged or another browser)")
    if not hmac.compare_digest(q.get("state", ""), flow.state):
        raise SignOnError("The single sign-on reply did not match this sign-in. Please try "
                          "again.", "state does not match")
    # RFC 9207: a provider that names itself must be ours (no mix-up with another).
    client: OidcClient = request.app[OIDC]  # type: ignore[assignment]
    if "iss" in q and q["iss"].rstrip("/") != client.config.issuer.rstrip("/"):
        raise SignOnError("The single sign-on reply came from another identity provider.",
                          "the callback's iss is another issuer")
    if "error" in q:
        error = q["error"] if _SAFE_CODE.fullmatch(q["error"]) else "error"
        raise SignOnError(f"The identity provider refused the sign-in ({error}).",
                          f"provider refused: {error}", 403)
    code = q.get("code")
    if not code:
        raise SignOnError("The identity provider sent no sign-in code. Please try again.",
                          "no code in the callback")
    return await client.sign_in(code, flow)


_CONTINUE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signed in · accesswatch console</title>
<meta http-equiv="refresh" content="0;url=/"></head>
<body><p>Signed in. <a href="/">Continue to the console</a>.</p></body></html>
"""


# The flow cookie is ``base64(json).base64(hmac)`` under a key derived from the
# console's secret (through the signer, which never hands the secret out).
def _seal(request: web.Request, flow: Flow) -> str:
    payload = _b64(json.dumps({"s": flow.state, "n": flow.nonce, "v": flow.verifier,
                               "exp": flow.expires}, separators=(",", ":")).encode())
    return f"{payload}.{_mac(request, payload)}"


def _open(request: web.Request, cookie: str | None) -> Flow | None:
    if not cookie or cookie.count(".") != 1:
        return None
    payload, mac = cookie.split(".")
    if not hmac.compare_digest(mac, _mac(request, payload)):
        return None
    try:
        d = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        flow = Flow(str(d["s"]), str(d["n"]), str(d["v"]), float(d["exp"]))
    except (ValueError, KeyError, TypeError):
        return None
    return flow if time.time() < flow.expires else None


def _mac(request: web.Request, payload: str) -> str:
    key = request.app[SIGNER].login_token("accesswatch-oidc-flow-key").encode()
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def _unavailable(reason: str) -> SignOnError:
    return SignOnError("The identity provider cannot be reached or answered wrongly. Please "
                       "try again later.", reason, 502)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
