"""A webhook sink for a SIEM: POST each ECS document, retrying with exponential backoff.

Retried: connection errors, time-outs, 408, 425, 429 and 5xx (a ``Retry-After``
in seconds is honoured, capped at ``max_delay``).  Any other 4xx is the
receiver refusing the document itself: retrying would not help, so it is
logged by status and skipped.  With ``secret`` set, each body is signed:
``X-Accesswatch-Signature: sha256=<hex hmac of the body>``.

The sink sends what it is given.  Which versions of an alert it is given (each
higher than the last sent, never an older one) is the loop's choice:
``console.siem.run_webhook``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

log = logging.getLogger("accesswatch.console.webhook")
RETRY_STATUSES = frozenset({408, 425, 429})
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    status: int | None  # the last HTTP status; None when no answer came


class WebhookSink:
    def __init__(self, url: str, *, secret: str | None = None, base_delay: float = 0.5,
                 max_delay: float = 60.0, max_attempts: int | None = None,
                 timeout: float = 10.0, jitter: float = 0.1,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.url, self._secret = url, secret.encode() if secret else None
        self.base_delay, self.max_delay = base_delay, max_delay
        self.max_attempts, self.jitter, self._sleep = max_attempts, jitter, sleep
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1, 2, …)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        wait = min(self.base_delay * 2 ** (attempt - 1), self.max_delay)
        return wait * (1 + random.uniform(-self.jitter, self.jitter)) if self.jitter else wait

    async def deliver(self, doc: dict[str, Any]) -> Delivery:
        """Send one document; retries until delivered, refused, or out of attempts."""
        body = msgspec.json.encode(doc)
        headers = {"Content-Type": "application/json", "User-Agent": "accesswatch-console"}
        if self._secret is not None:
            mac = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
            headers["X-Accesswatch-Signature"] = f"sha256={mac}"
        attempt, status = 0, None
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                session = self._client()
                async with session.post(self.url, data=body, headers=headers) as resp:
                    status = resp.status
                    if 200 <= status < 300:
                        return Delivery(True, attempt, status)
                    if status not in RETRY_STATUSES and status < 500:
                        log.error("webhook refused an alert with HTTP %d; skipped", status)
                        return Delivery(False, attempt, status)
                    retry_after = _seconds(resp.headers.get("Retry-After"))
                    problem = f"HTTP {status}"
            except (aiohttp.ClientError, TimeoutError) as e:
                status, problem = None, type(e).__name__
            if self.max_attempts is not None and attempt >= self.max_attempts:
                log.error("webhook gave up after %d attempts (%s)", attempt, problem)
                return Delivery(False, attempt, status)
            wait = self.delay(attempt, retry_after)
            log.warning("webhook attempt %d failed (%s); retrying in %.1f s", attempt, problem,
                        wait)
            await self._sleep(wait)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: use our own backoff
