"""The Faust app: one agent reads ``access.events`` in batches and drives the core.

Per-user state lives in a changelogged table of msgpack bytes, fronted by
``UserStates`` (live objects in memory, one changelog write per member per
commit); reference data arrives from the ``ref.*`` topics through
``ReferenceFeed``; alerts and dead letters go out on their topics.  All
counting is in ``Metrics``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import faust

from accesswatch.core import Detector
from accesswatch.reference import ReferenceData
from accesswatch.rules import RulePack
from streams import fast_path
from streams.batch import BatchOutcome, Message, run_batch
from streams.connect import faust_credentials
from streams.gaps import HeadCheck, committed_offsets
from streams.metrics import Metrics
from streams.outputs import Outputs
from streams.reference_feed import ReferenceFeed
from streams.reload import Reloader
from streams.settings import Settings
from streams.user_states import FlushOnCommit, UserStates

log = logging.getLogger("accesswatch.worker")
PRIME_TIMEOUT = 60.0  # seconds to read back a new partition's outputs and commit
GC_YOUNG_THRESHOLD = 50_000  # allocations between young collections (Python's default: 700)


class App(faust.App):
    """``faust.App`` without Faust's own ``Monitor`` among its sensors.

    The Monitor keeps per-event timings and counts for Faust's web stats page,
    which is off here (our metrics are in ``Metrics``); measured by ``make
    bench`` it cost about a tenth of the worker's throughput.  ``app.monitor``
    still exists for the few direct calls Faust makes to it.
    """

    def on_init_dependencies(self) -> Iterable[Any]:
        dependencies = super().on_init_dependencies()
        self.sensors.remove(self.monitor)
        return dependencies


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
        self.next_offset: dict[int, int] = {}  # events partition → next offset to process
        self._handling = False  # a batch is being handled: held versions wait for its end
        self._gc_quiet = False
        self.app = self._build_app()
        metrics.rules.info({"version": rules.version, "rules": str(len(rules.active))})
        metrics.expect_alerts(self.detector.alerting_rules())
        metrics.model.info({"version": model.version, "name": model.name} if model is not None
                           else {"version": "none"})
        metrics.expect_model_rows()  # at 0 without a model: the dashboards read the series
        metrics.broker_up.set(1)

    def health(self) -> dict[str, bool]:
        return {"reference_ready": self.feed.ready.is_set(), "broker_up": self.broker_up}

    def _build_app(self) -> faust.App:
        s = self.settings
        datadir = s.data_dir or Path(tempfile.gettempdir()) / f"accesswatch-{s.app_id}"
        app = App(
            s.app_id,
            broker=[f"kafka://{server}" for server in s.servers],
            broker_credentials=faust_credentials(s),
            broker_client_id=s.client_id,
            key_serializer="raw",
            value_serializer="raw",
            store="memory://",
            datadir=str(datadir),
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            processing_guarantee=s.processing_guarantee,
            broker_commit_interval=s.commit_interval,
            broker_session_timeout=s.session_timeout,
            broker_heartbeat_interval=min(3.0, s.session_timeout / 3),
            consumer_group_instance_id=s.instance_id,
            consumer_auto_offset_reset="earliest",
            stream_buffer_maxsize=max(4096, 2 * s.batch_size),
            # Records made from one fetch at a time, at most: a broker that answers a fetch
            # with far more than the 1 MiB a partition asked for (noida-db does) would
            # otherwise turn a whole backlog into Python objects at once.
            broker_max_poll_records=4 * s.batch_size,
            # Faust's own web server serves nothing of ours, and its views could show
            # per-user state: it is not started at all (/metrics and /healthz are ours).
            web_enabled=False,
            web_host=s.web_host,
            web_bind=s.web_host,
            web_port=s.web_port,
            web_router_enabled=False,
            web_tables_enabled=False,
            web_graph_enabled=False,
            web_stats_enabled=False,
            web_metrics_enabled=False,
        )
        self.events = app.topic(s.topic_events, partitions=s.partitions)
        self.alerts = app.topic(s.topic_alerts, partitions=s.partitions)
        self.dlq = app.topic(s.topic_dlq, partitions=s.dlq_partition_count)
        self.table = app.Table(s.state_table, default=None, key_type=bytes, value_type=bytes,
                               partitions=s.partitions, help="per-user detection state")
        # Alerts and dead letters once each, even when a replay after a crash raises them again.
        self.outputs = Outputs(s, self.alerts, self.dlq, self.metrics)
        self.states = UserStates(self.table, trailer=self.outputs.pending_marks)
        self.head = HeadCheck()
        # Under exactly-once a changelog write must join its source partition's
        # transaction, which only a send from inside the batch does: no coalescing there.
        self.coalesce = s.processing_guarantee == "at_least_once"
        if self.coalesce:
            app.sensors.add(FlushOnCommit(self.states))
        # mode types a receiver with mypy_extensions argument kinds no plain ``def`` matches.
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        # The agent subscribes the events topic (and handles it under exactly-once); with
        # the fast path its events bypass Faust's delivery and reach ``_drain`` instead.
        app.agent(self.events, name="accesswatch.detect")(self._detect)
        self.fast: fast_path.FastPath | None = None
        if self.coalesce and s.fast_path:
            fast_path.install()
            self.fast = fast_path.FastPath(s.topic_events, max_run=s.batch_size)
            app.accesswatch_fast_path = self.fast  # type: ignore[attr-defined]
            app.task(self._drain)
        app.task(self.feed.run)
        app.timer(2.0, name="accesswatch.lag")(self._measure_lag)
        app.timer(5.0, name="accesswatch.broker-probe")(self._probe_broker)
        app.timer(s.reload_interval, name="accesswatch.reload")(self._reload)
        # Held alert versions go out when due, though no event comes to carry them.
        app.timer(1.0, name="accesswatch.alert-updates")(self._release_when_idle)
        return app

    async def _detect(self, stream: Any) -> None:
        # A commit writes one changelog record per member changed since the last; let
        # Faust's send buffer hold that many before it stalls the stream to drain.
        self.app.producer.buffer.max_messages = max(10_000, 2 * self.settings.batch_size)
        await self._reference_ready()
        log.info("processing %s in batches of up to %d events, %s", self.settings.topic_events,
                 self.settings.batch_size, "a fetch at a time (fast path)" if self.fast
                 else "through Faust's own delivery")
        async for events in stream.take_events(self.settings.batch_size,
                                               within=self.settings.batch_wait):
            messages = [e.message for e in events]
            try:
                await self.handle(messages)
            except Exception as e:
                # Faust acknowledges a batch even when its handler fails, and would commit
                # past it: hold the batch back and start afresh instead (nothing repeats).
                log.exception("batch failed; restarting to read it again")
                await self._start_afresh(messages, f"a batch failed: {type(e).__name__}")
                return

    async def _drain(self) -> None:
        """The fast path's batches (``streams/fast_path.py``): handled, then acknowledged."""
        assert self.fast is not None
        await self._reference_ready()
        consumer = self.app.consumer
        async for runs in self.fast.batches(self.settings.batch_size):
            messages = [r for run in runs for r in run.records]
            try:
                await self.handle(messages)
            except Exception as e:
                log.exception("batch failed; restarting to read it again")
                self.fast.drop(consumer, runs)
                await self._start_afresh([], f"a batch failed: {type(e).__name__}")
                return
            if self.restart_reason is not None:  # handle() found a hole: nothing acked
                self.fast.drop(consumer, runs)
                return
            self.fast.ack(consumer, runs)

    async def _reference_ready(self) -> None:
        """Hold events until reference data has caught up; then quiet the collector."""
        if not self.feed.ready.is_set():
            log.info("holding events until reference data has caught up")
            await self.feed.ready.wait()
        if not self._gc_quiet:  # the agent and the fast path both come here
            self._gc_quiet = True
            _quiet_gc()

    async def handle(self, messages: list[Message]) -> BatchOutcome:
        self._handling = True
        try:
            return await self._handle(messages)
        finally:
            self._handling = False

    async def _handle(self, messages: list[Message]) -> BatchOutcome:
        started = time.perf_counter()
        fresh = self.outputs.unprimed(m.partition for m in messages)
        if fresh:  # first events of partitions new to this worker: the table is recovered
            await asyncio.wait_for(self.outputs.prime(fresh, self.table.data), PRIME_TIMEOUT)
            for p in fresh:  # versions the previous owner held back go out with this batch
                await self.outputs.recover_held(p, self.states.load)
            self.head.expect(await asyncio.wait_for(committed_offsets(self.settings, fresh),
                                                    PRIME_TIMEOUT))
        holes = self.head.holes(messages)
        if holes:
            for p, committed, first in holes:
                log.error("partition %d: the consumer skipped events %d to %d; restarting "
                          "to read them from the committed offset", p, committed, first - 1)
                self.metrics.consumer_gaps.inc()
            await self._start_afresh(messages, "events skipped by the consumer on partitions "
                                     f"{sorted(p for p, _, _ in holes)}")
            return BatchOutcome()
        out = run_batch(self.detector, messages, self.states.load, self.states.reload)
        sent = await self.outputs.publish(out, messages)  # returns once the broker has them
        if out.withdrawn:  # rare, and the contract cannot retract: say so (ids are hashes)
            log.warning("%d published alerts are not raised in time order after late events "
                        "(a firing moved to another period): %s", len(out.withdrawn),
                        ", ".join(out.withdrawn[:5]))
        self.states.store(out.states, out.applied)
        await self._release()
        if not self.coalesce:
            self.states.flush()
        for msg in messages:
            if msg.offset >= self.next_offset.get(msg.partition, 0):
                self.next_offset[msg.partition] = msg.offset + 1
        self.metrics.record(out, sent, len(messages), time.perf_counter() - started, time.time())
        self.metrics.updates_held.set(len(self.outputs.held))
        return out

    async def _release(self, everything: bool = False) -> None:
        """Publish the alert versions now due (``Outputs.held``) and store what moved."""
        if not self.outputs.held:
            return
        sent, touched = await self.outputs.release(self.states.load, everything)
        self.states.store(touched)
        if not self.coalesce:
            self.states.flush()
        self.metrics.count_sent(sent, time.time())
        self.metrics.updates_held.set(len(self.outputs.held))

    async def _release_when_idle(self) -> None:
        if self.outputs.held and not self._handling:
            await self._release()

    async def _start_afresh(self, messages: list[Message], reason: str) -> None:
        """Stop with none of ``messages`` committed; ``worker.py`` then restarts in place.

        Nothing past them can commit meanwhile (Faust commits an unbroken run only), so
        the restart reads them again from the committed offset; what was already done it
        skips (see streams/gaps.py, streams/outputs.py, streams/stored.py).
        """
        for m in messages:
            # Marked acknowledged here, so Faust's own acknowledgement passes them by.
            m.acked = True  # type: ignore[attr-defined]
        self.restart_reason = reason
        await self.app.crash(RuntimeError(reason))

    async def _on_revoked(self, app: Any, revoked: Any = None, **_: Any) -> None:
        # Faust has waited for the agent and committed; whoever owns these partitions next
        # recovers from the changelog, so it must hold everything before we let go.
        # Versions held back go out first: the newest version of an alert always does.
        try:
            await self._release(everything=True)
        except Exception as e:  # the mark names their members: the next owner sends them
            log.warning("could not publish held alert versions before a rebalance: %s",
                        type(e).__name__)
        self.states.forget()
        await self.app.producer.flush()
        gone = [tp.partition for tp in revoked or () if tp.topic == self.settings.topic_events]
        self.outputs.forget(gone)
        self.head.forget(gone)
        self.metrics.forget_lag(gone)
        for p in gone:
            self.next_offset.pop(p, None)
        self._count_partitions()

    async def _on_assigned(self, app: Any, assigned: Any = None, **_: Any) -> None:
        self._count_partitions()

    def _count_partitions(self) -> None:
        owned = {tp.partition for tp in self.app.consumer.assignment()
                 if tp.topic == self.settings.topic_events}
        self.metrics.partitions.set(len(owned))

    async def _reload(self) -> None:
        await self.reloader.poll()

    async def _measure_lag(self) -> None:
        consumer = self.app.consumer
        for tp in consumer.assignment():
            if tp.topic != self.settings.topic_events or tp.partition not in self.next_offset:
                continue
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag = max(0, highwater - self.next_offset[tp.partition])
                self.metrics.lag(tp.partition).set(lag)

    async def _probe_broker(self) -> None:
        from streams.connect import broker_reachable

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
    gc.set_threshold(max(gen0, GC_YOUNG_THRESHOLD), *older)
