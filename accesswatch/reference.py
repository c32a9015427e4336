"""Reference data (HR, records, case management, roster) and the lookups rules need.

Every record kind can be upserted or deleted (a tombstone) at any time, live
from the compacted ``ref.*`` topics or in bulk from JSONL files; each indexed
view is kept in step on both paths.

The records are held in columnar tables (``accesswatch/refstore.py``): only
what the rules and features read (keys of the normalised surname and postcode,
flags, area, the member's own record, case assignments and subjects, duty
periods), about 85 bytes a record in a worker.  A lookup builds a small immutable record
(``Staff``, ``Subject``, ``CaseInfo``) from its row; the ones in use are kept
in bounded caches, which every change to that id clears.  Members, asked for by
every event, are all built when their table is folded or restored, if they fit
their cache; subjects and cases on first sight.  The whole state can
be written to a snapshot directory and memory-mapped back (``save`` / ``load``).
"""

from __future__ import annotations

import bisect
import json
import math
import os
import shutil
import zlib
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from sys import intern
from typing import Any, Generic, TypeVar

import msgspec
import numpy as np

from accesswatch.contract.reference import (
    KEY_FIELDS,
    decode_reference,
    normalise_postcode,
    normalise_surname,
)
from accesswatch.contract.timestamps import parse_ts_recent
from accesswatch.errors import InvalidRecord, UsageError
from accesswatch.refstore import Lookup, Table, fingerprint, key_of

FILES = {
    "staff": "staff.jsonl",
    "subject": "subjects.jsonl",
    "case": "cases.jsonl",
    "duty": "duties.jsonl",
}
SUBJECT_TYPES = ("person", "vehicle", "address", "incident", "other")
_TYPE_CODES = {t: i for i, t in enumerate(SUBJECT_TYPES)}
SNAPSHOT_FORMAT = "accesswatch.reference-snapshot/1"
LOAD_RUN = 2_000  # records a bulk read hands to ``load_many`` at a time
CACHE = {"staff": 65_536, "subject": 65_536, "case": 16_384, "roster": 8_192}


class Staff(msgspec.Struct, frozen=True, gc=False):
    """One member as the rules see them; ``surname_key`` / ``postcode_key`` are
    ``key_of`` the normalised text (0: none), so only equality can be asked."""

    user_id: str
    surname_key: int
    postcode_key: int
    person_id: str | None
    role: str
    unit: str
    area: str
    status: str
    last_active: float | None
    peer: str  # the member's peer group for the anomaly model: role and unit


class Subject(msgspec.Struct, frozen=True, gc=False):
    subject_id: str
    subject_type: str
    surname_key: int
    postcode_key: int
    area: str | None
    flags: frozenset[str]


class CaseInfo(msgspec.Struct, frozen=True, gc=False):
    case_ref: str
    status: str
    assigned: tuple[str, ...]  # tuples, not sets: a case lists a few, and a set costs 216 bytes
    subjects: tuple[str, ...]
    opened: float | None
    closed: float | None
    area: str | None


_staff_payload = msgspec.msgpack.Decoder(tuple[str | None, str, str, str, str])
_case_payload = msgspec.msgpack.Decoder(tuple[str | None, tuple[str, ...], tuple[str, ...]])
_encode = msgspec.msgpack.encode
_MISSING = object()
R = TypeVar("R")


