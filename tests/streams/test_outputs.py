"""Outputs once each, stored states that say how far they go, holes refused: without Kafka."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from accesswatch.core import Detector, Member
from accesswatch.core.state import decode_state
from accesswatch.rules import load_rules
from streams import outputs as outputs_module
from streams.batch import run_batch
from streams.gaps import HeadCheck
from streams.metrics import Metrics
from streams.outputs import Mark, Outputs, mark_key
from streams.settings import Settings
from streams.stored import already_applied, decode_stored, encode_stored, stored
from tests.core.force import HOUR, T0, build_force
from tests.streams.test_batch import Msg, wire
from tests.streams.test_user_states import FakeTable


@dataclass
class Meta:
    partition: int
    offset: int


@dataclass
class FakeTopic:
    """Records sends; each partition's offsets count up as a broker's would."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    ends: dict[int, int] = field(default_factory=dict)

    async def send(self, key: Any = None, value: Any = None, partition: int | None = None,
                   headers: Any = None) -> asyncio.Future[Meta]:
        p = partition if partition is not None else 0
        offset = self.ends.get(p, 0)
        self.ends[p] = offset + 1
        self.sent.append({"key": key, "value": value, "partition": p, "headers": headers})
        fut: asyncio.Future[Meta] = asyncio.get_running_loop().create_future()
        fut.set_result(Meta(p, offset))
        return fut


def settings() -> Settings:
    return Settings(_env_file=None, partitions=4)  # type: ignore[call-arg]


def outcome(messages: list[Msg], states: dict[str, Member] | None = None) -> Any:
    return run_batch(Detector(load_rules(), build_force()), messages,
                     lambda uid: (states or {}).get(uid))


def batch() -> list[Msg]:
    # u3 is a leaver: AW-011 fires on their access; the last line is not JSON.
    return [Msg(wire("e1", "u3", T0 + HOUR), partition=2, offset=10),
            Msg(b"{not json", partition=2, offset=11)]


def test_outputs_go_to_the_source_partition_and_move_the_mark() -> None:
    alerts, dlq = FakeTopic(), FakeTopic()
    out_ = Outputs(settings(), alerts, dlq, Metrics(CollectorRegistry()))
    out = outcome(batch())
    assert out.alerts and out.rejected
    asyncio.run(out_.publish(out, batch()))
    assert {s["partition"] for s in alerts.sent} == {2} and dlq.sent[0]["partition"] == 2
    assert dict(dlq.sent[0]["headers"])["accesswatch-source-offset"] == b"11"
    [(p, key, raw)] = out_.pending_marks()
    assert (p, key) == (2, mark_key(2))
    assert msgspec.msgpack.decode(raw, type=Mark) == Mark(len(alerts.sent), 1, 12)
    assert out_.pending_marks() == []  # only what moved since


def test_a_replay_publishes_nothing_found_past_the_mark(monkeypatch: pytest.MonkeyPatch) -> None:
    first = outcome(batch())
    found = ({2: {a.alert_id: outputs_module._read_version(msgspec.json.encode(a))[1:]
                  for a in first.alerts}}, {2: {11}})

    async def read_tails(*_: Any) -> Any:
        return found

    monkeypatch.setattr(outputs_module, "read_tails", read_tails)
    alerts, dlq = FakeTopic(), FakeTopic()
    metrics = Metrics(CollectorRegistry())
    out_ = Outputs(settings(), alerts, dlq, metrics)

    async def replay() -> Any:
        await out_.prime({2}, {})
        again = outcome(batch())
        await out_.publish(again, batch())
        return again

    again = asyncio.run(replay())
    assert alerts.sent == [] and dlq.sent == [] and again.alerts == []
    skipped = metrics.replay_skipped("alert")._value.get()
    assert skipped == len(first.alerts) and metrics.replay_skipped("dead_letter")._value.get() == 1


