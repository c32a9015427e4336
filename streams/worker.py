"""``accesswatch worker``: check the ground, then run the Faust app until stopped."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any

from prometheus_client import REGISTRY, disable_created_metrics

from accesswatch.errors import UsageError
from accesswatch.rules import load_rules
from streams import kafka_compat, malloc
from streams.connect import quiet_kafka_logs, wait_for_broker
from streams.metrics import Metrics
from streams.serve import serve_metrics
from streams.settings import Settings
from streams.topics import check_topics

log = logging.getLogger("accesswatch.worker")
RESTARTS = "ACCESSWATCH_WORKER_RESTARTS"  # how many times this process has restarted itself
MAX_RESTARTS = 5


def run_worker(settings: Settings) -> int:
    """Run one worker in the foreground; SIGINT/SIGTERM stop it cleanly.

    ``/metrics`` and ``/healthz`` answer from the first second: 503 with what the
    worker waits for (the broker, reference data, its group) until it is ready.
    """
    logging.basicConfig(level=settings.log_level.upper(),
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    quiet_kafka_logs()
    malloc.limit_arenas()  # before any thread starts: they would each get an arena
    for given, setting in ((settings.rules_path, "--rules or ACCESSWATCH_RULES_PATH"),
                           (settings.model_path, "--model or ACCESSWATCH_MODEL_PATH")):
        if given is not None and not given.is_file():  # said now, not after a slow load
            what = "is a directory" if given.is_dir() else "no such file"
            raise UsageError(f"{given}: {what} ({setting}); give an existing file")
    pending = None
    if settings.model_path is not None:
        from models.served import start_served_model

        # Checked and flattened in a child process (scikit-learn never loads in a worker),
        # while this one loads the rules and its own modules.
        pending = start_served_model(settings.model_path)
    try:
        rules = load_rules(settings.rules_path)  # a bad pack stops here: file, line, rule id
    except BaseException:
        if pending is not None:
            pending.cancel()
        raise
    log.info("rule pack %s: %d active rules, version %s", rules.source, len(rules.active),
             rules.version)
    for warning in rules.warnings:  # allow-list entries past their expiry, left out
        log.warning("rule pack %s: %s", rules.version, warning)
    import streams.app  # noqa: F401 - Faust and the rest, loaded while the model is checked

    model = None
    if pending is not None:
        model = pending.result()  # a bad model stops here, saying why
        log.info("anomaly model %s, version %s", settings.model_path, model.version)
    disable_created_metrics()  # *_created series double the count and no dashboard reads them
    metrics = Metrics(REGISTRY)
    holder: dict[str, Any] = {}

    def health() -> dict[str, Any]:
        pipeline = holder.get("pipeline")
        if pipeline is not None:
            return pipeline.health()
        return {"ok": False, "waiting_for": "broker", "reference_ready": False,
                "broker_up": False, "partitions": []}

    try:
        server = serve_metrics(REGISTRY, health, settings.metrics_host, settings.metrics_port)
    except OSError as e:
        print(f"accesswatch worker: cannot serve metrics on {settings.metrics_host}:"
              f"{settings.metrics_port}: {e.strerror} (--metrics-port)", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    log.info("metrics on http://%s:%d/metrics (health: /healthz)", host, port)
    try:
        return _run(settings, rules, model, metrics, holder)
    finally:
        server.shutdown()


def _run(settings: Settings, rules: Any, model: Any, metrics: Metrics,
         holder: dict[str, Any]) -> int:
    metrics.broker_up.set(0)
    wait_for_broker(settings, deadline=settings.broker_wait_for(one_shot=False))
    metrics.broker_up.set(1)
    problems, partitions = check_topics(settings)
    if problems:
        for p in problems:
            print(f"accesswatch worker: {p}", file=sys.stderr)
        print("accesswatch worker: run `accesswatch topics create` (same settings): it makes "
              "what is missing and says what to do about the rest", file=sys.stderr)
        return 2

    import faust
    import mode.loop

    with contextlib.suppress(ImportError):  # uvloop is a dependency except on Windows
        mode.loop.use("uvloop")
    from streams.app import Pipeline

    kafka_compat.install(settings.empty_fetch_backoff_ms)
    pipeline = holder["pipeline"] = Pipeline(settings, rules, metrics, partitions, model)
    worker = faust.Worker(pipeline.app, loglevel=settings.log_level.upper(),
                          override_logging=False, quiet=True)
    worker.spinner = None  # its terminal escapes end up in log files
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as e:
        code = int(e.code or 0)
    except Exception:
        if pipeline.restart_reason is None:
            raise
    reason = pipeline.restart_reason or getattr(pipeline.source, "restart_reason", None)
    if reason is not None:
        _restart(reason)
    return code


def _restart(reason: str) -> None:
    """Start this worker afresh, in this process: it reads again from the committed offsets.

    What it had already done it skips (stored state, output marks), so a restart
    repeats and loses nothing.  A few in a row mean something else is wrong: stop.
    """
    restarts = int(os.environ.get(RESTARTS, "0")) + 1
    if restarts > MAX_RESTARTS:
        log.error("not restarting again after %d restarts (%s)", MAX_RESTARTS, reason)
        return
    log.warning("restarting (%d of at most %d): %s", restarts, MAX_RESTARTS, reason)
    logging.shutdown()
    os.environ[RESTARTS] = str(restarts)
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
