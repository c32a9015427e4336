"""One batch of raw messages through the detection core: no Kafka, no Faust here.

The agent hands over messages and a way to read a member's stored state; it
gets back what to publish, what to dead-letter and which states to write,
each member's state read once and written once per batch.

>>> out = run_batch(detector, messages, load_state=lambda uid, p: None)  # doctest: +SKIP
>>> out.processed, len(out.rejected), len(out.alerts)                 # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from accesswatch.contract.events import AccessEvent, decode_event
from accesswatch.core import Alert, Detector, Member, Outcome
from accesswatch.errors import InvalidRecord
from streams.store import StoredState

log = logging.getLogger("accesswatch.batch")


class Message(Protocol):
    """What a batch needs of a Kafka message (Faust's ``Message`` fits)."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


@dataclass(slots=True)
class Rejected:
    message: Message
    error: InvalidRecord


@dataclass(slots=True)
class BatchOutcome:
    # Alerts new or changed: their whole content now, for the publisher to version.
    alerts: list[Alert] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)  # see ``Outcome.withdrawn``
    rejected: list[Rejected] = field(default_factory=list)
    processed: int = 0  # valid events, including those ``skipped``
    skipped: int = 0  # read again after a restart; the member's stored state has them
    repeats: int = 0  # event ids the member's timeline already held: changed nothing
    rewound: int = 0  # members put back in event time for a late event
    replayed: int = 0  # events judged in those members' runs
    fallbacks: int = 0  # batches the core failed on, retried event by event
    # Every member seen in the batch → (their state, the partition their events came on).
    states: dict[str, tuple[Member, int]] = field(default_factory=dict)
    # Member → (partition, offset after their last event applied in this batch).
    applied: dict[str, tuple[int, int]] = field(default_factory=dict)
    rows_due: int = 0  # feature rows due a score (with a model)
    rows_judged: int = 0  # ... of which the model judged; the rest could not yield a verdict


StateLoader = Callable[[str, int], Member | None]  # (user id, partition) → state


class CoreFailed(Exception):
    """The core raised on a batch and there is no state from before it to retry from."""


def decode(raw: bytes) -> AccessEvent:
    """``decode_event``, with any stray decoder exception turned into a rejection.

    The contract says a bad message never stops the pipeline: if the decoder
    lets something other than ``InvalidRecord`` escape (truncated JSON that
    starts as an array does, with msgspec 0.22), the message is still refused.
    """
    try:
        return decode_event(raw)
    except InvalidRecord:
        raise
    except msgspec.DecodeError:
        raise InvalidRecord("not valid JSON", "invalid_json") from None
    except Exception as e:
        raise InvalidRecord(f"decoder raised {type(e).__name__}", "decode_error") from None


def run_batch(detector: Detector, messages: Sequence[Message], load_state: StateLoader,
              reload_state: StateLoader | None = None) -> BatchOutcome:
    """Decode, detect, collect.  ``load_state`` may hand out live objects the core then
    changes in place; ``reload_state`` must give the state as it was before this batch, for
    the retry event by event when the core fails mid-batch.  Without it such a failure
    raises ``CoreFailed``: the caller goes back to a state from before the batch.

    A message whose key is not its event's ``user_id`` (or has none) is refused
    (``key_mismatch``): the partition follows the key, so the member's events would not
    all be in one partition, in one order."""
    out = BatchOutcome()
    events: list[AccessEvent] = []
    sources: list[Message] = []
    partition_of: dict[str, int] = {}
    for m in messages:
        try:
            event = decode(m.value if m.value is not None else b"")
            if m.key != event.user_id.encode():
                raise InvalidRecord("the message key is not the event's user_id",
                                    "key_mismatch")
        except InvalidRecord as e:
            out.rejected.append(Rejected(m, e))
            continue
        events.append(event)
        sources.append(m)
        # State goes back to the partition the member's events arrive on, so a
        # worker that later owns that partition recovers it from the changelog.
        partition_of[event.user_id] = m.partition
    states: dict[str, Member] = {}
    for uid, partition in partition_of.items():
        state = load_state(uid, partition)
        # A new member starts as what the store keeps, so it stays one object.
        states[uid] = state if state is not None else StoredState()
    out.processed = len(events)
    events, sources = _not_yet_applied(events, sources, states, out)
    due, judged = detector.rows_due, detector.rows_judged
    try:
        outcome = detector.process_batch(events, states)
    except Exception:
        if reload_state is None:
            raise CoreFailed() from None
        log.exception("detection core failed on a batch; retrying event by event")
        out.fallbacks += 1
        outcome = _one_by_one(detector, events, sources, reload_state, states, out)
    out.rows_due, out.rows_judged = detector.rows_due - due, detector.rows_judged - judged
    out.alerts = outcome.changed
    out.withdrawn = outcome.withdrawn
    out.repeats, out.rewound, out.replayed = len(outcome.repeats), outcome.rewound, \
        outcome.replayed
    if outcome.too_late:
        horizon = detector.pack.settings.horizon
        for i in outcome.too_late:
            out.processed -= 1
            out.rejected.append(Rejected(sources[i], InvalidRecord(
                f"more than {horizon} behind the member's newest event", "too_late")))
    out.states = {uid: (st, partition_of[uid]) for uid, st in states.items()}
    return out


def _not_yet_applied(events: list[AccessEvent], sources: list[Message],
                     states: dict[str, Member], out: BatchOutcome
                     ) -> tuple[list[AccessEvent], list[Message]]:
    """Drop events a stored state already includes (a replay after a crash); note the rest.

    A stored state says how far it goes (``applied``: partition, offset after); an event
    on another partition than the state's cannot be placed, and is applied."""
    upto = {uid: getattr(state, "applied", None) for uid, state in states.items()}
    kept_events, kept_sources = [], []
    last: dict[str, Message] = {}
    for event, m in zip(events, sources, strict=True):
        uid = event.user_id
        applied = upto[uid]
        if applied is not None and applied[0] == m.partition and m.offset < applied[1]:
            out.skipped += 1
            continue
        kept_events.append(event)
        kept_sources.append(m)
        last[uid] = m
    out.applied = {uid: (m.partition, m.offset + 1) for uid, m in last.items()}
    return kept_events, kept_sources


def _one_by_one(detector: Detector, events: list[AccessEvent], sources: list[Message],
                load_state: StateLoader, states: dict[str, Member],
                out: BatchOutcome) -> Outcome:
    """Isolate an event the core cannot handle: dead-letter it, keep the rest going.

    A last resort, counted (``accesswatch_core_fallbacks_total``): no valid event
    should ever get here.
    """
    states.clear()
    total = Outcome()
    changed: dict[str, Alert] = {}
    for i, (event, source) in enumerate(zip(events, sources, strict=True)):
        member = states.get(event.user_id)
        if member is None:
            member = states[event.user_id] = load_state(event.user_id, source.partition) \
                or StoredState()
        try:
            outcome = detector.process(event, member)
        except Exception as e:
            log.error("detection core failed on %s partition %d offset %d: %s",
                      source.topic, source.partition, source.offset, type(e).__name__)
            out.processed -= 1
            out.rejected.append(Rejected(source, InvalidRecord(
                f"detection core raised {type(e).__name__}", "processing_error")))
            continue
        for alert in outcome.changed:
            changed[alert.alert_id] = alert
        total.withdrawn.extend(outcome.withdrawn)
        total.too_late.extend(i for _ in outcome.too_late)
        total.repeats.extend(i for _ in outcome.repeats)
        total.rewound += outcome.rewound
        total.replayed += outcome.replayed
    total.changed = list(changed.values())
    return total
