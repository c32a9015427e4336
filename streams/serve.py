"""The worker's own HTTP port: ``/metrics`` for Prometheus and ``/healthz`` for probes.

Nothing else is served, so nothing here needs authentication.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

# What the worker waits for: {"ok": bool, "waiting_for": str | None, ...}; 503 until ok.
Health = Callable[[], dict[str, Any]]


def serve_metrics(registry: CollectorRegistry, health: Health, host: str,
                  port: int) -> ThreadingHTTPServer:
    """Serve in a daemon thread; ``server.server_address`` has the bound port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path == "/healthz":
                checks = health()
                body = json.dumps(checks).encode()
                self._reply(200 if checks.get("ok") else 503, "application/json", body)
            else:
                self._reply(404, "text/plain", b"not found: try /metrics or /healthz\n")

        def _reply(self, status: int, ctype: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every few seconds is not news

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
