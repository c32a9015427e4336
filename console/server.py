"""``accesswatch console``: topics checked, feeds started, the web app served until a signal."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import ssl
import sys
from collections.abc import Callable

from aiohttp import web

from console.auth import ConsoleConfigError, Users, load_users
from console.client_address import parse_networks, trust_proxies
from console.config import ConsoleSettings, console_topic_specs
from console.consultations import ConsultationLog, ConsultationTopic
from console.directory import CaseFacts, ProtectedSubjects, Watchlist
from console.feeds import Feeds
from console.history import History
from console.oidc import OidcClient, OidcConfig
from console.oidc import install as install_oidc
from console.revocations import FILE as REVOCATIONS_FILE
from console.revocations import Revocations
from console.sessions import SessionSigner
from console.siem import run_webhook
from console.state import ConsoleState
from console.store import AlertStore
from console.trust import Quarantine, RecordSigner, signing_key
from console.trust import install as install_trust
from console.users_file import watch_users_file
from console.web import RUNNER_OPTIONS, build_app
from console.webhook import WebhookSink
from streams.topics import admin, create_topics, partition_counts

log = logging.getLogger("accesswatch.console")
Say = Callable[[str], None]


def run_console(s: ConsoleSettings, say: Say, wait_for_broker: Callable[[], None]) -> int:
    try:
        oidc = OidcConfig.from_settings(s)
    except ConsoleConfigError as e:
        say(f"console: {e}")
        return 2
    if s.console_users is None and oidc is None:
        say("console: give a users file: --users FILE or ACCESSWATCH_CONSOLE_USERS "
            "(passwords from `accesswatch console hash-password`), or single sign-on "
            "(ACCESSWATCH_CONSOLE_OIDC_ISSUER)")
        return 2
    try:
        # Single sign-on alone: no local users; sessions last the default 8 hours.
        users = load_users(s.console_users) if s.console_users is not None else Users({})
    except ConsoleConfigError as e:
        say(f"console: {e}")
        return 2
    if s.console_secret is not None:
        secret = s.console_secret.get_secret_value().encode()
        if len(secret) < 16:
            say("console: ACCESSWATCH_CONSOLE_SECRET must be at least 16 characters")
            return 2
    else:
        secret = secrets.token_bytes(32)
        say("console: no ACCESSWATCH_CONSOLE_SECRET set: sessions end when the console stops")
    signing = s.console_signing_key.get_secret_value() if s.console_signing_key else None
    if signing is not None and len(signing) < 32:
        say("console: ACCESSWATCH_CONSOLE_SIGNING_KEY must be at least 32 characters")
        return 2
    key, where = signing_key(signing, secret, s.console_secret is not None)
    say(where)
    wait_for_broker()
    for status in create_topics(s, console_topic_specs(s)):
        if status.state == "mismatch":
            say(f"console: {status.line()}")
            return 2
    client = admin(s)
    try:
        counts = partition_counts(client, [s.topic_alerts, s.topic_events, s.topic_ref_staff,
                                           s.topic_ref_cases, s.topic_ref_subjects,
                                           s.triage_topic, s.cases_topic, s.watchlist_topic])
    finally:
        client.close()
    if not counts.get(s.topic_alerts):
        say(f"console: topic {s.topic_alerts} does not exist (run `accesswatch topics create`)")
        return 2
    try:
        parse_networks(s.console_trusted_proxies)
    except ValueError as e:
        say(f"console: ACCESSWATCH_CONSOLE_TRUSTED_PROXIES: {e}")
        return 2
    # Signed-out sessions and failed sign-ins outlive a restart (revocations.sqlite3).
    signer = SessionSigner(secret, users.session_minutes * 60, revocations=Revocations(
        s.console_data_dir / REVOCATIONS_FILE))
    asyncio.run(_serve(s, users, signer, counts, say, record_signer=RecordSigner(key),
                       oidc=oidc))
    return 0


async def _serve(s: ConsoleSettings, users: object, signer: SessionSigner,
                 counts: dict[str, int], say: Say, *,
                 record_signer: RecordSigner | None = None,
                 oidc: OidcConfig | None = None) -> None:
    history = History(s.console_data_dir / "history.sqlite3", s.console_history_days)
    protected = ProtectedSubjects()
    state = ConsoleState(AlertStore(s.console_max_alerts),
                         case_gap_s=s.console_case_gap_hours * 3600, history=history,
                         case_facts=CaseFacts(s.console_closed_case_grace_hours * 3600),
                         protected=protected, watchlist=Watchlist(protected))
    quarantine = Quarantine()
    feeds = Feeds(s, state, counts, signer=record_signer, quarantine=quarantine)
    consulted = ConsultationTopic(s, ConsultationLog(s.console_consultations_held),
                                  metrics=quarantine.metrics)
    app = build_app(state=state, users=users, signer=signer,  # type: ignore[arg-type]
                    recorder=feeds.record, case_recorder=feeds.record_case,
                    watch_recorder=feeds.record_watch,
                    consultation_recorder=consulted, consultation_log=consulted.held,
                    secure_cookies=s.console_secure_cookies)
    install_trust(app, quarantine)
    if oidc is not None:
        install_oidc(app, OidcClient(oidc))
        say(f"console: single sign-on with {oidc.issuer} (roles from the "
            f"{oidc.role_claim} claim)")
    trust_proxies(app, parse_networks(s.console_trusted_proxies), s.console_client_ip_header)
    if s.console_users is not None:
        watch_users_file(app, s.console_users)
    runner = web.AppRunner(app, **RUNNER_OPTIONS)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    webhook: asyncio.Task[None] | None = None
    try:
        await feeds.start()
        await consulted.start()
        site = web.TCPSite(runner, s.console_host, s.console_port, ssl_context=_tls(s))
        await site.start()
        scheme = "https" if _tls(s) else "http"
        for host, port in (a[:2] for a in runner.addresses):
            say(f"console: serving on {scheme}://{host}:{port}")
        if s.console_webhook_url:
            secret = (s.console_webhook_secret.get_secret_value()
                      if s.console_webhook_secret else None)
            webhook = asyncio.create_task(run_webhook(
                s, state, WebhookSink(s.console_webhook_url, secret=secret),
                counts[s.topic_alerts]), name="webhook")
            say(f"console: sending alerts to the webhook (consumer group {s.webhook_group})")
        await stop.wait()
        say("console: stopping")
    finally:
        if webhook is not None:
            webhook.cancel()
            await asyncio.gather(webhook, return_exceptions=True)
        await runner.cleanup()
        await feeds.stop()
        await consulted.stop()
        history.close()
        signer.revocations.close()


def _tls(s: ConsoleSettings) -> ssl.SSLContext | None:
    if s.console_tls_certfile is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(s.console_tls_certfile), s.console_tls_keyfile and
                        str(s.console_tls_keyfile))
    return ctx


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for name in ("kafka", "aiokafka"):
        logging.getLogger(name).setLevel(logging.WARNING)