class _Cache(dict[str, Any]):
    """Records by id, built on a miss (``None`` for none); when full, the older
    half (by when each was built) goes.  A plain dict: an ordered one costs twice
    the memory, and a hit must not run Python code."""

    def __init__(self, build: Callable[[str], Any], size: int) -> None:
        super().__init__()
        self.build, self.size = build, size

    def __missing__(self, key: str) -> Any:
        value = self.build(key)
        if len(self) >= self.size:  # the older half goes: what is in use now stays
            for old in list(islice(self, self.size // 2)):
                del self[old]
        self[key] = value
        return value


class RecordView(Generic[R]):
    """``ref.staff`` / ``ref.subjects`` / ``ref.cases``: a read-only mapping by id.

    Each record is built from its row when asked and kept in a bounded cache,
    misses included; ``forget`` drops one id on change.  ``lookup(key)`` is
    ``get(key)`` at the speed of a dict: a hit never runs Python code.
    """

    def __init__(self, table: Table, make: Callable[[int, str], R], size: int) -> None:
        self.table, self.make = table, make
        self.cache = _Cache(self._build, size)
        self.lookup: Callable[[str], R | None] = self.cache.__getitem__

    def _build(self, key: str) -> R | None:
        row = self.table.row_alive(key)
        return self.make(row, key) if row >= 0 else None

    def get(self, key: str, default: Any = None) -> R | Any:
        hit = self.cache[key]
        return default if hit is None else hit

    def __getitem__(self, key: str) -> R:
        hit = self.cache[key]
        if hit is None:
            raise KeyError(key)
        return hit  # type: ignore[no-any-return]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.cache[key] is not None

    def __len__(self) -> int:
        return self.table.live

    def __iter__(self) -> Iterator[str]:
        return self.table.keys()

    def forget(self, key: str) -> None:
        self.cache.pop(key, None)

    def build_all(self) -> None:
        """Empty the cache (the rows moved), then build every record now if all fit in
        it, so no event pays for a first sight.  For the members alone: every event asks
        for its member, and they are few.  Subjects and cases are asked for a few at a
        time and are many: built up front they would cost their memory from the start
        (measured at 2,000 staff: 62,325 subjects, 14 MB more RSS after the first day)."""
        cache, t = self.cache, self.table
        cache.clear()
        if t.loading or t.live >= cache.size:
            return
        make, id_at = self.make, t.id_at
        for row in t.alive_rows().tolist():
            key = id_at(row)
            cache[key] = make(row, key)


class Pool:
    """Few distinct values (areas, flag sets) as small integer codes."""

    def __init__(self, values: list[Any] | None = None) -> None:
        self.values: list[Any] = list(values or [])
        self.codes: dict[Any, int] = {v: i for i, v in enumerate(self.values)}

    def code(self, value: Any) -> int:
        code = self.codes.get(value)
        if code is None:
            code = self.codes[value] = len(self.values)
            self.values.append(value)
        return code


@dataclass(slots=True)
class Roster:
    """One member's duty periods, sorted by start, for cover at an instant."""

    starts: list[float] = field(default_factory=list)
    periods: list[tuple[float, float, str]] = field(default_factory=list)
    longest: float = 0.0
    # The period that last covered an instant: a member's events come in runs
    # within one shift, so most look-ups end here.
    last_hit: tuple[float, float, str] | None = field(default=None, repr=False, compare=False)

    def add(self, start: float, end: float, duty_id: str) -> None:
        i = bisect.bisect_right(self.starts, start)
        self.starts.insert(i, start)
        self.periods.insert(i, (start, end, duty_id))
        self.longest = max(self.longest, end - start)

    def remove(self, duty_id: str) -> None:
        for i, period in enumerate(self.periods):
            if period[2] == duty_id:
                del self.starts[i], self.periods[i]
                self.last_hit = None
                return

    def covers(self, t: float, grace: float) -> bool:
        """True when ``t`` lies within some period widened by ``grace`` each side."""
        hit = self.last_hit
        if hit is not None and hit[0] <= t + grace and hit[1] + grace >= t:
            return True
        i = bisect.bisect_right(self.starts, t + grace)
        floor = t - grace - self.longest
        while i > 0:
            i -= 1
            period = self.periods[i]
            if period[0] < floor:
                return False
            if period[1] + grace >= t:
                self.last_hit = period
                return True
        return False

    def duty_seconds(self, lo: float, hi: float) -> float:
        """Rostered time within [lo, hi), overlapping periods counted once."""
        total, reach = 0.0, lo
        i = max(0, bisect.bisect_left(self.starts, lo - self.longest))
        for start, end, _ in self.periods[i:]:
            if start >= hi:
                break
            start, end = max(start, reach), min(end, hi)
            if end > start:
                total += end - start
                reach = end
        return total

    def nearest_gap(self, t: float) -> float | None:
        """Seconds from ``t`` to the nearest duty edge, for a readable reason."""
        if not self.periods:
            return None
        return min(min(abs(t - s), abs(t - e)) for s, e, _ in self.periods)


class ReferenceData:
    """The force's reference data with indexed lookups; mutable, one writer.

    ``begin_load`` … ``freeze`` brackets a bulk read (a whole topic from its
    start, or the files): rows are only appended, and the indexes are built
    once at the end.  Outside it every change is applied and indexed at once.
    """

    def __init__(self) -> None:
        self.tables = {
            "staff": Table({"surname_key": "i8", "postcode_key": "i8", "person_key": "i8",
                            "last_active": "f8"}, payload=True),
            "subject": Table({"type": "u1", "surname_key": "i8", "postcode_key": "i8",
                              "area": "i4", "flags": "i4"}),
            "case": Table({"open": "u1", "opened": "f8", "closed": "f8"}, payload=True),
            "duty": Table({"user_key": "i8", "start": "f8", "end": "f8"}, payload=True),
        }
        self.areas, self.flagsets = Pool(), Pool([frozenset()])
        self._area_counts: Counter[int] = Counter()
        self._by_person, self._by_subject, self._by_user = Lookup(), Lookup(), Lookup()
        # (subject key, row) of each case read while loading: 16 bytes a pair, no object
        self._case_pairs = (array("q"), array("q"))
        self.staff: RecordView[Staff] = RecordView(self.tables["staff"], self._staff_at,
                                                   CACHE["staff"])
        self.subjects: RecordView[Subject] = RecordView(self.tables["subject"],
                                                        self._subject_at, CACHE["subject"])
        self.cases: RecordView[CaseInfo] = RecordView(self.tables["case"], self._case_at,
                                                      CACHE["case"])
        self._rosters = _Cache(self._build_roster, CACHE["roster"])
        # Whose own person record each is: asked of nearly every event, and nearly
        # always "no one", so held whole (members are few beside subjects: about
        # 150 bytes a member with a person record) and kept in step with staff.
        self._owners: dict[str, str] = {}
        # The two lookups asked of every event, at the speed of a dict.
        self.roster: Callable[[str], Roster | None] = self._rosters.__getitem__
        self.staff_person_owner: Callable[[str], str | None] = self._owners.get

    # ---- records from rows -------------------------------------------------
    def _staff_at(self, row: int, key: str) -> Staff:
        t = self.tables["staff"]
        mv = t.mv
        person, role, unit, area, status = _staff_payload.decode(t.payload_at(row))
        last = mv["last_active"][row]
        return Staff(key, mv["surname_key"][row], mv["postcode_key"][row], person, role, unit,
                     area, status, None if math.isnan(last) else last, f"{role}/{unit}")

    def _subject_at(self, row: int, key: str) -> Subject:
        mv = self.tables["subject"].mv
        area = mv["area"][row]
        return Subject(key, SUBJECT_TYPES[mv["type"][row]], mv["surname_key"][row],
                       mv["postcode_key"][row], self.areas.values[area] if area >= 0 else None,
                       self.flagsets.values[mv["flags"][row]])

    def _case_at(self, row: int, key: str) -> CaseInfo:
        t = self.tables["case"]
        mv = t.mv
        area, assigned, subjects = _case_payload.decode(t.payload_at(row))
        opened, closed = mv["opened"][row], mv["closed"][row]
        # Areas and members recur across cases: one string each, not one a case.
        return CaseInfo(key, "open" if mv["open"][row] else "closed",
                        tuple(map(intern, assigned)), subjects,
                        None if math.isnan(opened) else opened,
                        None if math.isnan(closed) else closed,
                        intern(area) if area is not None else None)

    # ---- lookups -------------------------------------------------------------
    def _own_record(self, person_id: str) -> None:
        """Set ``staff_person_owner(person_id)`` afresh from the staff table: the
        first by user_id of the members whose own person record it is, if any."""
        t = self.tables["staff"]
        users = []
        for row in self._by_person.candidates(_fp(person_id)):
            if t.mv["alive"][row] and _staff_payload.decode(t.payload_at(row))[0] == person_id:
                users.append(t.id_at(row))
        if users:
            self._owners[person_id] = min(users)
        else:
            self._owners.pop(person_id, None)

    def _own_records(self) -> None:
        """Every member's own person record, afresh (after a bulk read or a restore)."""
        t = self.tables["staff"]
        owners: dict[str, str] = {}
        for row in self._by_person.rows.tolist():
            if t.mv["alive"][row]:
                person = _staff_payload.decode(t.payload_at(row))[0]
                user = t.id_at(row)
                if person is not None and (person not in owners or user < owners[person]):
                    owners[person] = user
        self._owners.clear()
        self._owners.update(owners)

    def cases_listing(self, subject_id: str) -> set[str]:
        """The case refs of the cases that list ``subject_id``."""
        t = self.tables["case"]
        key = _fp(subject_id)
        out = set()
        for row in self._by_subject.candidates(key):
            if t.mv["alive"][row]:
                ref = t.id_at(row)
                case = self.cases.get(ref)
                if case is not None and subject_id in case.subjects:
                    out.add(ref)
        return out

    def _build_roster(self, user_id: str) -> Roster | None:
        """``roster``: the member's duty periods, or None when the roster has none for them."""
        t = self.tables["duty"]
        mv, data = t.mv, user_id.encode("utf-8", "surrogatepass")
        roster = Roster()
        for row in self._by_user.candidates(fingerprint(data)):
            if mv["alive"][row] and t.payload_at(row) == data:
                roster.add(mv["start"][row], mv["end"][row], t.id_at(row))
        return roster if roster.periods else None

    def is_area(self, area: str) -> bool:
        """True when some subject lives in ``area``: a member whose area is not
        one (``Force HQ``, ``Force-wide``) serves the whole force."""
        code = self.areas.codes.get(area)
        return code is not None and self._area_counts.get(code, 0) > 0

    def sizes(self) -> dict[str, int]:
        """Records held of each kind (while loading: rows read so far)."""
        return {kind: t.n if t.loading else t.live for kind, t in self.tables.items()}

    # ---- updates -------------------------------------------------------------
    def begin_load(self) -> None:
        """Append only from now until ``freeze``: a whole topic or file is coming."""
        for t in self.tables.values():
            if t.n == 0:
                t.loading = True

    def apply(self, kind: str, key: str, record: Any | None) -> None:
        """Upsert ``record`` under ``key``, or delete ``key`` when it is None."""
        t = self.tables[kind]
        if t.loading:
            if record is None:
                t.append(key, (), alive=False)
            else:
                self.load_many(kind, [key], [record])
            return
        row = t.find(key)
        was_own = None  # the member's own person record until now
        if kind == "subject" and row >= 0 and t.mv["alive"][row]:
            self._area_counts[t.mv["area"][row]] -= 1
        elif kind == "duty" and row >= 0 and t.mv["alive"][row]:
            self._rosters.pop(t.payload_at(row).decode("utf-8", "surrogatepass"), None)
        elif kind == "staff" and row >= 0 and t.mv["alive"][row]:
            was_own = _staff_payload.decode(t.payload_at(row))[0]
        if record is None:
            if row >= 0:
                t.write(row, (), alive=False)
        else:
            values, payload = self._row(kind, record)
            if row >= 0:
                t.write(row, values, payload)
            else:
                row = t.append(key, values, payload)
            self._index(kind, row, record)
        self._forget(kind, key, record)
        if kind == "staff":
            now_own = (record.person_id or None) if record is not None else None
            for person in {was_own, now_own}:
                if person is not None:
                    self._own_record(person)
        if t.wants_freeze():
            self._freeze(kind)

    def load_many(self, kind: str, keys: list[str], records: list[Any]) -> None:
        """``apply(kind, key, record)`` for each pair in order, all upserts; while
        loading, the whole run at once (a cold read's records, thousands at a time)."""
        t = self.tables[kind]
        if not t.loading:
            for key, record in zip(keys, records, strict=True):
                self.apply(kind, key, record)
            return
        if kind == "subject":  # most of the records, with no payload: their values alone
            t.stage_many(keys, [self._subject_values(r) for r in records])
            return
        rows, payloads = zip(*[self._row(kind, r) for r in records], strict=True) \
            if records else ((), ())
        first = t.stage_many(keys, list(rows), list(payloads) if t.payload else None)
        if kind == "case":  # its subjects, for the index built at ``freeze``
            pair_keys, pair_rows = self._case_pairs
            for i, r in enumerate(records, first):
                for sid in r.subject_ids:  # a repeat costs a pair, no more
                    pair_keys.append(_fp(sid))
                    pair_rows.append(i)

    def _row(self, kind: str, rec: Any) -> tuple[tuple[Any, ...], bytes]:
        """A record's column values (in its table's order) and payload."""
        if kind == "subject":
            return self._subject_values(rec), b""
        if kind == "staff":
            person = rec.person_id or None
            return (_surname_key(rec.surname), _postcode_key(rec.home_postcode),
                    _fp(person) if person else 0,
                    parse_ts_recent(rec.last_active) if rec.last_active else math.nan,
                    ), _encode((person, rec.role, rec.unit, rec.area, rec.status))
        if kind == "case":
            return (rec.status == "open",
                    parse_ts_recent(rec.opened_at) if rec.opened_at else math.nan,
                    parse_ts_recent(rec.closed_at) if rec.closed_at else math.nan,
                    ), _encode((rec.area, rec.assigned_users, rec.subject_ids))
        user = rec.user_id.encode("utf-8", "surrogatepass")
        return (fingerprint(user), parse_ts_recent(rec.start), parse_ts_recent(rec.end)), user

    def _subject_values(self, rec: Any) -> tuple[Any, ...]:
        area, flags = rec.area, rec.flags
        return (_TYPE_CODES[rec.subject_type], _surname_key(rec.surname),
                _postcode_key(rec.postcode), self.areas.code(area) if area else -1,
                self.flagsets.code(frozenset(f.strip().casefold() for f in flags))
                if flags else 0)  # the empty set is code 0 (see ``__init__``)

    def _index(self, kind: str, row: int, rec: Any) -> None:
        """Keep the secondary indexes in step with one row just written."""
        t = self.tables[kind]
        if kind == "subject":
            self._area_counts[t.mv["area"][row]] += 1
        elif kind == "staff":
            self._by_person.add(t.mv["person_key"][row], row)
        elif kind == "case":
            for sid in set(rec.subject_ids):
                self._by_subject.add(_fp(sid), row)
        elif kind == "duty":
            self._by_user.add(t.mv["user_key"][row], row)

    def _forget(self, kind: str, key: str, rec: Any | None) -> None:
        if kind == "staff":
            self.staff.forget(key)
        elif kind == "subject":
            self.subjects.forget(key)
        elif kind == "case":
            self.cases.forget(key)
        elif rec is not None:
            self._rosters.pop(rec.user_id, None)

    def freeze(self) -> None:
        """End a bulk read (or fold every table's tail): build the indexes."""
        for kind in self.tables:
            self._freeze(kind)
        for memo in _MEMOS:  # they pay during a bulk read; held after, they are only memory
            memo.clear()

    def _freeze(self, kind: str) -> None:
        t = self.tables[kind]
        lookup = {"staff": self._by_person, "case": self._by_subject,
                  "duty": self._by_user}.get(kind)
        if t.n == t.base_n == t.live and not t.loading and not (lookup and lookup.added):
            return  # nothing to fold: no new rows, none dead, no index added to
        old_n = t.n
        keep = t.freeze()
        n = t.n
        if kind == "subject":
            self._count_areas()
            self.subjects.cache.clear()
        elif kind == "staff":
            keys = t.cols["person_key"][:n]
            rows = np.flatnonzero(keys)
            self._by_person.build(keys[rows], rows)
            self.staff.build_all()
            self._own_records()
        elif kind == "case":
            old_to_new = np.full(old_n, -1, np.int64)
            old_to_new[keep] = np.arange(n)
            pair_keys, pair_rows = self._case_pairs
            self._by_subject.remap(old_to_new, np.frombuffer(pair_keys, np.int64),
                                   np.frombuffer(pair_rows, np.int64))
            self._case_pairs = (array("q"), array("q"))
            self.cases.cache.clear()
        else:
            self._by_user.build(t.cols["user_key"][:n], np.arange(n))
            self._rosters.clear()

    def _count_areas(self) -> None:
        """Subjects alive in each area, counted afresh from the column."""
        t = self.tables["subject"]
        areas = t.cols["area"][:t.n]
        live = areas[(t.cols["alive"][:t.n] == 1) & (areas >= 0)]
        self._area_counts = Counter({i: int(c) for i, c in enumerate(np.bincount(live)) if c})

    # ---- snapshots -----------------------------------------------------------
    LOOKUPS = ("by_person", "by_subject", "by_user")

    def save(self, directory: Path, meta: dict[str, Any]) -> int:
        """Write everything to ``directory`` (replaced whole, atomically); its size in bytes.

        ``meta`` (the topic offsets this state reflects, and what it was read
        from) is kept in the manifest for ``load`` to hand back.  Surnames and
        postcodes are only keys, so none is written.
        """
        self.freeze()
        return self.save_frozen(directory, meta)

    def save_frozen(self, directory: Path, meta: dict[str, Any]) -> int:
        """``save`` after ``freeze``: only reads the tables, so it can run in a thread
        while nothing changes them."""
        work = directory.with_name(f"{directory.name}.new-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        tables = {kind: t.save(work, kind) for kind, t in self.tables.items()}
        lookups = {name: getattr(self, f"_{name}").save(work, name) for name in self.LOOKUPS}
        files = sorted(p.name for p in work.iterdir())
        manifest = {"format": SNAPSHOT_FORMAT, "meta": meta, "tables": tables,
                    "lookups": lookups, "areas": self.areas.values,
                    "flagsets": [sorted(f) for f in self.flagsets.values],
                    "checksums": {name: _crc(work / name) for name in files}}
        (work / "manifest.json").write_text(json.dumps(manifest))
        old = directory.with_name(f"{directory.name}.old-{os.getpid()}")
        if directory.exists():
            directory.rename(old)
        work.rename(directory)
        shutil.rmtree(old, ignore_errors=True)
        return sum(p.stat().st_size for p in directory.iterdir())

    def restore(self, directory: Path) -> dict[str, Any]:
        """Take the state ``save`` wrote (this one must be empty); its ``meta``.

        The fingerprints, ids and secondary indexes are memory-mapped, shared
        by every worker on the host.  ``SnapshotError`` says in one line why a
        snapshot cannot be used (missing, foreign, corrupt); this one is then
        left empty.
        """
        try:
            return self._restore(directory)
        except SnapshotError:
            self.clear()
            raise

    def _restore(self, directory: Path) -> dict[str, Any]:
        manifest = _manifest(directory)
        try:
            _verify(directory, manifest, manifest["checksums"])
            for kind, t in self.tables.items():
                t.load(directory, manifest["tables"][kind])
            for name in self.LOOKUPS:
                getattr(self, f"_{name}").load(directory, manifest["lookups"][name])
            self.areas, self.flagsets = _pools(manifest)
        except SnapshotError:
            raise
        except (KeyError, TypeError, ValueError, OSError) as e:
            raise SnapshotError(f"{directory}: does not match this version "
                                f"({type(e).__name__}: {e})") from None
        self._count_areas()
        self._own_records()
        self.staff.build_all()
        meta: dict[str, Any] = manifest["meta"]
        return meta

    def take_subjects(self, directory: Path) -> dict[str, Any]:
        """The subjects from a ``save`` of another ``ReferenceData``, in place of this
        one's, which must have none yet; the saved ``meta``.

        A cold read reads the subjects in a second process (``streams/reference_part``),
        which writes them so.  Subjects have no index beside their table, and their
        areas and flag sets are theirs alone, so they move whole.  ``SnapshotError``
        says why they cannot be taken; nothing is changed then, unless the failure
        comes while reading in files already verified."""
        t = self.tables["subject"]
        assert t.n == 0, "subjects are taken into an empty table"
        manifest = _manifest(directory)
        try:
            entry = manifest["tables"]["subject"]
            _verify(directory, manifest, entry["files"].values())
            pools = _pools(manifest)
            t.load(directory, entry)
        except SnapshotError:
            raise
        except (KeyError, TypeError, ValueError, OSError, AttributeError) as e:
            raise SnapshotError(f"{directory}: its subjects cannot be taken "
                                f"({type(e).__name__}: {e})") from None
        self.areas, self.flagsets = pools
        self._count_areas()
        self.subjects.cache.clear()
        meta: dict[str, Any] = manifest["meta"]
        return meta

    def clear(self) -> None:
        """Empty again, as new."""
        self.__init__()  # type: ignore[misc]


class _KeyMemo(dict[str | None, int]):
    """``key_of(normalise(text))`` by the text as given: surnames and postcodes repeat,
    and a key costs about a microsecond.  Emptied when full: in a cold read most
    postcodes are new, and ``_Cache``'s keeping of the newer half costs more than it
    saves (measured: the cold read about 5% slower)."""

    def __init__(self, normalise: Callable[[str | None], str | None], size: int) -> None:
        super().__init__()
        self.normalise, self.size = normalise, size

    def __missing__(self, text: str | None) -> int:
        if len(self) >= self.size:
            self.clear()
        key = self[text] = key_of(self.normalise(text))
        return key


_MEMOS = (_KeyMemo(normalise_surname, 65_536), _KeyMemo(normalise_postcode, 8_192))
_surname_key, _postcode_key = (memo.__getitem__ for memo in _MEMOS)


def _fp(text: str) -> int:
    """``fingerprint`` of an id given as text."""
    return fingerprint(text.encode("utf-8", "surrogatepass"))


class SnapshotError(Exception):
    """A snapshot that cannot be used; its message is one line for the log."""


def _manifest(directory: Path) -> dict[str, Any]:
    """A snapshot's manifest, read and of this format, or ``SnapshotError`` saying why."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except FileNotFoundError:
        raise SnapshotError(f"{directory}: no snapshot") from None
    except (OSError, ValueError) as e:
        raise SnapshotError(f"{directory}/manifest.json: unreadable ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"{directory}: not a snapshot of this format "
                            f"({SNAPSHOT_FORMAT})")
    return manifest


def _verify(directory: Path, manifest: dict[str, Any], names: Iterable[str]) -> None:
    """Each named file there, its checksum the manifest's; else ``SnapshotError``."""
    for name in names:
        path = directory / name
        if not path.is_file() or _crc(path) != manifest["checksums"][name]:
            raise SnapshotError(f"{path}: missing or corrupt (checksum does not match)")


def _pools(manifest: dict[str, Any]) -> tuple[Pool, Pool]:
    """The subjects' areas and flag sets, as ``save`` wrote them."""
    return Pool(manifest["areas"]), Pool([frozenset(f) for f in manifest["flagsets"]])


def _crc(path: Path) -> int:
    crc = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


def read_jsonl(path: Path, kind: str) -> Iterator[tuple[int, Any | InvalidRecord]]:
    """(line number, record or the reason it was refused) for each line."""
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, decode_reference(kind, line)
            except InvalidRecord as e:
                yield n, e


def load_reference_dir(directory: Path) -> tuple[ReferenceData, list[str]]:
    """Load the four reference files named in the contract README.

    Returns the data and a list of problems (``staff.jsonl:12: surname: missing``);
    a bad line is reported, never fatal.  A missing file means none of that kind.
    """
    ref, problems = ReferenceData(), []
    ref.begin_load()
    for kind, name in FILES.items():
        path = directory / name
        if not path.exists():
            problems.append(f"{name}: not found; no {kind} records loaded")
            continue
        key_field = KEY_FIELDS[kind]
        keys: list[str] = []
        records: list[Any] = []
        for n, rec in read_jsonl(path, kind):
            if isinstance(rec, InvalidRecord):
                problems.append(f"{name}:{n}: {rec.reason}")
                continue
            keys.append(getattr(rec, key_field))
            records.append(rec)
            if len(records) >= LOAD_RUN:
                ref.load_many(kind, keys, records)
                keys, records = [], []
        ref.load_many(kind, keys, records)
    ref.freeze()
    return ref, problems


def require_reference(directory: Path, option: str, *, every_file: bool,
                      allow_empty: bool) -> None:
    """Refuse a reference directory that cannot be what was meant, saying which files lack.

    ``every_file``: the detection needs all four files and some staff (without
    them every member is unknown and every query alerts); otherwise one file
    with one record will do.  ``allow_empty`` accepts whatever is there.
    """
    if allow_empty:
        return
    names = list(FILES.values())
    present = [name for name in names if (directory / name).is_file()]
    missing = [name for name in names if name not in present]
    hint = "give the directory `accesswatch generate` wrote, or --allow-empty"
    if not present:
        raise UsageError(f"{option} {directory}: holds none of {', '.join(names)} ({hint})")
    if every_file and missing:
        raise UsageError(f"{option} {directory}: {', '.join(missing)} missing ({hint})")
    empty = [name for name in present if not _holds_a_record(directory / name)]
    if len(empty) == len(present):
        raise UsageError(f"{option} {directory}: {', '.join(empty)} hold no records ({hint})")
    if every_file and FILES["staff"] in empty:
        raise UsageError(f"{option} {directory}: {FILES['staff']} holds no records, so every "
                         f"member would be unknown ({hint})")


def _holds_a_record(path: Path) -> bool:
    with path.open("rb") as f:
        return any(line.strip() for line in f)
