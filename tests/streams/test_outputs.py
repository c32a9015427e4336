"""Outputs once each, stored states that say how far they go, holes refused: without Kafka."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from accesswatch.core import Detector, UserState
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


def outcome(messages: list[Msg], states: dict[str, UserState] | None = None) -> Any:
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
    found = ({2: {a.alert_id for a in first.alerts}}, {2: {11}})

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
    st = stored(UserState(last_t=5.0))
    st.applied = (2, 41)
    raw = encode_stored(st)
    assert decode_state(raw).last_t == 5.0  # the core's decoder ignores the extra field
    back = decode_stored(raw)
    assert back.applied == (2, 41)
    assert already_applied(back, 2, 40) and not already_applied(back, 2, 41)
    assert not already_applied(back, 1, 3)  # another partition: cannot tell, apply
    assert decode_stored(msgspec.msgpack.encode(UserState())).applied is None


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
