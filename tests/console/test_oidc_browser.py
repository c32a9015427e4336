"""Single sign-on end to end: headless Chromium signs in through a real OpenID provider.

The provider is panva's certified ``oidc-provider`` on Node (tests/console/oidc/),
at ``localhost`` — another site than the console's ``127.0.0.1``, as a force's
provider is.  The console's app is served in-process from a thread, configured
as ``ACCESSWATCH_CONSOLE_OIDC_*`` would configure it.  The browser fills the
provider's own sign-in form; the role comes from the ``accesswatch_role`` claim.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from console.oidc import OidcClient, OidcConfig, install
from console.sessions import SessionSigner
from console.web import RUNNER_OPTIONS
from tests.console.helpers import SECRET, make_app
from tests.console.oidc_provider import ProviderProcess, Unavailable
from tests.console.oidc_provider import install as install_provider
from tests.console.test_browser import CHROMIUM_ARGS, chromium

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
CLIENT_ID, CLIENT_SECRET = "accesswatch-console", "console-test-secret"
# Login name at the provider -> its accesswatch_role claim ("nobody" has none).
FP_EXPORT = "/api/false-positives.csv?purpose=sso+test"  # a lead's export, with a purpose
ACCOUNTS = {"ana.sso": "analyst", "lena.sso": "lead", "janitor": "caretaker"}


class SsoConsole:
    """The console's app with single sign-on against ``provider.mjs``, on a thread."""

    def __init__(self) -> None:
        # The port is known (and held) before the provider starts: its client's
        # redirect URI names it.
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.provider = ProviderProcess(f"{self.url}/oidc/callback", ACCOUNTS,
                                        client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        app = make_app(signer=SessionSigner(SECRET, 3600))
        install(app, OidcClient(OidcConfig(self.provider.issuer, CLIENT_ID, CLIENT_SECRET,
                                           f"{self.url}/oidc/callback")))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = web.AppRunner(app, **RUNNER_OPTIONS)
        self.call(self.runner.setup())
        self.call(web.SockSite(self.runner, self.sock).start())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        try:
            self.call(self.runner.cleanup())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        finally:
            self.provider.close()


@pytest.fixture(scope="module")
def sso() -> Iterator[SsoConsole]:
    try:
        install_provider()
        console = SsoConsole()
    except Unavailable as e:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(str(e))
    yield console
    console.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium()
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()  # cookies of its own: each test signs in afresh
    p = context.new_page()
    p.set_default_timeout(15_000)
    yield p
    context.close()


def at_the_provider(page: Any, sso: SsoConsole, login: str) -> None:
    """From the console's sign-in page to the provider's form, filled with ``login``."""
    page.goto(f"{sso.url}/")
    assert page.url == f"{sso.url}/login"  # signed out: the console sends us to sign in
    page.get_by_role("link", name="Sign in with single sign-on").click()
    page.wait_for_url(f"{sso.provider.issuer}/**")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password: the dev form checks none")


def sign_in(page: Any, sso: SsoConsole, login: str) -> None:
    at_the_provider(page, sso, login)
    page.click("button[type=submit]")  # Sign-in
    page.get_by_role("button", name="Continue").click()  # the provider's consent
    page.wait_for_url(f"{sso.url}/**")


def api(page: Any, path: str) -> tuple[int, Any]:
    """GET ``path`` with the page's own cookies, as the console's script would."""
    status, body = page.evaluate("""async (path) => {
        const r = await fetch(path);
        const type = r.headers.get('content-type') || '';
        return [r.status, type.includes('json') ? await r.json() : await r.text()];
    }""", path)
    return int(status), body


def signed_in(page: Any, sso: SsoConsole) -> bool:
    """Whether the browser holds a console session (the error page's CSP forbids fetch)."""
    names = {c["name"] for c in page.context.cookies(sso.url)}
    status = page.context.request.get(f"{sso.url}/api/me").status
    assert (status == 200) == ("aw_session" in names), (status, names)
    return status == 200


def test_an_analyst_signs_in_through_the_provider_and_gets_the_role_from_its_claim(
        sso: SsoConsole, page: Any) -> None:
    sign_in(page, sso, "ana.sso")
    page.wait_for_selector("#live.on")  # the console itself, signed in
    assert page.url == f"{sso.url}/"
    status, me = api(page, "/api/me")
    assert status == 200
    # ana.sso is in no users file: the name and role come from the provider's claims.
    assert (me["username"], me["role"]) == ("ana.sso", "analyst")
    assert me["permissions"] == ["triage", "view"]
    assert api(page, "/api/alerts")[0] == 200
    # Exports are a lead's: the analyst's claim does not reach them.
    status, body = api(page, FP_EXPORT)
    assert status == 403 and body == {"error": "your role may not export"}


def test_a_lead_claim_reaches_the_leads_routes(sso: SsoConsole, page: Any) -> None:
    sign_in(page, sso, "lena.sso")
    page.wait_for_selector("#live.on")
    status, me = api(page, "/api/me")
    assert (status, me["username"], me["role"]) == (200, "lena.sso", "lead")
    assert api(page, FP_EXPORT)[0] == 200


@pytest.mark.parametrize("login", ["janitor", "nobody"])
def test_a_claim_that_is_no_console_role_is_refused_with_a_clear_line(
        sso: SsoConsole, page: Any, login: str) -> None:
    sign_in(page, sso, login)
    error = page.get_by_role("alert")
    expect(error).to_have_text("Your single sign-on account has no console role: its "
                               "accesswatch_role claim must be viewer, analyst, lead. "
                               "Ask your administrator.")
    assert not signed_in(page, sso)


def test_a_sign_in_cancelled_at_the_provider_shows_its_refusal(sso: SsoConsole,
                                                                page: Any) -> None:
    at_the_provider(page, sso, "ana.sso")
    page.get_by_role("link", name="[ Cancel ]").click()
    page.wait_for_url(f"{sso.url}/oidc/callback**")
    expect(page.get_by_role("alert")).to_have_text(
        "The identity provider refused the sign-in (access_denied).")
    assert not signed_in(page, sso)
    # The sign-in page is still there to try again, with both ways in.
    expect(page.get_by_role("link", name="Sign in with single sign-on")).to_be_visible()
    expect(page.locator("#username")).to_be_visible()


def test_a_replayed_callback_is_refused(sso: SsoConsole, page: Any) -> None:
    """The provider's answer is good once, in the browser that asked for it."""
    callbacks: list[str] = []
    page.on("request", lambda r: callbacks.append(r.url)
            if r.url.startswith(f"{sso.url}/oidc/callback") else None)
    sign_in(page, sso, "ana.sso")
    page.wait_for_selector("#live.on")
    assert len(callbacks) == 1
    page.goto(callbacks[0])  # the flow cookie is gone, and the code was used
    expect(page.get_by_role("alert")).to_have_text(
        "The single sign-on attempt had expired. Please try again.")
