"""Connecting to the broker: client options from settings, and waiting for it politely."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from accesswatch.errors import AccessWatchError
from streams.settings import Settings

log = logging.getLogger("accesswatch.connect")


class BrokerUnavailable(AccessWatchError):
    """No bootstrap server accepted a connection before the deadline."""


def kafka_python_options(s: Settings) -> dict[str, Any]:
    """Connection options for kafka-python clients (admin, producer, consumer)."""
    opts: dict[str, Any] = {"bootstrap_servers": s.servers, "client_id": s.client_id,
                            "security_protocol": s.security_protocol}
    if "SSL" in s.security_protocol:
        opts.update(ssl_cafile=_str(s.ssl_cafile), ssl_certfile=_str(s.ssl_certfile),
                    ssl_keyfile=_str(s.ssl_keyfile),
                    ssl_password=s.ssl_password.get_secret_value() if s.ssl_password else None)
    if s.security_protocol.startswith("SASL"):
        opts.update(sasl_mechanism=s.sasl_mechanism, sasl_plain_username=s.sasl_username,
                    sasl_plain_password=_secret(s))
    return opts


def aiokafka_options(s: Settings) -> dict[str, Any]:
    """Connection options for aiokafka clients."""
    opts: dict[str, Any] = {"bootstrap_servers": s.servers, "client_id": s.client_id,
                            "security_protocol": s.security_protocol}
    if "SSL" in s.security_protocol:
        opts["ssl_context"] = ssl_context(s)
    if s.security_protocol.startswith("SASL"):
        opts.update(sasl_mechanism=s.sasl_mechanism, sasl_plain_username=s.sasl_username,
                    sasl_plain_password=_secret(s))
    return opts


def faust_credentials(s: Settings) -> Any:
    """``broker_credentials`` for ``faust.App``: None, an SSL context or SASL credentials."""
    import faust

    context = ssl_context(s) if "SSL" in s.security_protocol else None
    if s.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=s.sasl_username, password=_secret(s),
                                     mechanism=s.sasl_mechanism, ssl_context=context)
    return context


def ssl_context(s: Settings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=_str(s.ssl_cafile))
    if s.ssl_certfile is not None:
        password = s.ssl_password.get_secret_value() if s.ssl_password else None
        ctx.load_cert_chain(str(s.ssl_certfile), _str(s.ssl_keyfile), password)
    return ctx


def broker_reachable(s: Settings, timeout: float = 2.0) -> bool:
    """True when some bootstrap server accepts a TCP connection."""
    for server in s.servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


def wait_for_broker(s: Settings, *, deadline: float | None = None,
                    say: Callable[[str], None] | None = None) -> None:
    """Return once the broker is reachable, retrying with backoff (1 s, 2 s, … 30 s).

    ``deadline`` is seconds from now (None: wait forever); past it,
    ``BrokerUnavailable`` says which servers were tried and for how long.  A
    retry is announced only when another follows it, so a short deadline
    ends in one line: the giving up.
    """
    say = say or log.warning
    started, delay = time.monotonic(), 1.0
    while not broker_reachable(s):
        waited = time.monotonic() - started
        if deadline is not None and waited >= deadline:
            raise BrokerUnavailable(
                f"no Kafka broker reachable at {s.bootstrap_servers} after {waited:.0f} s "
                "(is it running? check ACCESSWATCH_BOOTSTRAP_SERVERS; "
                "ACCESSWATCH_BROKER_WAIT sets how long to wait)")
        pause = delay if deadline is None else min(delay, deadline - waited)
        if deadline is None or waited + pause < deadline:
            say(f"no Kafka broker reachable at {s.bootstrap_servers}; retrying in "
                f"{pause:.0f} s (is it running? set ACCESSWATCH_BOOTSTRAP_SERVERS)")
        time.sleep(pause)
        delay = min(delay * 2, 30.0)


def quiet_kafka_logs() -> None:
    """kafka-python and aiokafka log every failed connection attempt; we report our own."""
    for name in ("kafka", "aiokafka"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _secret(s: Settings) -> str | None:
    return s.sasl_password.get_secret_value() if s.sasl_password else None


def _str(value: object | None) -> str | None:
    return None if value is None else str(value)