def test_invalid_events_below_the_mark_are_not_dead_lettered_again() -> None:
    dlq = FakeTopic()
    out_ = Outputs(settings(), FakeTopic(), dlq, Metrics(CollectorRegistry()))
    table = {mark_key(2): msgspec.msgpack.encode(Mark(0, 1, 12))}

    async def replay() -> None:
        async def nothing(*_: Any) -> Any:
            return {}, {}

        outputs_module.read_tails, saved = nothing, outputs_module.read_tails
        try:
            await out_.prime({2}, table)
        finally:
            outputs_module.read_tails = saved
        await out_.publish(outcome(batch()), batch())

    asyncio.run(replay())
    assert dlq.sent == []


def test_an_oversized_dead_letter_keeps_its_head_and_says_how_big() -> None:
    dlq = FakeTopic()
    s = settings()
    out_ = Outputs(s, FakeTopic(), dlq, Metrics(CollectorRegistry()))
    huge = Msg(b"x" * (3 << 20), partition=1, offset=5)
    asyncio.run(out_.publish(outcome([huge]), [huge]))
    [sent] = dlq.sent
    assert sent["value"] == huge.value[: s.dlq_max_bytes]
    assert dict(sent["headers"])["accesswatch-original-bytes"] == str(3 << 20).encode()


def test_stored_state_says_how_far_it_goes_and_the_core_still_reads_it() -> None:
    st = stored(Member(last_t=5.0))
    st.applied = (2, 41)
    raw = encode_stored(st)
    assert decode_state(raw).last_t == 5.0  # the core's decoder ignores the extra field
    back = decode_stored(raw)
    assert back.applied == (2, 41)
    assert already_applied(back, 2, 40) and not already_applied(back, 2, 41)
    assert not already_applied(back, 1, 3)  # another partition: cannot tell, apply
    assert decode_stored(msgspec.msgpack.encode(Member())).applied is None


def test_a_replayed_batch_skips_what_the_stored_state_holds() -> None:
    table = FakeTable()
    from streams.user_states import UserStates

    states = UserStates(table)
    detector = Detector(load_rules(), build_force())
    msgs = [Msg(wire(f"e{i}", "u1", T0 + i * 60), partition=3, offset=i) for i in range(5)]
    first = run_batch(detector, msgs[:3], states.load)
    states.store(first.states, first.applied)
    assert decode_stored(table.data[b"u1"]).applied == (3, 3)
    again = run_batch(detector, msgs, lambda uid: decode_stored(table.data[uid.encode()]))
    assert (again.skipped, again.processed, again.applied["u1"]) == (3, 5, (3, 5))


def test_head_check_flags_a_partition_that_starts_past_its_commit() -> None:
    check = HeadCheck()
    check.expect({0: 100, 1: 7})
    msgs = [Msg(b"", partition=0, offset=250), Msg(b"", partition=1, offset=7),
            Msg(b"", partition=0, offset=251)]
    assert check.holes(msgs) == [(0, 100, 250)]
    assert check.holes(msgs) == []  # only the first events after an assignment count
    check.expect({2: 10})
    assert check.holes([Msg(b"", partition=2, offset=11)]) == []  # one marker's worth: fine


