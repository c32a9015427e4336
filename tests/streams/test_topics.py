"""``accesswatch topics create`` against the real broker: partitions, compaction, idempotence."""

from __future__ import annotations

import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from streams.settings import Settings
from streams.topics import admin, check_topics, create_topics, topic_specs

pytestmark = pytest.mark.broker


def test_topics_are_created_with_their_partitions_and_policies(live_settings: Settings) -> None:
    s = live_settings
    first = create_topics(s)
    assert {st.state for st in first} == {"created"}
    client = admin(s)
    try:
        described = {t["name"]: len(t["partitions"])
                     for t in client.describe_topics([st.spec.name for st in first])}
        configs = client.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, st.spec.name) for st in first])
    finally:
        client.close()
    assert described[s.topic_events] == described[s.topic_alerts] == 4
    assert described[s.state_changelog] == 4  # must match the events topic
    assert described[s.topic_dlq] == 4  # a dead letter keeps its source partition
    assert described[s.leader_topic] == 1
    assert all(described[t] == 1 for t in s.ref_topics.values())
    policy = {name: cfg.get("cleanup.policy", {}).get("value", "delete")
              for name, cfg in _configs(configs).items()}
    compacted = {*s.ref_topics.values(), s.state_changelog}
    assert {n for n, p in policy.items() if p == "compact"} == compacted


def test_a_second_run_changes_nothing(live_settings: Settings) -> None:
    create_topics(live_settings)
    again = create_topics(live_settings)
    assert {st.state for st in again} == {"exists"}
    assert check_topics(live_settings)[0] == []


def test_a_wrong_partition_count_is_reported_not_hidden(live_settings: Settings) -> None:
    create_topics(live_settings)
    wider = live_settings.model_copy(update={"partitions": 8})
    statuses = {st.spec.name: st.state for st in create_topics(wider)}
    assert statuses[live_settings.topic_events] == "mismatch"
    problems, _ = check_topics(wider)
    assert any(live_settings.topic_events in p and "4 partitions" in p for p in problems)


def test_every_topic_the_worker_needs_is_in_the_plan(live_settings: Settings) -> None:
    names = {spec.name for spec in topic_specs(live_settings)}
    assert len(names) == 9


def _configs(raw: dict) -> dict[str, dict[str, dict[str, str]]]:  # type: ignore[type-arg]
    return raw["topic"]  # kafka-python 3: {"topic": {name: {config: {"value": ...}}}}
