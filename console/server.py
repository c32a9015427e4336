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

from console.auth import ConsoleConfigError, load_users
from console.config import ConsoleSettings, console_topic_specs
from console.directory import CaseFacts, ProtectedSubjects, Watchlist
from console.feeds import Feeds
from console.history import History
from console.sessions import SessionSigner
from console.siem import run_webhook
from console.state import ConsoleState
from console.store import AlertStore
from console.web import RUNNER_OPTIONS, build_app
from console.webhook import WebhookSink
from streams.topics import admin, create_topics, partition_counts

log = logging.getLogger("accesswatch.console")
Say = Callable[[str], None]


def run_console(s: ConsoleSettings, say: Say, wait_for_broker: Callable[[], None]) -> int:
    if s.console_users is None:
        say("console: give a users file: --users FILE or ACCESSWATCH_CONSOLE_USERS "
            "(passwords from `accesswatch console hash-password`)")
        return 2
    try:
        users = load_users(s.console_users)
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
    signer = SessionSigner(secret, users.session_minutes * 60)
    asyncio.run(_serve(s, users, signer, counts, say))
    return 0


async def _serve(s: ConsoleSettings, users: object, signer: SessionSigner,
                 counts: dict[str, int], say: Say) -> None:
    history = History(s.console_data_dir / "history.sqlite3", s.console_history_days)
    protected = ProtectedSubjects()
    state = ConsoleState(AlertStore(s.console_max_alerts),
                         case_gap_s=s.console_case_gap_hours * 3600, history=history,
                         case_facts=CaseFacts(s.console_closed_case_grace_hours * 3600),
                         protected=protected, watchlist=Watchlist(protected))
    feeds = Feeds(s, state, counts)
    app = build_app(state=state, users=users, signer=signer,  # type: ignore[arg-type]
                    recorder=feeds.record, case_recorder=feeds.record_case,
                    watch_recorder=feeds.record_watch)
    runner = web.AppRunner(app, **RUNNER_OPTIONS)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    webhook: asyncio.Task[None] | None = None
    try:
        await feeds.start()
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
        history.close()


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
