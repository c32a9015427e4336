"""Live states between checkpoints, each changed member encoded once a checkpoint: no Kafka."""

from __future__ import annotations

import pytest

from accesswatch.core import Detector, Member
from accesswatch.core.state import decode_state, encode_state
from accesswatch.rules import load_rules
from streams import store as store_module
from streams.batch import run_batch
from streams.store import StateStore, StoredState, decode_stored, encode_stored, stored
from tests.core.force import HOUR, T0, build_force
from tests.streams.test_batch import Msg, wire


def raw(last_t: float) -> bytes:
    return encode_stored(stored(Member(last_t=last_t)))


def holding(*partitions: int) -> StateStore:
    store = StateStore()
    for p in partitions:
        store.restore(p, {}, 0)
    return store


def test_load_decodes_once_and_hands_out_the_same_live_object_afterwards(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = StateStore()
    store.restore(2, {b"u1": raw(5.0)}, 1)
    decodes: list[bytes] = []
    real = store_module.decode_stored

    def counting(data: bytes) -> StoredState:
        decodes.append(data)
        return real(data)

    monkeypatch.setattr(store_module, "decode_stored", counting)
    first = store.load("u1", 2)
    assert first is not None and first.last_t == 5.0
    first.last_t = 9.0  # the core changes it in place
    assert store.load("u1", 2) is first
    assert len(decodes) == 1
    assert store.load("nobody", 2) is None
    assert store.stored[2][b"u1"] == raw(5.0)  # the stored record is untouched until stored


def test_a_member_changed_in_several_batches_is_encoded_once_per_checkpoint(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = holding(1, 2)
    encodes: list[float] = []
    real = store_module.encode_stored

    def counting(state: StoredState) -> bytes:
        encodes.append(state.last_t)
        return real(state)

    monkeypatch.setattr(store_module, "encode_stored", counting)
    for t in (1.0, 2.0, 3.0):  # three batches between two checkpoints
        store.put({"u1": (Member(last_t=t), 2), "u2": (Member(last_t=t), 1)})
    assert encodes == []  # nothing encoded by a batch
    changed = store.take_changed()
    assert sorted(encodes) == [3.0, 3.0]  # once each, the latest state
    assert {p: [(k, decode_state(v).last_t) for k, v in records]
            for p, records in changed.items()} == {1: [(b"u2", 3.0)], 2: [(b"u1", 3.0)]}
    assert store.take_changed() == {} and len(encodes) == 2  # nothing changed since


def test_take_changed_puts_what_it_encodes_into_stored() -> None:
    store = holding(2)
    store.put({"u1": (Member(last_t=4.0), 2)}, {"u1": (2, 17)})
    assert b"u1" not in store.stored[2]  # not stored until the checkpoint
    [(key, value)] = store.take_changed()[2]
    assert store.stored[2] == {key: value} == {b"u1": value}
    back = decode_stored(value)
    assert (back.last_t, back.applied) == (4.0, (2, 17))
    assert sum(len(records) for records in store.stored.values()) == 1


def test_as_stored_gives_the_checkpointed_version_not_the_live_one() -> None:
    store = holding(2)
    store.put({"u1": (Member(last_t=1.0), 2)})
    store.take_changed()
    live = store.load("u1", 2)
    assert live is not None
    live.last_t = 8.0  # a batch since the checkpoint
    store.put({"u1": (live, 2)})
    before = store.as_stored("u1", 2)
    assert before is not None and before is not live and before.last_t == 1.0
    assert store.as_stored("u1", 2) is not before  # a fresh object each time
    assert store.as_stored("nobody", 2) is None
    assert store.load("u1", 2) is live  # the live one carries on


def test_back_to_stored_drops_live_and_pending_changes_of_those_partitions_only() -> None:
    store = holding(1, 2)
    store.put({"u1": (Member(last_t=1.0), 1), "u2": (Member(last_t=1.0), 2)})
    store.take_changed()
    for uid, p in (("u1", 1), ("u2", 2)):
        live = store.load(uid, p)
        assert live is not None
        live.last_t = 5.0
        store.put({uid: (live, p)})
    store.put({"u9": (Member(last_t=5.0), 1)})  # new since the checkpoint
    store.back_to_stored([1])
    again = store.load("u1", 1)
    assert again is not None and again.last_t == 1.0  # as the checkpoint stored it
    assert store.load("u9", 1) is None
    kept = store.load("u2", 2)
    assert kept is not None and kept.last_t == 5.0  # partition 2 keeps its changes
    changed = store.take_changed()
    assert list(changed) == [2] and decode_state(changed[2][0][1]).last_t == 5.0
    assert store.holds(1) and decode_state(store.stored[1][b"u1"]).last_t == 1.0


def test_forget_drops_a_partition_and_its_pending_changes() -> None:
    store = holding(1, 2)
    store.restore(3, {b"u3": raw(2.0)}, 7)
    store.put({"u1": (Member(last_t=1.0), 1), "u3": (Member(last_t=3.0), 3)})
    store.forget([3])
    assert not store.holds(3) and 3 not in store.live and 3 not in store.ends
    assert store.holds(1) and store.holds(2)
    assert list(store.take_changed()) == [1]  # u3's change went with its partition
    with pytest.raises(KeyError):  # a partition not held cannot be read: recover it first
        store.load("u3", 3)


def test_restore_replaces_what_was_held() -> None:
    store = holding(2)
    store.put({"u1": (Member(last_t=1.0), 2)})
    store.take_changed()
    assert store.load("u1", 2) is not None
    store.restore(2, {b"u2": raw(6.0)}, 40)
    assert store.load("u1", 2) is None and store.ends[2] == 40
    u2 = store.load("u2", 2)
    assert u2 is not None and u2.last_t == 6.0


class FailsMidBatch(Detector):
    """A core that has changed the states of the events before ``e2`` when it trips on it."""

    def process_batch(self, events, states):  # type: ignore[no-untyped-def]
        events = list(events)
        ids = [e.event_id for e in events]
        if "e2" in ids:
            super().process_batch(events[:ids.index("e2")], states)
            raise ZeroDivisionError("boom")
        return super().process_batch(events, states)


def test_a_core_failure_retries_from_the_state_as_stored() -> None:
    # The live object was changed in place by the failed batch; the retry must not
    # count those events twice, so it starts again from the checkpoint's copy.
    store = holding(1, 2)
    detector = FailsMidBatch(load_rules(), build_force())
    first = run_batch(detector, [Msg(wire("e0", "u1", T0 + HOUR), partition=2)],
                      store.load, store.as_stored)
    store.put(first.states, first.applied)
    store.take_changed()
    before = store.stored[2][b"u1"]
    batch = [Msg(wire("e1", "u1", T0 + 2 * HOUR), partition=2, offset=1),
             Msg(wire("e2", "u3", T0 + 2 * HOUR), partition=1, offset=2),
             Msg(wire("e3", "u1", T0 + 3 * HOUR), partition=2, offset=3)]
    retried = run_batch(detector, batch, store.load, store.as_stored)
    clean = run_batch(Detector(load_rules(), build_force()), [batch[0], batch[2]],
                      lambda uid, p: decode_stored(before))
    assert retried.fallbacks == 1
    assert [r.message.offset for r in retried.rejected] == [2]
    assert retried.repeats == 0  # from the live object, e1 would be found there already
    # Compared as the core's UserState: the stored copy also says how far it goes.
    assert (decode_state(encode_state(retried.states["u1"][0]))
            == decode_state(encode_state(clean.states["u1"][0])))
