"""Outputs once each, stored states that say how far they go, holes refused: without Kafka."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from accesswatch.core import Detector, Member
from accesswatch.core.state import decode_state
from accesswatch.rules import load_rules
from streams import outputs as outputs_module
from streams.batch import Message, run_batch
from streams.checkpoint import Checkpoint
from streams.metrics import Metrics
from streams.outputs import Mark, Outputs, mark_key
from streams.settings import Settings
from streams.store import (
    StateStore,
    decode_stored,
    encode_stored,
    encoded,
    stored,
)
from tests.core.force import HOUR, T0, build_force
from tests.streams.test_batch import Msg, wire


@dataclass
class Meta:
    """What a send's future resolves to (aiokafka's ``RecordMetadata``, as far as used)."""

    topic: str
    partition: int
    offset: int


@dataclass
class FakeProducer:
    """An aiokafka-like producer: records each send per topic; offsets count up per
    topic and partition as a broker's would (a send without a partition goes to 0)."""

    sent: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    ends: dict[tuple[str, int], int] = field(default_factory=dict)

    async def send(self, topic: str, value: Any = None, key: Any = None,
                   partition: int | None = None, headers: Any = None) -> asyncio.Future[Meta]:
        p = partition if partition is not None else 0
        offset = self.ends.get((topic, p), 0)
        self.ends[topic, p] = offset + 1
        self.sent[topic].append({"key": key, "value": value, "partition": partition,
                                 "headers": headers, "offset": offset})
        fut: asyncio.Future[Meta] = asyncio.get_running_loop().create_future()
        fut.set_result(Meta(topic, p, offset))
        return fut


def settings(**kw: Any) -> Settings:
    return Settings(_env_file=None, partitions=4, **kw)  # type: ignore[call-arg]


S = settings()
ALERTS, DLQ = S.topic_alerts, S.topic_dlq


def outcome(messages: list[Msg], states: dict[str, Member] | None = None) -> Any:
    return run_batch(Detector(load_rules(), build_force()), messages,
                     lambda uid, p: (states or {}).get(uid))


def batch() -> list[Msg]:
    # u3 is a leaver: AW-011 fires on their access; the last line is not JSON.
    return [Msg(wire("e1", "u3", T0 + HOUR), partition=2, offset=10),
            Msg(b"{not json", partition=2, offset=11)]


def no_tails(monkeypatch: pytest.MonkeyPatch, alerts: Any = None, dead: Any = None) -> None:
    """``read_tails`` without a broker: what it finds past the marks is given."""
    async def read_tails(*_: Any) -> Any:
        return alerts or {}, dead or {}

    monkeypatch.setattr(outputs_module, "read_tails", read_tails)


def test_outputs_go_to_the_source_partition_and_move_the_mark() -> None:
    producer = FakeProducer()
    out_ = Outputs(S, producer, Metrics(CollectorRegistry()))
    out = outcome(batch())
    assert out.alerts and out.rejected
    asyncio.run(out_.publish(out, batch()))
    alerts, dlq = producer.sent[ALERTS], producer.sent[DLQ]
    assert alerts and {s["partition"] for s in alerts} == {2}
    assert [s["partition"] for s in dlq] == [2]
    assert dict(dlq[0]["headers"])["accesswatch-source-offset"] == b"11"
    assert dict(dlq[0]["headers"])["accesswatch-reason-class"] == b"invalid_json"
    assert set(producer.sent) == {ALERTS, DLQ}  # nothing else: state waits for the checkpoint
    [(p, key, raw)] = out_.pending_marks()
    assert (p, key) == (2, mark_key(2))
    assert msgspec.msgpack.decode(raw, type=Mark) == Mark(len(alerts), 1, 12)
    assert out_.pending_marks() == []  # only what moved since


def test_dead_letters_spread_by_key_are_not_counted_in_the_mark() -> None:
    """With a dead-letter topic of other partitions than events', they cannot be read back
    per partition: sent without one, and the mark does not claim them."""
    producer = FakeProducer()
    out_ = Outputs(settings(dlq_partitions=2), producer, Metrics(CollectorRegistry()))
    asyncio.run(out_.publish(outcome(batch()), batch()))
    assert [s["partition"] for s in producer.sent[DLQ]] == [None]
    [(_, _, raw)] = out_.pending_marks()
    mark = msgspec.msgpack.decode(raw, type=Mark)
    assert (mark.dead_letters, mark.events) == (0, 12)


def test_a_replay_publishes_nothing_found_past_the_mark(monkeypatch: pytest.MonkeyPatch) -> None:
    first = outcome(batch())
    versions = {}
    for a in first.alerts:
        found = outputs_module._read_version(msgspec.json.encode(a))
        assert found is not None
        versions[a.alert_id] = found[1:]
    no_tails(monkeypatch, {2: versions}, {2: {11}})
    producer = FakeProducer()
    metrics = Metrics(CollectorRegistry())
    out_ = Outputs(S, producer, metrics)

    async def replay() -> Any:
        await out_.prime({2}, {})
        again = outcome(batch())
        await out_.publish(again, batch())
        return again

    again = asyncio.run(replay())
    assert dict(producer.sent) == {} and again.alerts == []
    skipped = metrics.replay_skipped("alert")._value.get()
    assert skipped == len(first.alerts) and metrics.replay_skipped("dead_letter")._value.get() == 1


