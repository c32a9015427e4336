"""Prometheus metrics of a worker, named for dashboards to rely on.

Labels carry only fixed vocabularies (reason classes, rule ids, severities,
reference kinds, partition numbers): never a user id, subject id or free text.

>>> from prometheus_client import CollectorRegistry
>>> m = Metrics(CollectorRegistry())
>>> m.rejected("invalid_json").inc()
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from accesswatch.contract.timestamps import parse_ts

if TYPE_CHECKING:
    from streams.batch import BatchOutcome
    from streams.outputs import Sent

# Event time → publish: seconds for a live feed, but a replayed history is days old.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400)
BATCH_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000)


class Metrics:
    """The worker's metrics in one registry, with label children cached."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.consumed = Counter("accesswatch_events_consumed", "Access events read from Kafka",
                                registry=r)
        self.processed = Counter("accesswatch_events_processed",
                                 "Valid access events run through the detection core", registry=r)
        self._rejected = Counter("accesswatch_events_rejected",
                                 "Invalid access events sent to the dead-letter topic",
                                 ["reason"], registry=r)
        self._alerts = Counter("accesswatch_alerts", "Alerts published (each alert once, at "
                               "its first version)", ["rule_id", "severity"], registry=r)
        self._updates = Counter("accesswatch_alert_updates",
                                "Later versions of alerts published (evidence grew)",
                                ["rule_id"], registry=r)
        self.updates_held = Gauge("accesswatch_alert_updates_held",
                                  "Alert versions waiting for their update interval",
                                  registry=r)
        self.withdrawn = Counter("accesswatch_alerts_withdrawn",
                                 "Published alerts a late event showed time order never "
                                 "raises", registry=r)
        self.duplicates = Counter("accesswatch_events_duplicate",
                                  "Events whose event_id the member's timeline already held: "
                                  "they changed nothing", registry=r)
        self.rewinds = Counter("accesswatch_late_rewinds",
                               "Members put back in event time for an event behind their "
                               "newest", registry=r)
        self.replayed = Counter("accesswatch_events_replayed",
                                "Events judged again after a rewind (the late ones included)",
                                registry=r)
        self.fallbacks = Counter("accesswatch_core_fallbacks",
                                 "Batches the detection core failed on, retried event by "
                                 "event (a bug: valid events should never need it)",
                                 registry=r)
        self.latency = Histogram("accesswatch_event_to_alert_latency_seconds",
                                 "Event time of the triggering event to alert publish",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch_seconds = Histogram("accesswatch_batch_seconds", "Time to handle one batch",
                                       buckets=BATCH_SECONDS_BUCKETS, registry=r)
        self.batch_size = Histogram("accesswatch_batch_size", "Messages in one batch",
                                    buckets=BATCH_SIZE_BUCKETS, registry=r)
        self._lag = Gauge("accesswatch_consumer_lag",
                          "Messages behind the end of each assigned events partition",
                          ["partition"], registry=r)
        self._reference = Gauge("accesswatch_reference_records", "Reference records held",
                                ["kind"], registry=r)
        self._ref_updates = Counter("accesswatch_reference_updates",
                                    "Reference-topic records applied (upsert or tombstone) "
                                    "or refused (invalid)", ["kind", "op"], registry=r)
        self.reference_ready = Gauge("accesswatch_reference_ready",
                                     "1 once reference data caught up with its topics",
                                     registry=r)
        self.reference_snapshot_seconds = Gauge(
            "accesswatch_reference_snapshot_timestamp_seconds",
            "When this worker last wrote its reference snapshot (Unix time; 0: not yet)",
            registry=r)
        self.broker_up = Gauge("accesswatch_broker_up",
                               "1 while the broker answers, 0 when it does not", registry=r)
        self.rules = Info("accesswatch_rules", "Rule pack in force", registry=r)
        self.model = Info("accesswatch_model", "Anomaly model in force", registry=r)
        # A refused reload leaves the previous pack or model in force, so nothing else
        # shows it: SREs alert on these (deploy/prometheus/alerts.yml).
        self.rules_reload_failures = Counter("accesswatch_rules_reload_failures",
                                             "Rule-pack reloads refused; the previous pack "
                                             "stays in force", registry=r)
        self.model_reload_failures = Counter("accesswatch_model_reload_failures",
                                             "Model reloads refused; the previous model "
                                             "stays in force", registry=r)
        self._replay_skipped = Counter("accesswatch_replay_skipped",
                                       "Work a worker found already done after a restart or "
                                       "rebalance and did not repeat: events its state held, "
                                       "alerts and dead letters already on their topics",
                                       ["what"], registry=r)
        self.partitions = Gauge("accesswatch_partitions_assigned",
                                "Events partitions this worker owns", registry=r)
        self.consumer_gaps = Counter("accesswatch_consumer_gaps",
                                     "Partitions whose events began past their committed "
                                     "offset; the worker went back and read them from it",
                                     registry=r)
        self._model_rows = Counter("accesswatch_model_rows",
                                   "Feature rows due a score: judged by the model, or kept "
                                   "from it because no column could explain a verdict",
                                   ["outcome"], registry=r)
        self._children: dict[tuple[str, ...], Any] = {}

    def record(self, out: BatchOutcome, sent: Sent, messages: int, seconds: float,
               now: float) -> None:
        """Count a handled batch, once its alerts and dead letters are on their way."""
        for rejected in out.rejected:
            self.rejected(rejected.error.reason_class).inc()
        self.count_sent(sent, now)
        self.processed.inc(out.processed)
        if out.repeats:
            self.duplicates.inc(out.repeats)
        if out.rewound:
            self.rewinds.inc(out.rewound)
            self.replayed.inc(out.replayed)
        if out.withdrawn:
            self.withdrawn.inc(len(out.withdrawn))
        if out.fallbacks:
            self.fallbacks.inc(out.fallbacks)
        if out.skipped:
            self.replay_skipped("event").inc(out.skipped)
        if out.rows_due:
            self.model_rows("judged").inc(out.rows_judged)
            self.model_rows("not_explainable").inc(out.rows_due - out.rows_judged)
        self.consumed.inc(messages)
        self.batch_size.observe(messages)
        self.batch_seconds.observe(seconds)

    def count_sent(self, sent: Sent, now: float) -> None:
        """Count alerts published: new ones once each, later versions apart."""
        for alert in sent.new:
            self.alert(alert.rule_id, alert.severity).inc()
            self.latency.observe(max(0.0, now - parse_ts(alert.last_seen)))
        for alert in sent.updates:
            self.update(alert.rule_id).inc()

    def expect_alerts(self, rules: Iterable[tuple[str, str]]) -> None:
        """Create each (rule id, severity)'s alert and update counters at zero.

        A counter that first appears at 1 has no earlier sample, so ``rate()`` and
        ``increase()`` miss the first alert of each rule after every restart.
        """
        for rule_id, severity in rules:
            self.alert(rule_id, severity)
            self.update(rule_id)

    def expect_model_rows(self) -> None:
        """Both row counters from zero (see ``expect_alerts``); they stay there without a
        model."""
        for outcome in ("judged", "not_explainable"):
            self.model_rows(outcome)

    def model_rows(self, outcome: str) -> Any:
        """``outcome``: ``judged`` or ``not_explainable``."""
        return self._child(("rows", outcome), self._model_rows, outcome)

    def forget_lag(self, partitions: Iterable[int]) -> None:
        """Drop the lag of partitions this worker gave up: their new owner reports it."""
        for p in partitions:
            if self._children.pop(("lag", str(p)), None) is not None:
                self._lag.remove(str(p))

    def replay_skipped(self, what: str) -> Any:
        """``what``: ``event``, ``alert`` or ``dead_letter``."""
        return self._child(("skip", what), self._replay_skipped, what)

    def rejected(self, reason_class: str) -> Any:
        return self._child(("rej", reason_class), self._rejected, reason_class)

    def alert(self, rule_id: str, severity: str) -> Any:
        return self._child(("alert", rule_id, severity), self._alerts, rule_id, severity)

    def update(self, rule_id: str) -> Any:
        return self._child(("update", rule_id), self._updates, rule_id)

    def lag(self, partition: int) -> Any:
        return self._child(("lag", str(partition)), self._lag, str(partition))

    def reference(self, kind: str) -> Any:
        return self._child(("ref", kind), self._reference, kind)

    def reference_update(self, kind: str, op: str) -> Any:
        return self._child(("refop", kind, op), self._ref_updates, kind, op)

    def _child(self, key: tuple[str, ...], parent: Counter | Gauge, *labels: str) -> Any:
        # .labels() hashes and locks on every call; a batch asks thousands of times.
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = parent.labels(*labels)
        return child
