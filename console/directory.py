"""The reference facts the console judges accesses by: cases, protected subjects,
and the watch-list analysts add to.

Each is a fold of a compacted topic, rebuilt from its start on every start:
``ref.cases`` (was an access justified, by the core's own test),
``ref.subjects`` (only the flags that make a subject protected; names and
addresses are never held) and the console's watch-list topic.  Every
``apply_record`` refuses a record it cannot read, returning False, and never
raises: a bad record on a topic must not stop the console.

>>> facts = CaseFacts(closed_grace_s=48 * 3600)
>>> facts.apply_record(b"C1", b'{"case_ref":"C1","status":"open","assigned_users":["u1"]}')
True
>>> ev = HistoryEvent("e1", 1772438400000, "2026-03-02T08:00:00Z", "u2", "PNC", "view",
...                   "T1", "person", "P1", "C1")
>>> facts.why_unjustified(ev)
'they are not assigned to the case given (C1)'
"""

from __future__ import annotations

from typing import Annotated, Any, cast

import msgspec

from accesswatch.contract.events import AccessEvent, Action
from accesswatch.contract.reference import SubjectRecord, decode_reference
from accesswatch.contract.timestamps import format_ts, parse_ts
from accesswatch.core.context import justifying_case_problem
from accesswatch.reference import ReferenceData
from console.history import HistoryEvent
from streams.reference_feed import apply_record as apply_reference

PROTECTED_FLAGS = frozenset({"vip", "restricted", "protected", "victim", "staff", "sensitive"})
MAX_REASON = 500


class CaseFacts:
    """``ref.cases`` as the worker holds it, to say why an access was not justified.

    ``closed_grace_s`` is the rule pack's ``closed_case_grace`` in seconds
    (48 h by default): how long after closing a case still justifies work on it.
    """

    def __init__(self, closed_grace_s: float) -> None:
        self.closed_grace_s = closed_grace_s
        self._ref = ReferenceData()  # only its cases are ever filled

    def __len__(self) -> int:
        return len(self._ref.cases)

    def apply_record(self, key: bytes | None, value: bytes | None) -> bool:
        """One ``ref.cases`` record (the worker's own rules: the key must name
        the case); False when refused."""
        op, _ = apply_reference(self._ref, "case", key, value)
        return op != "invalid"

    def describe(self, case_ref: str) -> dict[str, Any] | None:
        """The case as the judgement saw it (for an evidence pack); None if unknown."""
        case = self._ref.cases.get(case_ref)
        if case is None:
            return None
        return {"case_ref": case.case_ref, "status": case.status, "area": case.area,
                "assigned_users": sorted(case.assigned), "subject_ids": sorted(case.subjects),
                "opened_at": format_ts(case.opened) if case.opened is not None else None,
                "closed_at": format_ts(case.closed) if case.closed is not None else None}

    def why_unjustified(self, ev: HistoryEvent) -> str:
        """``""`` when the access's case justifies it, else why not, in the
        words the core's alerts use (no case, unknown case, not open at the
        time, member not assigned, subject not listed)."""
        event = AccessEvent(ev.event_id, ev.ts, ev.user_id, ev.terminal_id, ev.system,
                            cast(Action, ev.action), case_ref=ev.case_ref,
                            t=ev.t_ms / 1000)
        return justifying_case_problem(event, ev.subject_id or None, self._ref,
                                       self.closed_grace_s)


class Protected(msgspec.Struct, frozen=True):
    subject_type: str
    flags: tuple[str, ...]