def test_invalid_events_below_the_mark_are_not_dead_lettered_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    no_tails(monkeypatch)
    producer = FakeProducer()
    out_ = Outputs(S, producer, Metrics(CollectorRegistry()))
    changelog = {2: {mark_key(2): msgspec.msgpack.encode(Mark(0, 1, 12))}}

    async def replay() -> None:
        await out_.prime({2}, changelog)
        await out_.publish(outcome(batch()), batch())

    asyncio.run(replay())
    assert producer.sent[DLQ] == []
    assert producer.sent[ALERTS]  # the alert is past the mark's alerts offset (0): it goes


def test_an_oversized_dead_letter_keeps_its_head_and_says_how_big() -> None:
    producer = FakeProducer()
    out_ = Outputs(S, producer, Metrics(CollectorRegistry()))
    huge = Msg(b"x" * (3 << 20), partition=1, offset=5)
    asyncio.run(out_.publish(outcome([huge]), [huge]))
    [sent] = producer.sent[DLQ]
    assert huge.value is not None and sent["value"] == huge.value[: S.dlq_max_bytes]
    assert dict(sent["headers"])["accesswatch-original-bytes"] == str(3 << 20).encode()


def test_stored_state_says_how_far_it_goes_and_the_core_still_reads_it() -> None:
    st = stored(Member(last_t=5.0))
    st.applied = (2, 41)
    raw = encode_stored(st)
    assert decode_state(raw).last_t == 5.0  # the core's decoder ignores the extra field
    back = decode_stored(raw)
    assert back.applied == (2, 41)
    assert decode_stored(msgspec.msgpack.encode(Member())).applied is None
    # Up to offset 41 of partition 2 it holds; past it, or on another partition (it
    # cannot tell), an event is applied.
    msgs = [Msg(wire("e40", "u1", T0 + HOUR), partition=2, offset=40),
            Msg(wire("e41", "u1", T0 + 2 * HOUR), partition=2, offset=41),
            Msg(wire("e3", "u1", T0 + 3 * HOUR), partition=1, offset=3)]
    for m, skipped in zip(msgs, (1, 0, 0), strict=True):
        out = run_batch(Detector(load_rules(), build_force()), [m],
                        lambda uid, p: decode_stored(raw))
        assert (out.skipped, out.applied) == (skipped, {} if skipped else
                                               {"u1": (m.partition, m.offset + 1)})


def test_a_replayed_batch_skips_what_the_stored_state_holds() -> None:
    store = StateStore()
    store.restore(3, {}, 0)
    detector = Detector(load_rules(), build_force())
    msgs = [Msg(wire(f"e{i}", "u1", T0 + i * 60), partition=3, offset=i) for i in range(5)]
    first = run_batch(detector, msgs[:3], store.load)
    store.put(first.states, first.applied)
    # A checkpoint; then the worker dies before committing offsets.
    changelog = dict(encoded(store.take_changed()[3]))
    assert decode_stored(changelog[b"u1"]).applied == (3, 3)
    after = StateStore()  # the next owner, from the changelog
    after.restore(3, changelog, 1)
    again = run_batch(detector, msgs, after.load)
    assert (again.skipped, again.processed, again.applied["u1"]) == (3, 5, (3, 5))
    assert again.states["u1"][0].last_t == T0 + 4 * 60


def checkpoint() -> Checkpoint:
    return Checkpoint(S, Detector(load_rules(), build_force()), Metrics(CollectorRegistry()))


def test_holes_flag_a_partition_that_starts_past_where_it_should() -> None:
    cp = checkpoint()
    cp.start = {0: 100, 1: 7}
    msgs: list[Message] = [Msg(b"", partition=0, offset=250), Msg(b"", partition=1, offset=7),
            Msg(b"", partition=0, offset=251)]
    assert cp._holes(msgs) == [(0, 100, 250)]
    assert cp.start == {}  # each partition's first events checked, then no more
    assert cp._holes(msgs) == []  # only the first events after an assignment count


def test_holes_allow_one_offset_a_marker_may_take_and_partitions_not_expected() -> None:
    cp = checkpoint()
    cp.start = {2: 10, 3: 5}
    assert cp._holes([Msg(b"", partition=2, offset=11)]) == []  # one marker's worth: fine
    assert cp._holes([Msg(b"", partition=1, offset=900)]) == []  # no start to keep to
    assert cp.start == {3: 5}  # partition 3 not seen yet: still checked when it comes
    assert cp._holes([Msg(b"", partition=3, offset=4)]) == []  # before it: replays, skipped


