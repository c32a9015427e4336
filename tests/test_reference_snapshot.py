"""Compact reference tables: a bulk load, live changes after it, and snapshots.

Every lookup the rules use must answer the same from a bulk load, from the
same records applied one by one, and from a snapshot mapped back in; a
snapshot that is corrupt or of another format is refused in one line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from accesswatch.contract.reference import Case, DutyPeriod
from accesswatch.contract.timestamps import format_ts
from accesswatch.reference import ReferenceData, SnapshotError
from accesswatch.refstore import Directory, Lookup, Table, fingerprint, key_of
from tests.core.force import HOUR, T0, build_force, person, staff

IDS = ("u1", "u2", "hq1", "nobody")
SUBJECTS = ("P-U1", "P-FAM", "P-NB", "P-U2", "P-STAFF", "P-VIP", "P-VIC", "P-X", "missing")


def answers(ref: ReferenceData) -> dict[str, object]:
    """What the rules can ask, for a fixed set of ids."""
    out: dict[str, object] = {"sizes": ref.sizes()}
    for uid in IDS:
        roster = ref.roster(uid)
        out[f"staff:{uid}"] = ref.staff.get(uid)
        out[f"roster:{uid}"] = roster and (roster.periods, roster.covers(T0 + HOUR, 0))
    for sid in SUBJECTS:
        out[f"subject:{sid}"] = ref.subjects.get(sid)
        out[f"owner:{sid}"] = ref.staff_person_owner(sid)
        out[f"cases:{sid}"] = ref.cases_listing(sid)
    out["areas"] = [ref.is_area(a) for a in ("North", "South", "Force HQ")]
    out["all_subjects"] = sorted(ref.subjects)
    return out


def bulk(one_by_one: ReferenceData, runs: bool = False) -> ReferenceData:
    """The same records through a bulk load (append only, indexed once at the end);
    with ``runs``, each run of upserts of one kind handed over at once (``load_many``),
    as a cold read does."""
    records = _records()
    ref = ReferenceData()
    ref.begin_load()
    if not runs:
        for kind, key, rec in records:
            ref.apply(kind, key, rec)
    else:
        i = 0
        while i < len(records):
            kind, key, rec = records[i]
            if rec is None:
                ref.apply(kind, key, None)
                i += 1
                continue
            j = i
            while j < len(records) and records[j][0] == kind and records[j][2] is not None:
                j += 1
            ref.load_many(kind, [k for _, k, _ in records[i:j]],
                          [r for _, _, r in records[i:j]])
            i = j
    ref.freeze()
    return ref


def _records() -> list[tuple[str, str, object]]:
    out: list[tuple[str, str, object]] = []

    class Spy(ReferenceData):
        def apply(self, kind: str, key: str, record: object) -> None:
            out.append((kind, key, record))
            super().apply(kind, key, record)

    import tests.core.force as force

    real = force.ReferenceData
    force.ReferenceData = Spy  # type: ignore[misc]
    try:
        build_force()
    finally:
        force.ReferenceData = real  # type: ignore[misc]
    return out


@pytest.mark.parametrize("runs", [False, True], ids=["apply", "load_many"])
def test_bulk_load_answers_as_records_applied_one_by_one(runs: bool) -> None:
    live = build_force()
    assert answers(bulk(live, runs)) == answers(live)


def test_a_bulk_load_keeps_each_ids_last_record_and_drops_tombstones() -> None:
    ref = ReferenceData()
    ref.begin_load()
    ref.apply("subject", "P1", person("P1", "Old", "LS1 1AA"))
    ref.apply("subject", "P2", person("P2", "Gone", "LS1 1AA"))
    ref.apply("subject", "P1", person("P1", "New", "LS2 2BB"))
    ref.apply("subject", "P2", None)
    ref.freeze()
    assert ref.sizes()["subject"] == 1 and "P2" not in ref.subjects
    assert ref.subjects["P1"] == ReferenceData._subject_at(ref, ref.tables["subject"].find("P1"),
                                                            "P1")
    fresh = ReferenceData()
    fresh.apply("subject", "P1", person("P1", "New", "LS2 2BB"))
    assert ref.subjects["P1"] == fresh.subjects["P1"]


def test_snapshot_round_trip_then_live_changes(tmp_path: Path) -> None:
    ref = build_force()
    ref.save(tmp_path / "snap", {"offsets": {"ref.staff:0": 7}})
    back = ReferenceData()
    assert back.restore(tmp_path / "snap") == {"offsets": {"ref.staff:0": 7}}
    assert answers(back) == answers(ref)
    # Changes after the restore apply in place, to mapped rows and new ones alike.
    for r in (ref, back):
        r.apply("subject", "P-NB", person("P-NB", "Smith", "LS1 4AP"))  # now family
        r.apply("subject", "P-NEW", person("P-NEW", "Zed", "LS9 9ZZ", flags=["vip"]))
        r.apply("staff", "u2", None)
        r.apply("case", "C-OPEN", Case(case_ref="C-OPEN", status="open",
                                       assigned_users=["u1"], subject_ids=["P-NEW"]))
        r.apply("duty", "OT-1", DutyPeriod(duty_id="OT-1", user_id="u1",
                                           start=format_ts(T0 - 2 * HOUR),
                                           end=format_ts(T0 + 14 * HOUR)))
        r.apply("staff", "u9", staff("u9", "New", "LS9 9ZZ", person_id="P-NEW"))
    assert answers(back) == answers(ref)
    assert back.staff_person_owner("P-NEW") == "u9" and back.cases_listing("P-VIC") == {"C-OTHER"}
    # And a second snapshot of the changed state reads back the same again.
    back.save(tmp_path / "snap", {"n": 2})
    again = ReferenceData()
    assert again.restore(tmp_path / "snap") == {"n": 2}
    assert answers(again) == answers(ref)


def test_snapshot_holds_no_surname_or_postcode(tmp_path: Path) -> None:
    build_force().save(tmp_path / "snap", {})
    blob = b"".join(p.read_bytes() for p in (tmp_path / "snap").iterdir())
    for text in (b"Smith", b"smith", b"LS14AP", b"LS1 4AP", b"Patel"):
        assert text not in blob


@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest", "format", "missing"])
def test_a_damaged_snapshot_is_refused_in_one_line(tmp_path: Path, damage: str) -> None:
    snap = tmp_path / "snap"
    build_force().save(snap, {})
    target = snap / "subject.fp.npy"
    if damage == "flip":
        data = bytearray(target.read_bytes())
        data[-3] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-8])
    elif damage == "manifest":
        (snap / "manifest.json").write_text("{not json")
    elif damage == "format":
        text = (snap / "manifest.json").read_text()
        (snap / "manifest.json").write_text(text.replace("reference-snapshot/1",
                                                         "reference-snapshot/0"))
    else:
        target.unlink()
    ref = ReferenceData()
    with pytest.raises(SnapshotError) as e:
        ref.restore(snap)
    assert "\n" not in str(e.value) and str(snap) in str(e.value)
    assert ref.sizes() == {"staff": 0, "subject": 0, "case": 0, "duty": 0}  # left empty


def test_a_table_folds_its_tail_and_finds_every_id() -> None:
    t = Table({"v": "i8"})
    for i in range(3000):
        t.append(f"id-{i}", (i,))
    t.freeze()
    for i in range(0, 3000, 2):  # updates in place, tombstones, and new ids after
        t.write(t.find(f"id-{i}"), (-i,))
    t.write(t.find("id-1"), (), alive=False)
    t.append("late", (99,))
    assert t.live == 3000 and t.row_alive("id-1") == -1
    t.freeze()
    assert t.n == t.live == 3000 and t.find("id-1") == -1
    assert all(t.cols["v"][t.find(f"id-{i}")] == (-i if i % 2 == 0 else i)
               for i in range(2, 3000))
    assert t.cols["v"][t.find("late")] == 99 and t.find("never") == -1


def test_the_directory_finds_ids_that_share_a_bucket() -> None:
    t = Table({"v": "i8"})
    ids = [f"S-{i}" for i in range(20_000)]
    for i, key in enumerate(ids):
        t.append(key, (i,))
    t.freeze()
    bounds = np.frombuffer(t.directory.mv, t.directory.mv.format)
    assert np.diff(bounds).max() >= 4 and bounds[-1] == t.n  # buckets of several rows
    assert all(t.cols["v"][t.find(key)] == i for i, key in enumerate(ids))
    assert t.find("absent") == -1 and t.find("") == -1
    index = Lookup()
    keys = np.array([fingerprint(k.encode()) for k in ids], np.int64)
    index.build(np.concatenate([keys, keys[:10]]), np.arange(len(ids) + 10) % len(ids))
    assert all(index.candidates(int(keys[i])) == [i] for i in range(10, len(ids), 7))
    assert index.candidates(int(keys[3])) == [3, 3]
    assert index.candidates(fingerprint(b"absent")) == []


def test_a_person_record_shared_by_two_members_belongs_to_the_first_by_id() -> None:
    # A bad HR feed can give two members one person record: the answer must not
    # depend on the order the records came in, live or in bulk.
    records = [("staff", "u9", staff("u9", "Shaw", "LS1 1AA", person_id="P-SHARED")),
               ("staff", "u3", staff("u3", "Shaw", "LS1 1AA", person_id="P-SHARED"))]
    for order in (records, records[::-1]):
        live, loaded = build_force(), ReferenceData()
        loaded.begin_load()
        for kind, key, rec in order:
            live.apply(kind, key, rec)
            loaded.apply(kind, key, rec)
        loaded.freeze()
        assert live.staff_person_owner("P-SHARED") == loaded.staff_person_owner("P-SHARED") == "u3"
        live.apply("staff", "u3", staff("u3", "Shaw", "LS1 1AA", person_id="P-OWN"))
        assert live.staff_person_owner("P-SHARED") == "u9"
        assert live.staff_person_owner("P-OWN") == "u3"
        live.apply("staff", "u9", None)
        assert live.staff_person_owner("P-SHARED") is None


def test_ids_sharing_a_fingerprint_are_told_apart_by_their_bytes() -> None:
    # Two 64-bit fingerprints alike are rare but possible: the id itself decides.
    t = Table({"v": "i8"})
    t.append("a", (1,))
    t.append("b", (2,))
    t.freeze()
    row_a = t.find("a")
    t.cols["fp"][: t.n] = fingerprint(b"a")  # "b" now carries "a"'s fingerprint
    t.directory = Directory(t.cols["fp"][: t.n])
    assert t.find("a") == row_a and t.cols["v"][row_a] == 1
    assert t.find("b") == -1  # its own fingerprint is nowhere now


def test_members_are_built_up_front_and_subjects_on_first_sight(tmp_path: Path) -> None:
    ref = ReferenceData()
    ref.begin_load()
    for uid in ("u1", "u2", "u3"):
        ref.apply("staff", uid, staff(uid, "Smith", "LS1 4AP"))
    for sid in ("P-1", "P-2"):
        ref.apply("subject", sid, person(sid, "Jones", "LS2 7XX"))
    ref.freeze()
    assert set(ref.staff.cache) == {"u1", "u2", "u3"}  # every member, built at the fold
    assert not ref.subjects.cache and not ref.cases.cache
    assert ref.subjects.get("P-2") is not None and set(ref.subjects.cache) == {"P-2"}
    ref.apply("staff", "u9", staff("u9", "Ward", None))
    assert "u9" not in ref.staff.cache and ref.staff.get("u9").user_id == "u9"  # on sight
    ref.save(tmp_path / "snap", {})
    again = ReferenceData()
    again.restore(tmp_path / "snap")
    assert set(again.staff.cache) == {"u1", "u2", "u3", "u9"} and not again.subjects.cache


@pytest.mark.parametrize("repeats", [1, 2])
def test_a_bulk_load_keeps_its_id_bytes_as_read_unless_many_were_dropped(
        tmp_path: Path, repeats: int) -> None:
    """Freezing a cold read moves no id bytes when nearly all are kept; when many rows
    were dropped (each id here read twice), the blob holds only the bytes still used."""
    t = Table({"v": "i8"}, payload=True)
    t.loading = True
    ids = [f"id-{i}" for i in range(5000)]
    for r in range(repeats):
        t.stage_many(ids, [(i * 10 + r,) for i in range(len(ids))],
                     [f"p{i}.{r}".encode() for i in range(len(ids))])
    t.freeze()
    assert len(t.ids) == sum(len(k) for k in ids)  # nothing unused either way
    assert isinstance(t.ids.base, bytearray) == (repeats == 1)  # the bytes as staged
    back = Table({"v": "i8"}, payload=True)
    back.load(tmp_path, t.save(tmp_path, "t"))
    for table in (t, back):
        assert all(table.id_at(table.find(k)) == k for k in ids)
        assert all(table.payload_at(table.find(k)) == f"p{i}.{repeats - 1}".encode()
                   and table.cols["v"][table.find(k)] == i * 10 + repeats - 1
                   for i, k in enumerate(ids))


def test_key_of_is_the_keyed_blake2b_of_the_text() -> None:
    """Keys go into snapshots: however it is computed, it is this hash."""
    for text in ("smith", "LS14AP", "o'brien-ßmith", "\udcff", "x" * 200):
        direct = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8,
                                 person=b"aw-ref-key").digest()
        assert key_of(text) == (int.from_bytes(direct, "little", signed=True) or 1)
    assert key_of("") == key_of(None) == 0
