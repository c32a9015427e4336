"""Live states between batches, changelog writes coalesced per commit: without Kafka."""

from __future__ import annotations

from typing import Any

from accesswatch.core import Detector, Member
from accesswatch.core.state import decode_state, encode_state
from accesswatch.rules import load_rules
from streams.batch import run_batch
from streams.stored import decode_stored
from streams.user_states import FlushOnCommit, UserStates
from tests.core.force import HOUR, T0, build_force
from tests.streams.test_batch import Msg, wire


class FakeTable:
    """The two things ``UserStates`` uses of a Faust table; records every changelog send."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.sent: list[tuple[int | None, bytes, bytes]] = []

    def send_changelog(self, partition: int | None, key: Any, value: Any,
                       key_serializer: Any = None, value_serializer: Any = None) -> None:
        self.sent.append((partition, key, value))


def test_a_member_seen_again_gets_the_same_live_state_without_a_decode() -> None:
    table = FakeTable()
    table.data[b"u1"] = encode_state(Member(last_t=5.0))
    states = UserStates(table)
    first = states.load("u1")
    assert first is not None and first.last_t == 5.0
    first.last_t = 9.0  # the core changes it in place
    assert states.load("u1") is first
    assert states.load("nobody") is None


def test_changelog_gets_one_record_per_member_per_flush_with_the_latest_state() -> None:
    table = FakeTable()
    states = UserStates(table)
    for t in (1.0, 2.0, 3.0):  # three batches between two commits
        states.store({"u1": (Member(last_t=t), 2), "u2": (Member(last_t=t), 1)})
    assert table.sent == []
    assert decode_state(table.data[b"u1"]).last_t == 3.0  # the table is current at once
    assert states.flush() == 2
    assert sorted((p, k, decode_state(v).last_t) for p, k, v in table.sent) == [
        (1, b"u2", 3.0), (2, b"u1", 3.0)]
    assert states.flush() == 0 and len(table.sent) == 2


def test_commit_sensor_flushes_before_faust_picks_offsets() -> None:
    table = FakeTable()
    states = UserStates(table)
    states.store({"u1": (Member(last_t=1.0), 0)})
    FlushOnCommit(states).on_commit_initiated(consumer=None)
    assert [k for _, k, _ in table.sent] == [b"u1"] and states.unsent == 0


def test_forget_flushes_then_reads_the_table_afresh() -> None:
    table = FakeTable()
    states = UserStates(table)
    states.store({"u1": (Member(last_t=1.0), 3)})
    live = states.load("u1")
    states.forget()
    assert [p for p, _, _ in table.sent] == [3]
    again = states.load("u1")
    assert again is not live and again is not None and again.last_t == 1.0


class FailsMidBatch(Detector):
    """A core that has changed the states of the events before ``e2`` when it trips on it."""

    def process_batch(self, events, states):  # type: ignore[no-untyped-def]
        events = list(events)
        ids = [e.event_id for e in events]
        if "e2" in ids:
            super().process_batch(events[:ids.index("e2")], states)
            raise ZeroDivisionError("boom")
        return super().process_batch(events, states)


def test_a_core_failure_retries_from_the_state_before_the_batch() -> None:
    # The live object was changed in place by the failed batch; the retry must not
    # count those events twice, so it starts again from the table's copy.
    table = FakeTable()
    states = UserStates(table)
    detector = FailsMidBatch(load_rules(), build_force())
    first = run_batch(detector, [Msg(wire("e0", "u1", T0 + HOUR), partition=2)],
                      states.load, states.reload)
    states.store(first.states)
    before = table.data[b"u1"]
    batch = [Msg(wire("e1", "u1", T0 + 2 * HOUR), partition=2, offset=1),
             Msg(wire("e2", "u3", T0 + 2 * HOUR), partition=1, offset=2),
             Msg(wire("e3", "u1", T0 + 3 * HOUR), partition=2, offset=3)]
    retried = run_batch(detector, batch, states.load, states.reload)
    clean = run_batch(Detector(load_rules(), build_force()), [batch[0], batch[2]],
                      lambda uid: decode_stored(before))
    assert [r.message.offset for r in retried.rejected] == [2]
    # Compared as the core's UserState: the stored copy also says how far it goes.
    assert (decode_state(encode_state(retried.states["u1"][0]))
            == decode_state(encode_state(clean.states["u1"][0])))