def _versions(sent: list[dict[str, Any]], rule_id: str = "AW-011") -> list[tuple[str, int, int]]:
    """(alert id, version, count) of each alert of ``rule_id`` sent, in order."""
    out = []
    for record in sent:
        doc = msgspec.json.decode(record["value"])
        if doc["rule_id"] == rule_id:
            out.append((doc["alert_id"], doc.get("version", 1), doc["count"]))
    return out


def leaver(i: int, offset: int) -> Msg:
    return Msg(wire(f"e{i}", "u3", T0 + HOUR + i * 60), partition=2, offset=offset)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_grown_alert_goes_out_again_as_its_next_version_at_most_once_per_interval() -> None:
    producer = FakeProducer()
    out_ = Outputs(settings(alert_update_interval=10), producer, Metrics(CollectorRegistry()))
    out_.clock = clock = Clock()
    detector = Detector(load_rules(), build_force())
    store = StateStore()
    store.restore(2, {}, 0)
    alerts = producer.sent[ALERTS]

    async def batch(i: int) -> None:
        msgs = [leaver(i, i)]
        out = run_batch(detector, msgs, store.load)
        store.put(out.states, out.applied)
        await out_.publish(out, msgs)

    async def run() -> None:
        for i in range(3):  # at 0 s, 4 s and 8 s: each adds an access to the alert
            await batch(i)
            clock.now += 4
        assert [v for _, v, _ in _versions(alerts)] == [1] and len(out_.held) == 1
        clock.now = 1009.0
        await out_.release(store.load)  # not due until 1010
        assert len(_versions(alerts)) == 1
        clock.now = 1011.0
        _, touched = await out_.release(store.load)  # due: the newest content held, as v2
        assert list(touched) == ["u3"]  # its published version moved: to be stored
        await batch(3)  # at 1011 s: waits until 1021
        assert len(_versions(alerts)) == 2 and len(out_.held) == 1
        await out_.release(store.load, everything=True)  # a rebalance: all go out

    asyncio.run(run())
    # v1 at once; two changes within 10 s go out as one version (count 3); the
    # last one, held, goes out when released: the newest version always goes out.
    assert [(v, c) for _, v, c in _versions(alerts)] == [(1, 1), (2, 3), (3, 4)]
    latest = [msgspec.json.decode(x["value"]) for x in alerts][-1]
    assert latest["updated_at"] and latest["count"] == 4 and not out_.held


def test_versions_held_back_are_named_in_the_mark_and_sent_by_the_next_owner(
        monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(alert_update_interval=60)
    first_producer = FakeProducer()
    first = Outputs(s, first_producer, Metrics(CollectorRegistry()))
    detector = Detector(load_rules(), build_force())
    store = StateStore()
    store.restore(2, {}, 0)

    async def run_first() -> list[tuple[int, bytes, bytes]]:
        for i in range(2):
            msgs = [leaver(i, i)]
            out = run_batch(detector, msgs, store.load)
            store.put(out.states, out.applied)
            await first.publish(out, msgs)
        return first.pending_marks()

    marks = asyncio.run(run_first())
    assert len(_versions(first_producer.sent[ALERTS])) == 1 and first.held
    # A checkpoint as the checkpoint writes it: the members, then the marks; then the
    # worker dies with v2 held.
    changelog = {p: dict(encoded(records)) for p, records in store.take_changed().items()}
    for p, key, raw in marks:
        changelog[p][key] = raw
    assert msgspec.msgpack.decode(changelog[2][mark_key(2)], type=Mark).held == ["u3"]

    no_tails(monkeypatch, {2: {}})
    producer = FakeProducer()
    second = Outputs(s, producer, Metrics(CollectorRegistry()))
    after = StateStore()  # the next owner, from the changelog
    after.restore(2, changelog[2], 1)

    async def run_second() -> None:
        await second.prime({2}, after.stored)
        touched = await second.recover_held(2, after.load)
        assert list(touched) == ["u3"] and len(second.held) == 1
        await second.release(after.load)

    asyncio.run(run_second())
    [(_, version, count)] = _versions(producer.sent[ALERTS])
    assert (version, count) == (2, 2)


def test_a_replay_publishes_a_changed_alert_above_the_version_found(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the mark lies v1 with other content: what goes out now is v2, never v1 again."""
    first = outcome(batch())
    [alert] = [a for a in first.alerts if a.rule_id == "AW-011"]
    other = outputs_module._read_version(msgspec.json.encode(
        msgspec.structs.replace(alert, count=7)))
    assert other is not None
    no_tails(monkeypatch, {2: {alert.alert_id: other[1:]}}, {2: set()})
    producer = FakeProducer()
    out_ = Outputs(S, producer, Metrics(CollectorRegistry()))

    async def replay() -> None:
        await out_.prime({2}, {})
        await out_.publish(outcome(batch()), batch())

    asyncio.run(replay())
    assert [(aid, v) for aid, v, _ in _versions(producer.sent[ALERTS])
            if aid == alert.alert_id] == [(alert.alert_id, 2)]