class ProtectedSubjects:
    """The subjects of ``ref.subjects`` whose flags make them protected (victims,
    staff, VIPs…): subject_id → type and flags.  Other subjects are not held."""

    def __init__(self, flags: frozenset[str] = PROTECTED_FLAGS) -> None:
        self.flags = flags
        self.subjects: dict[str, Protected] = {}

    def apply_record(self, key: bytes | None, value: bytes | None) -> bool:
        """One ``ref.subjects`` record: an upsert (kept only if protected) or a
        tombstone; False when refused."""
        try:
            name = key.decode() if key is not None else None
            if value is None:
                if name is None:
                    return False
                self.subjects.pop(name, None)
                return True
            record: SubjectRecord = decode_reference("subject", value)
        except Exception:  # invalid bytes of any kind: refused, never raised
            return False
        if name is not None and name != record.subject_id:
            return False  # compaction keeps the last value per key: it must name the record
        flags = tuple(sorted({f.strip().casefold() for f in record.flags} & self.flags))
        if flags:
            self.subjects[record.subject_id] = Protected(record.subject_type, flags)
        else:
            self.subjects.pop(record.subject_id, None)
        return True

    def get(self, subject_id: str) -> Protected | None:
        return self.subjects.get(subject_id)


class WatchEntry(msgspec.Struct, frozen=True):
    """A subject an analyst put on the watch-list: the value on its compacted topic,
    keyed by subject_id (a tombstone takes it off)."""

    subject_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON)]
    by: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    at: str


class WatchItem(msgspec.Struct, frozen=True):
    """One subject on the watch-list as the page shows it."""

    subject_id: str
    source: str  # "console" (an analyst added it) or "reference" (its flags)
    subject_type: str | None
    flags: tuple[str, ...]
    reason: str
    by: str | None = None
    at: str | None = None


class WatchError(ValueError):
    """A watch-list entry that cannot be recorded, in words for the analyst."""


def watch_entry(subject_id: str, reason: str, *, by: str, at: str) -> WatchEntry:
    """A new entry for the topic (key: ``subject_id.encode()``, value: ``encode(entry)``)."""
    subject_id, reason = subject_id.strip(), reason.strip()
    if not subject_id or len(subject_id) > 128:
        raise WatchError("a subject id is 1 to 128 characters")
    if not reason:
        raise WatchError("say why the subject is watched")
    if len(reason) > MAX_REASON:
        raise WatchError(f"the reason is longer than {MAX_REASON} characters")
    return WatchEntry(subject_id, reason, by, at)


encode = msgspec.json.encode
_entry = msgspec.json.Decoder(WatchEntry)


class Watchlist:
    """The watch-list: subjects analysts added (their compacted topic, folded)
    together with every protected subject of the reference data."""

    def __init__(self, protected: ProtectedSubjects) -> None:
        self.protected = protected
        self.added: dict[str, WatchEntry] = {}

    def apply_record(self, key: bytes | None, value: bytes | None) -> bool:
        """One record of the watch-list topic: an entry, or a tombstone that
        removes one; False when refused."""
        try:
            name = key.decode() if key is not None else None
            if value is None:
                if name is None:
                    return False
                self.added.pop(name, None)
                return True
            entry = _entry.decode(value)
            parse_ts(entry.at, "at")
        except Exception:  # invalid bytes of any kind: refused, never raised
            return False
        if name is not None and name != entry.subject_id:
            return False
        self.added[entry.subject_id] = entry
        return True

    def get(self, subject_id: str) -> WatchItem | None:
        """The subject's watch-list entry, if it has one."""
        entry, facts = self.added.get(subject_id), self.protected.get(subject_id)
        if entry is not None:
            return WatchItem(subject_id, "console", facts.subject_type if facts else None,
                             facts.flags if facts else (), entry.reason, entry.by, entry.at)
        if facts is not None:
            return WatchItem(subject_id, "reference", facts.subject_type, facts.flags,
                             "flagged " + ", ".join(facts.flags))
        return None

    def subject_ids(self) -> set[str]:
        return self.added.keys() | self.protected.subjects.keys()

    def entries(self) -> list[WatchItem]:
        """Every subject watched, one entry each: an analyst's entry (source
        "console", with the reference's flags if any) wins over the flags alone
        (source "reference"); ordered by subject id."""
        items = (self.get(sid) for sid in sorted(self.subject_ids()))
        return [item for item in items if item is not None]

