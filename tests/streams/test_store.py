"""Live states between checkpoints, each changed member encoded once a checkpoint: no Kafka."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accesswatch.core import Detector, Member
from accesswatch.core.state import decode_state, encode_state
from accesswatch.rules import load_rules
from streams import store as store_module
from streams.batch import run_batch
from streams.store import (
    StateStore,
    StoredState,
    decode_stored,
    encode_stored,
    encoded,
    fold,
    stored,
)
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
    assert b"u1" not in store.stored[2]  # the record is let go: the live object is u1 now


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
    changed = store.take_changed()
    assert encodes == []  # nothing encoded by a batch, nor by taking what changed
    records = {p: list(encoded(r)) for p, r in changed.items()}
    assert sorted(encodes) == [3.0, 3.0]  # once each as it goes out, the latest state
    assert {p: [(k, decode_state(v).last_t) for k, v in r]
            for p, r in records.items()} == {1: [(b"u2", 3.0)], 2: [(b"u1", 3.0)]}
    assert store.take_changed() == {} and len(encodes) == 2  # nothing changed since


def test_a_checkpoint_keeps_no_copy_of_what_it_writes() -> None:
    store = holding(2)
    store.put({"u1": (Member(last_t=4.0), 2)}, {"u1": (2, 17)})
    [(key, value)] = encoded(store.take_changed()[2])
    back = decode_stored(value)
    assert (key, back.last_t, back.applied) == (b"u1", 4.0, (2, 17))
    assert store.stored[2] == {}  # the changelog has it; the live object is u1
    live = store.load("u1", 2)
    assert live is not None and live.last_t == 4.0


def test_a_batch_that_may_be_retried_keeps_its_members_as_they_were() -> None:
    store = holding(2)
    store.restore(2, {b"u1": raw(1.0)}, 1)
    load, before = store.rollback_loaders()
    live = load("u1", 2)
    assert live is not None and live.last_t == 1.0
    live.last_t = 8.0  # the core changes it in place, then fails
    copy = before("u1", 2)
    assert copy is not None and copy is not live and copy.last_t == 1.0
    assert before("u1", 2) is not copy  # a fresh object each time
    assert load("nobody", 2) is None and before("nobody", 2) is None  # new in the batch
    assert before("u2", 2) is None  # not in this batch
    assert store.load("u1", 2) is live  # the live one carries on
    assert store.rollback_loaders()[1]("u1", 2) is None  # the copies are the batch's own


def test_going_back_reads_those_partitions_again_and_keeps_the_others() -> None:
    store = holding(1, 2)
    store.put({"u1": (Member(last_t=1.0), 1), "u2": (Member(last_t=1.0), 2)})
    changelog = {p: dict(encoded(r)) for p, r in store.take_changed().items()}
    for uid, p in (("u1", 1), ("u2", 2)):
        live = store.load(uid, p)
        assert live is not None
        live.last_t = 5.0
        store.put({uid: (live, p)})
    store.put({"u9": (Member(last_t=5.0), 1)})  # new since the checkpoint
    store.forget([1])
    assert not store.holds(1)  # not to be read until read again
    store.restore(1, changelog[1], 1)
    again = store.load("u1", 1)
    assert again is not None and again.last_t == 1.0  # as the checkpoint wrote it
    assert store.load("u9", 1) is None
    kept = store.load("u2", 2)
    assert kept is not None and kept.last_t == 5.0  # partition 2 keeps its changes
    changed = store.take_changed()
    assert list(changed) == [2] and [(k, s.last_t) for k, s in changed[2]] == [(b"u2", 5.0)]


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


def test_a_core_failure_retries_from_the_state_before_the_batch() -> None:
    # The live object was changed in place by the failed batch; the retry must not
    # count those events twice, so it starts again from the batch's own copy.
    store = holding(1, 2)
    detector = FailsMidBatch(load_rules(), build_force())
    first = run_batch(detector, [Msg(wire("e0", "u1", T0 + HOUR), partition=2)],
                      *store.rollback_loaders())
    store.put(first.states, first.applied)
    before = dict(encoded(store.take_changed()[2]))[b"u1"]
    batch = [Msg(wire("e1", "u1", T0 + 2 * HOUR), partition=2, offset=1),
             Msg(wire("e2", "u3", T0 + 2 * HOUR), partition=1, offset=2),
             Msg(wire("e3", "u1", T0 + 3 * HOUR), partition=2, offset=3)]
    retried = run_batch(detector, batch, *store.rollback_loaders())
    clean = run_batch(Detector(load_rules(), build_force()), [batch[0], batch[2]],
                      lambda uid, p: decode_stored(before))
    assert retried.fallbacks == 1
    assert [r.message.offset for r in retried.rejected] == [2]
    assert retried.repeats == 0  # from the live object, e1 would be found there already
    # Compared as the core's UserState: the stored copy also says how far it goes.
    assert (decode_state(encode_state(retried.states["u1"][0]))
            == decode_state(encode_state(clean.states["u1"][0])))


def test_fold_gathers_the_members_a_checkpoint_cut_short_wrote_after_the_last_mark() -> None:
    into: dict[bytes, bytes] = {}
    after: set[bytes] = set()
    log = [(b"u1", b"a"), (b"u2", b"b"), (MARK, b"m1"),  # a checkpoint that finished
           (b"u2", b"c"), (b"u3", b"d"), (b"u4", b"e"), (b"u4", None)]  # one cut short
    for key, value in log:
        fold(into, after, key, value)
    assert into == {b"u1": b"a", b"u2": b"c", b"u3": b"d", MARK: b"m1"}
    assert after == {b"u2", b"u3"}  # u4's tombstone leaves nothing to look at
    fold(into, after, MARK, b"m2")
    assert after == set()


MARK = b"\xffaccesswatch-outputs:0"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(  # members, stored or deleted; marks, which are never deleted
    st.tuples(st.sampled_from([b"u1", b"u2", b"u3"]),
              st.one_of(st.none(), st.binary(min_size=1, max_size=2))),
    st.tuples(st.just(MARK), st.binary(min_size=1, max_size=2)))))
def test_fold_answers_the_same_after_compaction(log: list[tuple[bytes, bytes | None]]) -> None:
    """A compacted changelog keeps each key's last record where it was (tombstones too,
    for a while, then not): the members and those after the last mark are the same."""
    def folded(records: list[tuple[bytes, bytes | None]]) -> tuple[dict, set]:
        into: dict[bytes, bytes] = {}
        after: set[bytes] = set()
        for key, value in records:
            fold(into, after, key, value)
        return into, after

    last = {key: i for i, (key, _) in enumerate(log)}
    compacted = [r for i, r in enumerate(log) if last[r[0]] == i]
    assert folded(compacted) == folded(log)
    cleaned = [r for r in compacted if r[1] is not None]  # tombstones gone too
    assert folded(cleaned) == folded(log)
