"""Single sign-on without a provider: ID-token checks with keys made here, the role
claim, the settings, the flow cookie and SSO sessions (test_oidc_browser.py signs in
through a real provider)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from console.auth import ConsoleConfigError, User
from console.config import ConsoleSettings
from console.oidc import Flow, OidcClient, OidcConfig, install
from console.oidc_tokens import SignOnError, identity, validate_id_token
from console.sessions import SESSION_COOKIE, SessionSigner, session_user
from tests.console.helpers import SECRET, make_app, make_users, run

ISSUER, CLIENT, NONCE = "https://idp.force.example", "accesswatch-console", "n-0123456789"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks(*entries: tuple[Any, str, str]) -> jwt.PyJWKSet:
    keys = []
    for key, kid, alg in entries:
        algo = RSAAlgorithm if alg == "RS256" else ECAlgorithm
        keys.append({**json.loads(algo.to_jwk(key.public_key())), "kid": kid, "use": "sig"})
    return jwt.PyJWKSet.from_dict({"keys": keys})


KEYS = jwks((RSA_KEY, "rsa-1", "RS256"), (EC_KEY, "ec-1", "ES256"))


def token(*, key: Any = RSA_KEY, kid: str | None = "rsa-1", alg: str = "RS256",
          **override: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT, "sub": "u-1", "iat": now, "exp": now + 300,
              "nonce": NONCE, "preferred_username": "ana", "accesswatch_role": "analyst"}
    claims.update(override)
    claims = {k: v for k, v in claims.items() if v is not None}
    headers = {"kid": kid} if kid else {}
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def check(tok: str, keys: jwt.PyJWKSet = KEYS, nonce: str = NONCE) -> dict[str, Any]:
    return validate_id_token(tok, keys, issuer=ISSUER, client_id=CLIENT, nonce=nonce)


@pytest.mark.parametrize("key,kid,alg", [(RSA_KEY, "rsa-1", "RS256"), (EC_KEY, "ec-1", "ES256")])
def test_a_good_id_token_gives_its_claims(key: Any, kid: str, alg: str) -> None:
    claims = check(token(key=key, kid=kid, alg=alg))
    assert identity(claims, "accesswatch_role") == ("ana", "analyst")


@pytest.mark.parametrize("tok,reason", [
    (lambda: token(nonce="n-replayed"), "nonce does not match"),
    (lambda: token(aud="another-app"), "another client (aud)"),
    (lambda: token(aud=[CLIENT, "another-app"], azp="another-app"), "another authorized"),
    (lambda: token(iss="https://evil.example"), "another issuer (iss)"),
    (lambda: token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200), "expired"),
    (lambda: token(key=OTHER_RSA), "signature does not verify"),  # same kid, wrong key
    (lambda: token(kid="rsa-9"), "no key in the provider's JWKS"),
    (lambda: token(key=EC_KEY, kid="rsa-1", alg="ES256"), "no key in the provider's JWKS"),
    (lambda: token(key="x" * 32, alg="HS256"), "not RS256 or ES256"),
    (lambda: jwt.encode({"iss": ISSUER}, "", algorithm="none"), "not RS256 or ES256"),
    (lambda: token(nonce=None), "nonce does not match"),
    (lambda: token(sub=None), "invalid: MissingRequiredClaimError"),
    (lambda: "not.a.jwt", "not a JWT"),
])
def test_an_id_token_that_fails_a_check_is_refused_naming_the_check(tok: Any,
                                                                   reason: str) -> None:
    raw = tok()
    with pytest.raises(SignOnError) as e:
        check(raw)
    assert reason in e.value.reason
    assert raw not in e.value.reason and raw not in e.value.message  # never the token
    assert e.value.status == 401 and "could not be verified" in e.value.message


def test_a_token_without_kid_uses_the_only_key_for_its_algorithm() -> None:
    assert check(token(kid=None))["sub"] == "u-1"
    both = jwks((RSA_KEY, "a", "RS256"), (OTHER_RSA, "b", "RS256"))
    with pytest.raises(SignOnError, match="no key"):
        check(token(kid=None), keys=both)


@pytest.mark.parametrize("claims,refused", [
    ({"sub": "u-1", "accesswatch_role": "lead"}, None),
    ({"sub": "u-1", "preferred_username": "lena", "accesswatch_role": "viewer"}, None),
    ({"sub": "u-1"}, "no console role"),
    ({"sub": "u-1", "accesswatch_role": "admin"}, "no console role"),
    ({"sub": "u-1", "accesswatch_role": ["lead"]}, "no console role"),
    ({"accesswatch_role": "lead"}, "names no user"),
])
def test_the_role_comes_from_the_claim_and_must_be_a_console_role(
        claims: dict[str, Any], refused: str | None) -> None:
    if refused is None:
        name, role = identity(claims, "accesswatch_role")
        assert (name, role) == (claims.get("preferred_username", "u-1"),
                                claims["accesswatch_role"])
        return
    with pytest.raises(SignOnError) as e:
        identity(claims, "accesswatch_role")
    assert refused in e.value.reason
    if refused == "no console role":
        assert e.value.status == 403
        assert "accesswatch_role claim must be viewer, analyst, lead" in e.value.message


def test_settings_turn_sso_on_only_with_an_issuer_and_refuse_half_a_configuration() -> None:
    base: dict[str, Any] = {"_env_file": None}
    assert OidcConfig.from_settings(ConsoleSettings(**base)) is None
    with pytest.raises(ConsoleConfigError, match=r"OIDC_CLIENT_ID and .*OIDC_REDIRECT_URL"):
        OidcConfig.from_settings(ConsoleSettings(**base, console_oidc_issuer=ISSUER))
    full = dict(base, console_oidc_issuer=ISSUER, console_oidc_client_id=CLIENT,
                console_oidc_redirect_url="https://console.example/oidc/callback")
    with pytest.raises(ConsoleConfigError, match="include openid"):
        OidcConfig.from_settings(ConsoleSettings(**full, console_oidc_scopes="profile"))
    config = OidcConfig.from_settings(ConsoleSettings(**full))
    assert config is not None and config.client_secret is None  # a public client
    assert (config.role_claim, config.scopes) == ("accesswatch_role", "openid profile")


def test_an_sso_session_carries_its_role_and_counts_only_while_sso_is_configured() -> None:
    signer, users = SessionSigner(SECRET, 3600), make_users()
    grant = signer.grant(User("ana", "lead", ""))
    cookie, _ = signer.issue("ana", grant, role="lead", source="oidc")
    found = session_user(signer, users, cookie, sso=True)
    # Not the users file's ana (an analyst): the provider said lead.
    assert found is not None and (found[1].username, found[1].role) == ("ana", "lead")
    assert session_user(signer, users, cookie, sso=False) is None
    # A session whose grant does not match its role (a forged payload cannot be signed,
    # but a stale role must not pass either) is refused.
    stale, _ = signer.issue("ana", grant, role="viewer", source="oidc")
    assert session_user(signer, users, stale, sso=True) is None
    # The users file's own sessions are unchanged.
    local_cookie, _ = signer.issue("ana", signer.grant(users.get("ana")))  # type: ignore[arg-type]
    local = session_user(signer, users, local_cookie, sso=True)
    assert local is not None and local[1].role == "analyst"


def test_discovery_is_retried_cached_and_must_name_our_issuer() -> None:
    async def go() -> tuple[list[str], str]:
        asked: list[str] = []
        answers = [web.Response(status=503), web.Response(status=502)]
        names = [""]  # what the document says its issuer is: "" for the truth

        async def discovery(request: web.Request) -> web.Response:
            asked.append(request.path)
            if answers:
                return answers.pop(0)
            issuer = names[0] or str(request.url.origin())
            return web.json_response({"issuer": issuer, "jwks_uri": f"{issuer}/jwks",
                                      "authorization_endpoint": f"{issuer}/auth",
                                      "token_endpoint": f"{issuer}/token"})

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", discovery)
        async with TestServer(app) as server:
            base = str(server.make_url("")).rstrip("/")
            client = OidcClient(OidcConfig(base, CLIENT, None, "http://c/oidc/callback"),
                                backoff_s=0)
            try:
                url = await client.authorization_url(Flow.start(time.time()))
                await client.metadata()  # cached: not asked again
                # Three failures in a row: the user is told the provider is unreachable.
                answers.extend(web.Response(status=500) for _ in range(3))
                fresh = OidcClient(client.config, backoff_s=0)
                with pytest.raises(SignOnError) as e:
                    await fresh.metadata()
                assert e.value.status == 502 and "HTTP 500 after 3 tries" in e.value.reason
                names[0] = "https://evil.example"  # a document for another issuer
                with pytest.raises(SignOnError, match="names another issuer"):
                    await fresh.metadata()
                await fresh.close()
            finally:
                await client.close()
        return asked, url

    asked, url = asyncio.run(go())
    # 503, 502, then the document (kept); then 500 three times; then the other issuer's.
    assert asked == ["/.well-known/openid-configuration"] * 7
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["response_type"] == ["code"]
    assert query["client_id"] == [CLIENT] and query["scope"] == ["openid profile"]


def sso_app() -> Any:
    app = make_app()
    install(app, OidcClient(OidcConfig(ISSUER, CLIENT, "s", "http://127.0.0.1/oidc/callback")))
    return app


def test_the_login_page_offers_sso_only_when_configured() -> None:
    async def body(client: Any) -> str:
        return str(await (await client.get("/login")).text())

    assert "Sign in with single sign-on" in run(sso_app(), body)
    assert "single sign-on" not in run(make_app(), body)


def test_a_callback_without_this_browsers_flow_cookie_is_refused_in_one_line() -> None:
    async def body(client: Any) -> tuple[int, str, int]:
        resp = await client.get("/oidc/callback", params={"code": "c", "state": "s"})
        forged = await client.get("/oidc/callback", params={"code": "c", "state": "s"},
                                  cookies={"aw_oidc": "e30.bad"})
        assert SESSION_COOKIE not in resp.cookies
        return resp.status, await resp.text(), forged.status

    status, text, forged = run(sso_app(), body)
    assert (status, forged) == (401, 401)
    assert '<p class="error" role="alert">The single sign-on attempt had expired. Please ' \
           'try again.</p>' in text


def test_the_sso_routes_exist_only_when_configured() -> None:
    async def body(client: Any) -> list[int]:
        return [(await client.get(p, allow_redirects=False)).status
                for p in ("/login/oidc", "/oidc/callback")]

    assert run(make_app(), body) == [303, 303]  # unknown: not public, so to sign-in
