"""The webhook sink retries with exponential backoff against a real local HTTP server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from console.ecs import to_ecs
from console.webhook import WebhookSink
from tests.console.helpers import alert
from tests.streams.conftest import free_port


class Receiver:
    """A SIEM stand-in that answers ``statuses`` in turn, then 200."""

    def __init__(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        self.statuses, self.headers = list(statuses), headers or {}
        self.bodies: list[bytes] = []
        self.seen_at: list[float] = []
        self.request_headers: list[dict[str, str]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        self.seen_at.append(time.monotonic())
        self.bodies.append(await request.read())
        self.request_headers.append(dict(request.headers))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, headers=self.headers if status != 200 else None)


def deliver(receiver: Receiver, **options: Any) -> tuple[Any, list[float]]:
    sleeps: list[float] = []

    async def go() -> Any:
        async with TestServer(receiver.app()) as server:
            real_sleep = options.pop("real_sleep", False)

            async def sleep(seconds: float) -> None:
                sleeps.append(seconds)
                if real_sleep:
                    await asyncio.sleep(seconds)

            sink = WebhookSink(str(server.make_url("/hook")), sleep=sleep, **options)
            try:
                return await sink.deliver(to_ecs(alert()))
            finally:
                await sink.close()

    return asyncio.run(go()), sleeps


def test_failures_are_retried_with_doubling_waits_until_delivered() -> None:
    receiver = Receiver(503, 500, 502)
    result, sleeps = deliver(receiver, base_delay=0.05, jitter=0)
    assert result.delivered and result.attempts == 4 and result.status == 200
    assert sleeps == [0.05, 0.1, 0.2]
    assert len(receiver.bodies) == 4 and len(set(receiver.bodies)) == 1
    doc = json.loads(receiver.bodies[-1])
    assert doc["event"]["kind"] == "alert" and doc["rule"]["id"] == "AW-002"


def test_the_waits_really_happen_between_attempts() -> None:
    receiver = Receiver(503, 503)
    result, _ = deliver(receiver, base_delay=0.1, jitter=0, real_sleep=True)
    assert result.delivered and result.attempts == 3
    first, second = (b - a for a, b in zip(receiver.seen_at, receiver.seen_at[1:], strict=False))
    assert first >= 0.1 and second >= 0.2 and second > first * 1.5


def test_waits_are_capped() -> None:
    sink = WebhookSink("http://127.0.0.1:1/", base_delay=1, max_delay=8, jitter=0)
    assert [sink.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    jittered = WebhookSink("http://127.0.0.1:1/", base_delay=1, jitter=0.1)
    assert all(0.9 * 4 <= jittered.delay(3) <= 1.1 * 4 for _ in range(50))


def test_rate_limits_are_retried_after_the_time_asked() -> None:
    receiver = Receiver(429, headers={"Retry-After": "3"})
    result, sleeps = deliver(receiver, base_delay=0.05, jitter=0)
    assert result.delivered and result.attempts == 2 and sleeps == [3.0]


def test_a_refused_document_is_not_retried() -> None:
    receiver = Receiver(400)
    result, sleeps = deliver(receiver, base_delay=0.05, jitter=0)
    assert not result.delivered and result.attempts == 1 and result.status == 400
    assert sleeps == []


def test_an_unreachable_receiver_is_retried_until_attempts_run_out() -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def go() -> Any:
        sink = WebhookSink(f"http://127.0.0.1:{free_port()}/hook", base_delay=0.01, jitter=0,
                           max_attempts=3, sleep=sleep)
        try:
            return await sink.deliver({"event": {"kind": "alert"}})
        finally:
            await sink.close()

    result = asyncio.run(go())
    assert not result.delivered and result.attempts == 3 and result.status is None
    assert sleeps == [0.01, 0.02]


def test_bodies_are_signed_when_a_secret_is_set() -> None:
    receiver = Receiver()
    result, _ = deliver(receiver, secret="shared-secret", jitter=0)
    assert result.delivered
    sent = receiver.request_headers[0]["X-Accesswatch-Signature"]
    want = hmac.new(b"shared-secret", receiver.bodies[0], hashlib.sha256).hexdigest()
    assert sent == f"sha256={want}"