def _versions(topic: FakeTopic, rule_id: str = "AW-011") -> list[tuple[str, int, int]]:
    """(alert id, version, count) of each alert of ``rule_id`` sent, in order."""
    out = []
    for sent in topic.sent:
        doc = msgspec.json.decode(sent["value"])
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
    alerts = FakeTopic()
    s = Settings(_env_file=None, partitions=4, alert_update_interval=10)  # type: ignore[call-arg]
    out_ = Outputs(s, alerts, FakeTopic(), Metrics(CollectorRegistry()))
    out_.clock = clock = Clock()
    detector = Detector(load_rules(), build_force())
    members: dict[str, Member] = {}

    async def batch(i: int) -> None:
        msgs = [leaver(i, i)]
        out = run_batch(detector, msgs, members.get)
        members.update({uid: m for uid, (m, _) in out.states.items()})
        await out_.publish(out, msgs)

    async def run() -> None:
        for i in range(3):  # at 0 s, 4 s and 8 s: each adds an access to the alert
            await batch(i)
            clock.now += 4
        assert [v for _, v, _ in _versions(alerts)] == [1] and len(out_.held) == 1
        clock.now = 1009.0
        await out_.release(members.get)  # not due until 1010
        assert len(_versions(alerts)) == 1
        clock.now = 1011.0
        await out_.release(members.get)  # due: the newest content held, as v2
        await batch(3)  # at 1011 s: waits until 1021
        assert len(_versions(alerts)) == 2 and len(out_.held) == 1
        await out_.release(members.get, everything=True)  # a rebalance: all go out

    asyncio.run(run())
    # v1 at once; two changes within 10 s go out as one version (count 3); the
    # last one, held, goes out when released: the newest version always goes out.
    assert [(v, c) for _, v, c in _versions(alerts)] == [(1, 1), (2, 3), (3, 4)]
    latest = [msgspec.json.decode(x["value"]) for x in alerts.sent][-1]
    assert latest["updated_at"] and latest["count"] == 4 and not out_.held


def test_versions_held_back_are_named_in_the_mark_and_sent_by_the_next_owner() -> None:
    s = Settings(_env_file=None, partitions=4, alert_update_interval=60)  # type: ignore[call-arg]
    first_topic = FakeTopic()
    first = Outputs(s, first_topic, FakeTopic(), Metrics(CollectorRegistry()))
    detector = Detector(load_rules(), build_force())
    members: dict[str, Member] = {}

    async def run_first() -> list[tuple[int, bytes, bytes]]:
        for i in range(2):
            msgs = [leaver(i, i)]
            out = run_batch(detector, msgs, members.get)
            members.update({uid: m for uid, (m, _) in out.states.items()})
            await first.publish(out, msgs)
        return first.pending_marks()

    marks = asyncio.run(run_first())  # then the worker dies with v2 held
    assert len(_versions(first_topic)) == 1 and first.held
    table = {key: raw for _, key, raw in marks}
    assert msgspec.msgpack.decode(table[mark_key(2)], type=Mark).held == ["u3"]

    topic = FakeTopic()
    second = Outputs(s, topic, FakeTopic(), Metrics(CollectorRegistry()))
    stored_members = {uid: decode_stored(encode_stored(stored(m))) for uid, m in members.items()}

    async def run_second() -> None:
        async def tails(*_: Any) -> Any:
            return {2: {}}, {}

        saved, outputs_module.read_tails = outputs_module.read_tails, tails
        try:
            await second.prime({2}, table)
        finally:
            outputs_module.read_tails = saved
        await second.recover_held(2, stored_members.get)
        await second.release(stored_members.get)

    asyncio.run(run_second())
    [(_, version, count)] = _versions(topic)
    assert (version, count) == (2, 2)


def test_a_replay_publishes_a_changed_alert_above_the_version_found() -> None:
    """Past the mark lies v1 with other content: what goes out now is v2, never v1 again."""
    first = outcome(batch())
    [alert] = [a for a in first.alerts if a.rule_id == "AW-011"]
    other = msgspec.structs.replace(alert, count=7)
    found = ({2: {alert.alert_id: outputs_module._read_version(msgspec.json.encode(other))[1:]}},
             {2: set()})

    async def read_tails(*_: Any) -> Any:
        return found

    alerts = FakeTopic()
    out_ = Outputs(settings(), alerts, FakeTopic(), Metrics(CollectorRegistry()))

    async def replay() -> None:
        saved, outputs_module.read_tails = outputs_module.read_tails, read_tails
        try:
            await out_.prime({2}, {})
        finally:
            outputs_module.read_tails = saved
        await out_.publish(outcome(batch()), batch())

    asyncio.run(replay())
    assert [(aid, v) for aid, v, _ in _versions(alerts) if aid == alert.alert_id] == [
        (alert.alert_id, 2)]
