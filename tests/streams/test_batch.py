"""One batch through the core, without Kafka: decode, dead letters, state in and out."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import pytest

from accesswatch.contract.timestamps import format_ts
from accesswatch.core import Detector, Member
from accesswatch.core.state import decode_member, encode_member
from accesswatch.rules import load_rules
from streams.batch import CoreFailed, run_batch
from tests.core.force import HOUR, T0, build_force

KEYED = b"<the event's user_id>"


@dataclass
class Msg:
    """A Kafka message; keyed by its event's ``user_id``, as producers must, unless told."""

    value: bytes | None
    key: bytes | None = KEYED
    topic: str = "access.events"
    partition: int = 0
    offset: int = 0

    def __post_init__(self) -> None:
        if self.key is KEYED:
            try:
                self.key = msgspec.json.decode(self.value or b"")["user_id"].encode()
            except Exception:
                self.key = None


def wire(event_id: str, user: str, t: float, subject: str | None = "P-X") -> bytes:
    return msgspec.json.encode({"event_id": event_id, "ts": format_ts(t), "user_id": user,
                                "terminal_id": "NTH-T1", "system": "PND", "action": "view",
                                "subject_type": "person", "subject_id": subject})


INVALID = {
    b'{"event_id": "x1", "ts": ': "invalid_json",
    b'\xff\xfe{"event_id": "x2"}': "invalid_utf8",
    b'{"event_id": "x3", "ts": "2026-03-02T08:00:00Z", "user_id": "u1"}': "missing_field",
    b'{"event_id": "x4", "ts": "2026-03-02T08:00:00", "user_id": "u1", "terminal_id": "T",'
    b' "system": "PND", "action": "view"}': "bad_timestamp",
}


def messages() -> list[Msg]:
    out = [Msg(wire("e1", "u1", T0 + HOUR), partition=2),
           Msg(wire("e2", "u3", T0 + HOUR), partition=1),  # u3 is a leaver
           Msg(wire("e3", "u1", T0 + 2 * HOUR), partition=2)]
    out += [Msg(raw, partition=3) for raw in INVALID]
    out.append(Msg(None, partition=3))
    for i, m in enumerate(out):
        m.offset = i
    return out


def test_invalid_messages_are_rejected_with_their_reason_class() -> None:
    out = run_batch(Detector(load_rules(), build_force()), messages(), lambda uid, p: None)
    got = {r.message.value: r.error.reason_class for r in out.rejected}
    expected: dict[bytes | None, str] = {None: "invalid_json"}
    expected.update(INVALID.items())
    assert got == expected
    assert out.processed == 3
    assert out.processed + len(out.rejected) == len(messages())


def test_alerts_come_back_and_each_member_state_goes_to_its_partition() -> None:
    out = run_batch(Detector(load_rules(), build_force()), messages(), lambda uid, p: None)
    assert "AW-011" in {a.rule_id for a in out.alerts}
    assert {uid: p for uid, (_, p) in out.states.items()} == {"u1": 2, "u3": 1}
    assert out.states["u1"][0].last_t == T0 + 2 * HOUR


def test_state_is_read_once_per_member_and_carried_between_batches() -> None:
    stored: dict[str, bytes] = {}
    reads: list[tuple[str, int]] = []

    def load(uid: str, partition: int) -> Member | None:
        reads.append((uid, partition))
        return decode_member(stored[uid]) if uid in stored else None

    detector = Detector(load_rules(), build_force())
    first = run_batch(detector, messages(), load)
    assert sorted(reads) == [("u1", 2), ("u3", 1)]  # each once, with its events' partition
    stored.update({uid: encode_member(st) for uid, (st, _) in first.states.items()})
    (before,) = [a for a in first.alerts if a.rule_id == "AW-011"]
    # The leaver's second access joins the alert already raised: its next version.
    again = run_batch(detector, [Msg(wire("e9", "u3", T0 + 3 * HOUR), partition=1)], load)
    (after,) = [a for a in again.alerts if a.rule_id == "AW-011"]
    assert after.alert_id == before.alert_id and (before.count, after.count) == (1, 2)


