"""Every topic the pipeline uses, created up front with explicit partition counts.

Faust would auto-create its changelog with whatever partition count the broker
defaults to, and a table whose changelog does not match its source topic
breaks on recovery, so ``accesswatch topics create`` makes them all first.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from streams.connect import aiokafka_options, kafka_python_options
from streams.settings import Settings

if TYPE_CHECKING:  # kafka-python's admin: only the commands that create topics load it
    from kafka import KafkaAdminClient

COMPACT = {"cleanup.policy": "compact"}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    role: str = ""
    setting: str = ""  # the ACCESSWATCH_* variable that sets its partition count

    @property
    def compacted(self) -> bool:
        return self.config.get("cleanup.policy") == "compact"


@dataclass(frozen=True)
class TopicStatus:
    spec: TopicSpec
    state: str  # created | exists | mismatch
    actual_partitions: int

    def line(self) -> str:
        mark = {"created": "created", "exists": "ok", "mismatch": "MISMATCH"}[self.state]
        policy = "compact" if self.spec.compacted else "delete"
        extra = (f" (has {self.actual_partitions}, wants {self.spec.partitions})"
                 if self.state == "mismatch" else "")
        return (f"{mark:<8} {self.spec.name:<40} partitions={self.actual_partitions:<3} "
                f"{policy:<8} {self.spec.role}{extra}")


def topic_specs(s: Settings) -> list[TopicSpec]:
    dlq_retention = str(int(s.dlq_retention_hours * 3_600_000))
    specs = [
        TopicSpec(s.topic_events, s.partitions, role="access events, keyed by user_id",
                  setting="ACCESSWATCH_PARTITIONS"),
        TopicSpec(s.topic_alerts, s.partitions, role="alerts, keyed by user_id",
                  setting="ACCESSWATCH_PARTITIONS"),
        TopicSpec(s.topic_dlq, s.dlq_partition_count, {"retention.ms": dlq_retention},
                  role="rejected events (personal data: limited retention)",
                  setting="ACCESSWATCH_DLQ_PARTITIONS" if s.dlq_partitions is not None
                  else "ACCESSWATCH_PARTITIONS"),
    ]
    specs += [TopicSpec(topic, s.ref_partitions, dict(COMPACT), role=f"reference: {kind}",
                        setting="ACCESSWATCH_REF_PARTITIONS")
              for kind, topic in s.ref_topics.items()]
    # Faust's own: the state changelog must match the events topic partition for partition.
    specs += [
        TopicSpec(s.state_changelog, s.partitions, dict(COMPACT), role="per-user state changelog",
                  setting="ACCESSWATCH_PARTITIONS"),
        TopicSpec(s.leader_topic, 1, role="Faust assignor leader"),
    ]
    return specs


def admin(s: Settings) -> KafkaAdminClient:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(**kafka_python_options(s), request_timeout_ms=15000)


def create_topics(s: Settings, specs: list[TopicSpec] | None = None) -> list[TopicStatus]:
    """Create what is missing (default: the pipeline's topics); report what exists,
    flagging a wrong partition count."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    client = admin(s)
    try:
        specs = topic_specs(s) if specs is None else specs
        existing = set(client.list_topics())
        for spec in specs:
            if spec.name in existing:
                continue
            try:
                client.create_topics([NewTopic(spec.name, spec.partitions, s.replication_factor,
                                               topic_configs=spec.config)])
            except TopicAlreadyExistsError:
                existing.add(spec.name)  # made by someone else meanwhile
        counts = partition_counts(client, [spec.name for spec in specs])
        out = []
        for spec in specs:
            actual = counts.get(spec.name, 0)
            state = ("created" if spec.name not in existing
                     else "exists" if actual == spec.partitions else "mismatch")
            out.append(TopicStatus(spec, state, actual))
        return out
    finally:
        client.close()


def check_topics(s: Settings) -> tuple[list[str], dict[str, int]]:
    """(problems that stop a worker, partition count of each topic that exists).

    Asked through aiokafka's metadata, not kafka-python's admin client: a worker
    then never loads kafka-python (about 6.5 MB of its memory)."""
    specs = topic_specs(s)
    counts = asyncio.run(_partition_counts(s, [spec.name for spec in specs]))
    problems = []
    for spec in specs:
        actual = counts.get(spec.name, 0)
        if actual == 0:
            problems.append(f"topic {spec.name} does not exist")
        elif actual != spec.partitions:
            problems.append(f"topic {spec.name} has {actual} partitions, settings say "
                            f"{spec.partitions}")
    return problems, counts


async def _partition_counts(s: Settings, names: list[str]) -> dict[str, int]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(**aiokafka_options(s), group_id=None,
                                enable_auto_commit=False, request_timeout_ms=15000)
    await consumer.start()
    try:
        present = await consumer.topics()  # the metadata of every topic
        return {n: len(consumer.partitions_for_topic(n) or ()) for n in names if n in present}
    finally:
        await consumer.stop()


def partition_counts(client: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    present = set(client.list_topics())
    wanted = [n for n in names if n in present]
    if not wanted:
        return {}
    return {t["name"]: len(t["partitions"]) for t in client.describe_topics(wanted)
            if not t.get("error_code")}
