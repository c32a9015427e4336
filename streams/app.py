"""The worker: a Faust app that runs the event source, the checkpoint and the timers.

Faust runs the lifecycle (start, signals, the tasks and timers below, a clean
stop).  Events come from a source (``streams/source.py``); each batch goes
through the checkpoint (``streams/checkpoint.py``), which alone decides what
is published, stored and committed, and when.  Reference data comes from the
``ref.*`` topics through ``ReferenceFeed``; all counting is in ``Metrics``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Iterable
from typing import Any

import faust
from aiokafka import AIOKafkaProducer

from accesswatch.core import Detector
from accesswatch.reference import ReferenceData
from accesswatch.rules import RulePack
from streams import malloc
from streams.checkpoint import Checkpoint
from streams.connect import aiokafka_options, broker_reachable, faust_credentials
from streams.metrics import Metrics
from streams.reference_feed import ReferenceFeed
from streams.reload import Reloader
from streams.settings import Settings
from streams.source import FaustSource, KafkaSource, Source

log = logging.getLogger("accesswatch.worker")
PRODUCE_BATCH_BYTES = 512 * 1024  # a changelog checkpoint goes out in batches this big
TRIM_EVERY_TICKS = 5  # seconds between handing the allocator's free pages back


class App(faust.App):
    """``faust.App`` without Faust's own ``Monitor``, and with the pipeline's own stop.

    The Monitor keeps per-event timings for Faust's web stats page, which is
    off here (our metrics are in ``Metrics``); measured by ``make bench`` it
    cost about a tenth of the worker's throughput.
    """

    pipeline: Pipeline | None = None

    def on_init_dependencies(self) -> Iterable[Any]:
        dependencies = super().on_init_dependencies()
        self.sensors.remove(self.monitor)
        return dependencies

    async def on_stop(self) -> None:
        if self.pipeline is not None:
            await self.pipeline.stop()
        await super().on_stop()


class Pipeline:
    """Everything one worker holds, wired into a ``faust.App``."""

    def __init__(self, settings: Settings, rules: RulePack, metrics: Metrics,
                 ref_partitions: dict[str, int], model: Any = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.ref = ReferenceData()
        self.detector = Detector(rules, self.ref, clock=time.time, model=model)
        self.reloader = Reloader(self.detector, metrics, settings.rules_path, settings.model_path)
        self.feed = ReferenceFeed(settings, self.ref, metrics, ref_partitions)
        self.broker_up = True
        self.restart_reason: str | None = None  # set when the worker must start afresh
        self._ticks = 0
        self._said: str | None = "start"  # what the log last said the worker waits for
        self.producer: AIOKafkaProducer | None = None  # made in the app's loop, at start
        self.checkpoint = Checkpoint(settings, self.detector, metrics)
        self.app = self._build_app()
        self.source: Source = FaustSource(settings, self.checkpoint, self.app) \
            if not settings.fast_path else KafkaSource(settings, self.checkpoint)
        self.checkpoint.source = self.source
        metrics.rules.info({"version": rules.version, "rules": str(len(rules.active))})
        metrics.expect_alerts(self.detector.alerting_rules())
        metrics.model.info({"version": model.version, "name": model.name} if model is not None
                           else {"version": "none"})
        metrics.expect_model_rows()  # at 0 without a model: the dashboards read the series
        metrics.broker_up.set(1)

    def waiting_for(self) -> str | None:
        """What the worker waits for before it can handle events, if anything."""
        if not self.broker_up:
            return "broker"
        if not self.feed.ready.is_set():
            return "reference data"
        if not self.source.joined.is_set():
            return "group"
        return None

    def health(self) -> dict[str, Any]:
        waiting = self.waiting_for()
        return {"ok": waiting is None, "waiting_for": waiting,
                "reference_ready": self.feed.ready.is_set(), "broker_up": self.broker_up,
                "partitions": sorted(self.checkpoint.owned)}

    def _build_app(self) -> faust.App:
        s = self.settings
        datadir = s.data_path
        app = App(
            s.app_id,
            broker=[f"kafka://{server}" for server in s.servers],
            broker_credentials=faust_credentials(s),
            broker_client_id=s.client_id,
            key_serializer="raw",
            value_serializer="raw",
            datadir=str(datadir),
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            broker_commit_interval=s.commit_interval,
            broker_session_timeout=s.session_timeout,
            broker_heartbeat_interval=min(3.0, s.session_timeout / 3),
            consumer_group_instance_id=s.instance_id,
            consumer_auto_offset_reset="earliest",
            stream_buffer_maxsize=max(4096, 2 * s.batch_size),
            broker_max_poll_records=s.batch_size,
            # Faust's own web server serves nothing of ours, and its views could show
            # per-user state: it is not started at all (/metrics and /healthz are ours).
            web_enabled=False,
        )
        app.pipeline = self
        # The Kafka source brings its own consumer: Faust then starts none (no group).
        app.producer_only = s.fast_path
        app.task(self._run)
        app.task(self.feed.run)
        app.timer(2.0, name="accesswatch.lag")(self.checkpoint.measure_lag)
        app.timer(5.0, name="accesswatch.broker-probe")(self._probe_broker)
        app.timer(s.reload_interval, name="accesswatch.reload")(self.reloader.poll)
        # Held alert versions go out when due, and checkpoints happen, though no event comes.
        app.timer(1.0, name="accesswatch.tick")(self._tick)
        return app

    async def _run(self) -> None:
        self.producer = AIOKafkaProducer(**aiokafka_options(self.settings), linger_ms=0,
                                         max_batch_size=PRODUCE_BATCH_BYTES)
        await self.producer.start()
        self.checkpoint.use(self.producer)
        await self.feed.ready.wait()  # events wait for reference data
        _quiet_gc()
        log.info("processing %s in batches of up to %d events (%s)", self.settings.topic_events,
                 self.settings.batch_size, "Kafka source" if self.settings.fast_path
                 else "Faust source")
        try:
            await self.source.run(self._handle)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("the event source stopped; restarting to read on from the last "
                          "checkpoint")
            self.restart_reason = f"the event source stopped: {type(e).__name__}"
            await self.app.crash(e)

    async def _handle(self, messages: list[Any]) -> None:
        stall = self.settings.stall_file
        while stall is not None and stall.exists():  # a test hook: see Settings.stall_file
            await asyncio.sleep(0.1)
        await self.checkpoint.handle(messages)

    async def stop(self) -> None:
        """A last checkpoint, then the clients close; one line says what this run did.

        The reference state is written too, if it changed since its last snapshot,
        so the next start reads only what comes after.
        """
        log.info("stopping after %s", ", ".join(f"{n:,} {what}" for what, n
                                                 in self.checkpoint.totals.items()))
        if self.feed.unsaved:
            try:
                await self.feed.snapshot("stop")
            except Exception as e:  # the stop goes on: the next start reads more of the topics
                log.warning("no reference snapshot at stop (%s)", type(e).__name__)
        try:
            await self.checkpoint.close()
        except Exception as e:
            log.warning("no last checkpoint at stop (%s): the next owner replays from the "
                        "one before", type(e).__name__)
        await self.source.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def _tick(self) -> None:
        self._ticks += 1
        if self._ticks % TRIM_EVERY_TICKS == 0:  # batches leave free heap pages behind
            malloc.trim()
        waiting = self.waiting_for()
        if waiting != self._said:  # one line per change of what the worker waits for
            log.info("waiting for %s", waiting) if waiting else log.info("ready")
            self._said = waiting
        await self.checkpoint.tick()
        self.metrics.updates_held.set(len(self.checkpoint.outputs.held))

    async def _probe_broker(self) -> None:
        up = await asyncio.get_running_loop().run_in_executor(
            None, broker_reachable, self.settings, 2.0)
        if up != self.broker_up:
            (log.info if up else log.error)("broker at %s is %s", self.settings.bootstrap_servers,
                                            "reachable again" if up else "unreachable")
        self.broker_up = up
        self.metrics.broker_up.set(1 if up else 0)


def _quiet_gc() -> None:
    """Once reference data is in: keep it out of the collector's scans, collect less often.

    The reference tables are hundreds of thousands of long-lived objects that every
    full collection walked again, and a batch makes enough short-lived ones to
    trigger young collections many times over: measured, about a tenth of a busy
    worker's time with the model.  Objects made later (reference updates, state)
    are collected as usual.
    """
    gc.collect()
    gc.freeze()
    gen0, *older = gc.get_threshold()
    gc.set_threshold(max(gen0, malloc.GC_YOUNG_THRESHOLD), *older)
    malloc.trim()  # what reading reference data dropped goes back to the system
