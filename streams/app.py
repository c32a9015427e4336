"""The Faust app: one agent reads ``access.events`` in batches and drives the core.

Per-user state lives in a changelogged table of msgpack bytes; reference data
arrives from the ``ref.*`` topics through ``ReferenceFeed``; alerts and dead
letters go out on their topics.  All counting is in ``Metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import faust
import msgspec

from accesswatch.core import Detector, UserState
from accesswatch.core.state import decode_state, encode_state
from accesswatch.reference import ReferenceData
from accesswatch.rules import RulePack
from streams.batch import BatchOutcome, Message, run_batch
from streams.connect import faust_credentials
from streams.metrics import Metrics
from streams.reference_feed import ReferenceFeed
from streams.reload import Reloader
from streams.settings import Settings

log = logging.getLogger("accesswatch.worker")
_encode = msgspec.json.Encoder().encode


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
        self.next_offset: dict[int, int] = {}  # events partition → next offset to process
        self.app = self._build_app()
        metrics.rules.info({"version": rules.version, "rules": str(len(rules.active))})
        metrics.model.info({"version": model.version, "name": model.name} if model is not None
                           else {"version": "none"})
        metrics.broker_up.set(1)

    def health(self) -> dict[str, bool]:
        return {"reference_ready": self.feed.ready.is_set(), "broker_up": self.broker_up}

    def _build_app(self) -> faust.App:
        s = self.settings
        datadir = s.data_dir or Path(tempfile.gettempdir()) / f"accesswatch-{s.app_id}"
        app = faust.App(
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
            consumer_auto_offset_reset="earliest",
            stream_buffer_maxsize=max(4096, 2 * s.batch_size),
            web_host=s.web_host,
            web_bind=s.web_host,
            web_port=s.web_port,
            # Faust's web server must bind, but serves nothing of ours: its table and
            # router views could show per-user state, so they are off.
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
        app.agent(self.events, name="accesswatch.detect")(self._detect)
        app.task(self.feed.run)
        app.timer(2.0, name="accesswatch.lag")(self._measure_lag)
        app.timer(5.0, name="accesswatch.broker-probe")(self._probe_broker)
        app.timer(s.reload_interval, name="accesswatch.reload")(self._reload)
        return app

    async def _detect(self, stream: Any) -> None:
        # A batch writes one changelog record per member; let Faust's send buffer
        # hold a batch's worth before it stalls the stream to drain.
        self.app.producer.buffer.max_messages = max(100, 2 * self.settings.batch_size)
        if not self.feed.ready.is_set():
            log.info("holding events until reference data has caught up")
            await self.feed.ready.wait()
        log.info("processing %s in batches of up to %d", self.settings.topic_events,
                 self.settings.batch_size)
        async for events in stream.take_events(self.settings.batch_size,
                                               within=self.settings.batch_wait):
            await self.handle([e.message for e in events])

    async def handle(self, messages: list[Message]) -> BatchOutcome:
        started = time.perf_counter()
        out = run_batch(self.detector, messages, self._load_state)
        for rejected in out.rejected:
            await self._dead_letter(rejected.message, rejected.error.reason,
                                    rejected.error.reason_class)
        for alert in out.alerts:
            await self.alerts.send(key=alert.user_id.encode(), value=_encode(alert))
        self._store_states(out.states)
        for msg in messages:
            if msg.offset >= self.next_offset.get(msg.partition, 0):
                self.next_offset[msg.partition] = msg.offset + 1
        self.metrics.record(out, len(messages), time.perf_counter() - started, time.time())
        return out

    def _load_state(self, user_id: str) -> UserState | None:
        raw = self.table.data.get(user_id.encode())
        return decode_state(raw) if raw is not None else None

    def _store_states(self, states: dict[str, tuple[UserState, int]]) -> None:
        # One write per member per batch, to the partition the member's events came on:
        # Faust would otherwise pick the changelog partition from the batch's last event.
        data, send = self.table.data, self.table.send_changelog
        for uid, (state, partition) in states.items():
            key, raw = uid.encode(), encode_state(state)
            data[key] = raw
            send(partition, key, raw)

    async def _dead_letter(self, msg: Message, reason: str, reason_class: str) -> None:
        headers = [
            ("accesswatch-reason", reason.encode()),
            ("accesswatch-reason-class", reason_class.encode()),
            ("accesswatch-source-topic", msg.topic.encode()),
            ("accesswatch-source-partition", str(msg.partition).encode()),
            ("accesswatch-source-offset", str(msg.offset).encode()),
        ]
        # Same partition as the source when the counts agree: per-partition order is kept,
        # and under exactly-once the dead letter joins its source partition's transaction.
        same = self.settings.dlq_partition_count == self.settings.partitions and msg.partition >= 0
        await self.dlq.send(key=msg.key, value=msg.value, headers=headers,
                            partition=msg.partition if same else None)

    async def _reload(self) -> None:
        self.reloader.check()

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
