"""The worker's metrics: exact names for dashboards, and no ids in labels."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from accesswatch.core import Detector
from accesswatch.rules import load_rules
from streams.batch import run_batch
from streams.metrics import Metrics
from streams.outputs import Sent
from tests.core.force import build_force
from tests.streams.test_batch import messages

NAMES = {
    "accesswatch_events_consumed_total", "accesswatch_events_processed_total",
    "accesswatch_events_rejected_total", "accesswatch_alerts_total",
    "accesswatch_alert_updates_total", "accesswatch_event_to_alert_latency_seconds",
    "accesswatch_batch_seconds", "accesswatch_batch_size", "accesswatch_consumer_lag",
    "accesswatch_reference_records", "accesswatch_reference_updates_total",
    "accesswatch_reference_ready", "accesswatch_reference_snapshot_timestamp_seconds",
    "accesswatch_broker_up", "accesswatch_rules_info",
    "accesswatch_model_info", "accesswatch_rules_reload_failures_total",
    "accesswatch_model_reload_failures_total", "accesswatch_replay_skipped_total",
    "accesswatch_consumer_gaps_total", "accesswatch_partitions_assigned",
    "accesswatch_model_rows_total", "accesswatch_alert_updates_held",
    "accesswatch_alerts_withdrawn_total", "accesswatch_events_duplicate_total",
    "accesswatch_late_rewinds_total", "accesswatch_events_replayed_total",
    "accesswatch_core_fallbacks_total",
}
ALLOWED_LABELS = {"reason", "rule_id", "severity", "partition", "kind", "op", "version",
                  "rules", "le", "what", "outcome"}


def recorded() -> CollectorRegistry:
    registry = CollectorRegistry()
    m = Metrics(registry)
    msgs = messages()
    out = run_batch(Detector(load_rules(), build_force()), msgs, lambda uid, p: None)
    out.rows_due, out.rows_judged = 9, 2  # as a batch with a model would say
    m.record(out, Sent(out.alerts, []), len(msgs), 0.01, now=1e10)
    m.lag(2).set(5)
    m.reference("staff").set(7)
    m.reference_update("staff", "tombstone").inc()
    m.rules.info({"version": "abc", "rules": "17"})
    m.model.info({"version": "none"})
    m.broker_up.set(1)
    return registry


def test_every_metric_has_its_published_name() -> None:
    text = generate_latest(recorded()).decode()
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")
             and not line.split()[2].endswith("_created")}
    assert names == NAMES


def test_labels_carry_no_ids_or_free_text() -> None:
    registry = recorded()
    ids = {"u1", "u3", "P-X", "e1", "e2", "e3"}
    for metric in registry.collect():
        for sample in metric.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, sample
            assert not ids & set(sample.labels.values()), sample
            assert all(len(v) <= 32 and " " not in v for v in sample.labels.values()), sample


def test_counts_add_up() -> None:
    registry = recorded()

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    rejected = sum(s.value for m in registry.collect() for s in m.samples
                   if s.name == "accesswatch_events_rejected_total")
    consumed = value("accesswatch_events_consumed_total")
    assert consumed == len(messages())
    assert consumed == value("accesswatch_events_processed_total") + rejected
    assert value("accesswatch_alerts_total", rule_id="AW-011", severity="critical") == 1
    assert value("accesswatch_events_rejected_total", reason="invalid_utf8") == 1
    assert value("accesswatch_model_rows_total", outcome="judged") == 2
    assert value("accesswatch_model_rows_total", outcome="not_explainable") == 7


def test_label_children_are_cached() -> None:
    m = Metrics(CollectorRegistry())
    assert m.alert("AW-001", "high") is m.alert("AW-001", "high")
    assert m.rejected("invalid_json") is m.rejected("invalid_json")


def test_every_alerting_rule_has_its_counters_at_zero_from_the_start() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    pack = load_rules()
    m.expect_alerts(Detector(pack, build_force()).alerting_rules())
    alerting = [r for r in pack.active if r.alert]
    assert alerting and len(alerting) < len(pack.active)  # the pack has signal-only rules too
    for rule in alerting:
        labels = {"rule_id": rule.id, "severity": str(rule.severity)}
        assert registry.get_sample_value("accesswatch_alerts_total", labels) == 0.0
        assert registry.get_sample_value("accesswatch_alert_updates_total",
                                         {"rule_id": rule.id}) == 0.0
    signal = next(r for r in pack.active if not r.alert)
    assert registry.get_sample_value("accesswatch_alert_updates_total",
                                     {"rule_id": signal.id}) is None


def test_a_given_up_partition_no_longer_reports_lag() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    for p in (0, 1, 2):
        m.lag(p).set(10 + p)
    m.forget_lag([1, 3])  # 3 was never reported
    value = registry.get_sample_value
    assert value("accesswatch_consumer_lag", {"partition": "0"}) == 10
    assert value("accesswatch_consumer_lag", {"partition": "1"}) is None
    m.lag(1).set(4)  # assigned back later: reported afresh
    assert value("accesswatch_consumer_lag", {"partition": "1"}) == 4
