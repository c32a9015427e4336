"""``accesswatch worker``: check the ground, then run the Faust app until stopped."""

from __future__ import annotations

import contextlib
import logging
import socket
import sys

from prometheus_client import REGISTRY, disable_created_metrics

from accesswatch.rules import load_rules
from streams import fetch_backoff, recovery_order
from streams.connect import quiet_kafka_logs, wait_for_broker
from streams.metrics import Metrics
from streams.serve import serve_metrics
from streams.settings import Settings
from streams.topics import check_topics

log = logging.getLogger("accesswatch.worker")


def run_worker(settings: Settings) -> int:
    """Run one worker in the foreground; SIGINT/SIGTERM stop it cleanly."""
    logging.basicConfig(level=settings.log_level.upper(),
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    quiet_kafka_logs()
    rules = load_rules(settings.rules_path)  # a bad pack stops here: file, line, rule id
    log.info("rule pack %s: %d active rules, version %s", rules.source, len(rules.active),
             rules.version)
    model = None
    if settings.model_path is not None:
        from models import load_model

        model = load_model(settings.model_path)  # a bad model stops here, saying why
        log.info("anomaly model %s, version %s", settings.model_path, model.version)
    wait_for_broker(settings, deadline=settings.broker_wait or None)
    problems, partitions = check_topics(settings)
    if problems:
        for p in problems:
            print(f"accesswatch worker: {p}", file=sys.stderr)
        print("accesswatch worker: run `accesswatch topics create` first (same settings)",
              file=sys.stderr)
        return 2

    import faust
    import mode.loop

    with contextlib.suppress(ImportError):  # uvloop is a dependency except on Windows
        mode.loop.use("uvloop")
    from streams.app import Pipeline

    fetch_backoff.install(settings.empty_fetch_backoff_ms)
    recovery_order.install()
    disable_created_metrics()  # *_created series double the count and no dashboard reads them
    metrics = Metrics(REGISTRY)
    pipeline = Pipeline(settings, rules, metrics, partitions, model)
    web = (settings.web_host, settings.web_port)
    if settings.web_port and not _can_bind(*web):
        print(f"accesswatch worker: web port {web[0]}:{web[1]} is in use (--web-port)",
              file=sys.stderr)
        return 2
    try:
        server = serve_metrics(REGISTRY, pipeline.health, settings.metrics_host,
                               settings.metrics_port)
    except OSError as e:
        print(f"accesswatch worker: cannot serve metrics on {settings.metrics_host}:"
              f"{settings.metrics_port}: {e.strerror} (--metrics-port)", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    log.info("metrics on http://%s:%d/metrics (health: /healthz)", host, port)
    worker = faust.Worker(pipeline.app, loglevel=settings.log_level.upper(),
                          override_logging=False, quiet=True)
    worker.spinner = None  # its terminal escapes end up in log files
    try:
        worker.execute_from_commandline()
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        server.shutdown()
    return 0


def _can_bind(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