def test_late_events_are_judged_and_those_past_the_horizon_dead_lettered() -> None:
    """An event an hour behind its member's newest is judged; two days behind, refused."""
    detector = Detector(load_rules(), build_force())
    msgs = [Msg(wire("e1", "u1", T0 + 50 * HOUR), offset=0),
            Msg(wire("e2", "u1", T0 + 49 * HOUR, "P-FAM"), offset=1),
            Msg(wire("e3", "u1", T0 + HOUR, "P-FAM"), offset=2),
            Msg(wire("e2", "u1", T0 + 49 * HOUR, "P-FAM"), offset=3)]  # sent again
    out = run_batch(detector, msgs, lambda uid, p: None)
    assert [(r.message.offset, r.error.reason_class) for r in out.rejected] == [(2, "too_late")]
    assert out.processed == 3 and out.repeats == 1
    (family,) = [a for a in out.alerts if a.rule_id == "AW-002"]
    assert family.event_ids == ["e2"] and family.count == 1


class Fragile(Detector):
    """A core with a bug that one event trips."""

    def process_batch(self, events, states):  # type: ignore[no-untyped-def]
        if any(event.event_id == "e2" for event in events):
            raise ZeroDivisionError("boom")
        return super().process_batch(events, states)


def test_without_a_state_to_retry_from_a_core_failure_raises_core_failed() -> None:
    """The caller goes back to its last checkpoint: nothing is dead-lettered here."""
    loads: list[tuple[str, int]] = []

    def load(uid: str, partition: int) -> Member | None:
        loads.append((uid, partition))
        return None

    with pytest.raises(CoreFailed):
        run_batch(Fragile(load_rules(), build_force()), messages(), load)
    assert sorted(loads) == [("u1", 2), ("u3", 1)]  # the batch got as far as the core


def test_with_a_state_to_retry_from_the_event_the_core_cannot_handle_is_dead_lettered(
        ) -> None:
    msgs = messages()
    reloads: list[tuple[str, int]] = []

    def reload(uid: str, partition: int) -> Member | None:
        reloads.append((uid, partition))
        return None

    out = run_batch(Fragile(load_rules(), build_force()), msgs, lambda uid, p: None, reload)
    assert out.fallbacks == 1
    # One by one, each member's state read again as it was before the batch, once.
    assert sorted(reloads) == [("u1", 2), ("u3", 1)]
    failed = [r for r in out.rejected if r.error.reason_class == "processing_error"]
    assert [r.message.offset for r in failed] == [1]
    assert failed[0].message.value == msgs[1].value  # the original bytes
    assert "boom" not in failed[0].error.reason  # exception text may hold record content
    assert out.processed == 2
    assert out.processed + len(out.rejected) == len(msgs)
    assert out.states["u1"][0].last_t == T0 + 2 * HOUR  # both of u1's events were judged
    assert "AW-011" not in {a.rule_id for a in out.alerts}  # u3's event went nowhere


def test_a_message_keyed_with_another_members_id_is_dead_lettered() -> None:
    """The partition follows the key: u1's event under u3's key would sit in u3's order."""
    msgs = [Msg(wire("e1", "u1", T0 + HOUR), key=b"u1", partition=2, offset=0),
            Msg(wire("e2", "u1", T0 + HOUR + 60), key=b"u3", partition=1, offset=1),
            Msg(wire("e3", "u3", T0 + HOUR), key=b"u3", partition=1, offset=2),
            Msg(wire("e4", "u1", T0 + 2 * HOUR), key=None, partition=0, offset=3),  # none
            Msg(wire("e5", "u1", T0 + 2 * HOUR + 60), partition=2, offset=4)]
    out = run_batch(Detector(load_rules(), build_force()), msgs, lambda uid, p: None)
    assert [(r.message.offset, r.error.reason_class) for r in out.rejected] == [
        (1, "key_mismatch"), (3, "key_mismatch")]
    assert out.processed == 3
    assert {uid: p for uid, (_, p) in out.states.items()} == {"u1": 2, "u3": 1}
    assert out.applied == {"u1": (2, 5), "u3": (1, 3)}
    assert "AW-011" in {a.rule_id for a in out.alerts}  # u3's own event still judged
