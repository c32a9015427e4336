"""``generate --reference-only``: national-scale reference files, streamed."""

from __future__ import annotations

import json
import pathlib
import tracemalloc
from collections import Counter
from typing import Any

import pytest

from accesswatch.cli import main
from accesswatch.contract.reference import (
    decode_reference,
    normalise_postcode,
    normalise_surname,
)
from accesswatch.generate import national_cases, national_subjects, reference_only
from accesswatch.generate.reference_only import generate_reference

FILES = {
    "staff": "staff.jsonl",
    "subject": "subjects.jsonl",
    "case": "cases.jsonl",
    "duty": "duties.jsonl",
}
COUNT_KEYS = {"staff": "staff", "subject": "subjects", "case": "cases", "duty": "duties"}
SMALL: dict[str, Any] = {"staff": 300, "subjects": 20_000, "seed": 1, "id_prefix": "N-"}


class Padding:
    def __init__(self, out: pathlib.Path, counts: dict[str, int]) -> None:
        self.out, self.counts = out, counts
        self.records: dict[str, list[Any]] = {}
        for kind, name in FILES.items():
            with (out / name).open("rb") as fh:
                self.records[kind] = [decode_reference(kind, line.rstrip(b"\n")) for line in fh]


@pytest.fixture(scope="module")
def padding(tmp_path_factory: pytest.TempPathFactory) -> Padding:
    out = tmp_path_factory.mktemp("padding")
    return Padding(out, generate_reference(out, **SMALL))


def test_every_line_decodes_and_the_counts_are_as_asked(padding: Padding) -> None:
    for kind, records in padding.records.items():
        assert len(records) == padding.counts[COUNT_KEYS[kind]], kind
    assert padding.counts["staff"] == SMALL["staff"]
    assert padding.counts["subjects"] == SMALL["subjects"]
    # As the full generator makes: ~26 cases a member over 14 days, duties most days.
    assert 15 * SMALL["staff"] < padding.counts["cases"] < 40 * SMALL["staff"]
    assert 0.3 * 14 * SMALL["staff"] < padding.counts["duties"] < 0.9 * 14 * SMALL["staff"]


@pytest.mark.parametrize(
    ("kind", "key"),
    [("staff", "user_id"), ("subject", "subject_id"), ("case", "case_ref"), ("duty", "duty_id")],
)
def test_ids_are_unique_and_prefixed(padding: Padding, kind: str, key: str) -> None:
    ids = [getattr(r, key) for r in padding.records[kind]]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("N-") for i in ids)


def test_everything_named_exists_in_the_padding(padding: Padding) -> None:
    staff = {m.user_id: m for m in padding.records["staff"]}
    subjects = {s.subject_id: s for s in padding.records["subject"]}
    for case in padding.records["case"]:
        assert 1 <= len(case.assigned_users) <= 6, case.case_ref
        assert set(case.assigned_users) <= staff.keys(), case.case_ref
        assert set(case.subject_ids) <= subjects.keys(), case.case_ref
        assert len(set(case.subject_ids)) == len(case.subject_ids), case.case_ref
    assert {d.user_id for d in padding.records["duty"]} <= staff.keys()


def test_some_staff_have_their_own_record_and_share_postcodes(padding: Padding) -> None:
    subjects = {s.subject_id: s for s in padding.records["subject"]}
    owners = [m for m in padding.records["staff"] if m.person_id is not None]
    assert 0.05 * SMALL["staff"] < len(owners) < 0.15 * SMALL["staff"]
    for m in owners:
        own = subjects[m.person_id]
        assert own.subject_type == "person"
        assert normalise_surname(own.surname) == normalise_surname(m.surname)
        assert normalise_postcode(own.postcode) == normalise_postcode(m.home_postcode)
    homes = {
        normalise_postcode(s.postcode) for s in subjects.values() if s.subject_type == "person"
    }
    sharing = [m for m in padding.records["staff"] if normalise_postcode(m.home_postcode) in homes]
    assert len(sharing) > 0.2 * SMALL["staff"]


def test_variety_like_the_full_generator(padding: Padding) -> None:
    kinds = Counter(s.subject_type for s in padding.records["subject"])
    assert kinds["person"] / SMALL["subjects"] == pytest.approx(0.62, abs=0.01)
    assert set(kinds) == {"person", "vehicle", "address", "incident", "other"}
    flagged = sum(bool(s.flags) for s in padding.records["subject"]) / SMALL["subjects"]
    assert 0.05 < flagged < 0.15
    staff = padding.records["staff"]
    assert len({m.unit for m in staff}) >= 9
    assert len({m.area for m in staff}) == 8  # seven areas and HQ
    assert {m.status for m in staff} == {"active", "suspended", "leaver"}
    surnames = Counter(
        normalise_surname(s.surname)
        for s in padding.records["subject"]
        if s.subject_type == "person"
    )
    assert surnames.most_common(1)[0][0] == "smith"


def test_the_same_arguments_give_the_same_bytes(padding: Padding, tmp_path: pathlib.Path) -> None:
    again = generate_reference(tmp_path / "again", **SMALL)
    other = generate_reference(tmp_path / "other", **{**SMALL, "seed": 2})
    assert again == padding.counts
    for name in FILES.values():
        assert (tmp_path / "again" / name).read_bytes() == (padding.out / name).read_bytes()
    assert other["cases"] != padding.counts["cases"] or (
        (tmp_path / "other" / "staff.jsonl").read_bytes()
        != (padding.out / "staff.jsonl").read_bytes()
    )


def test_memory_does_not_grow_with_subjects(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    # Small batches and writes, so that both sizes run many of them: what is left to
    # grow is whatever the generator holds per subject.
    monkeypatch.setattr(national_subjects, "BATCH", 1_000)
    monkeypatch.setattr(national_cases, "BATCH", 1_000)
    monkeypatch.setattr(reference_only, "_WRITE_AT", 64 << 10)

    def peak(subjects: int) -> int:
        tracemalloc.start()
        try:
            generate_reference(
                tmp_path / str(subjects), staff=100, subjects=subjects, seed=3, days=3
            )
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(20_000), peak(80_000)
    assert large < 1.6 * small, (small, large)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["generate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_writes_the_four_files(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    code, out, err = _run(
        capsys,
        "--out",
        str(tmp_path),
        "--reference-only",
        "--staff",
        "40",
        "--subjects",
        "1000",
        "--days",
        "3",
        "--id-prefix",
        "P",
    )
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES.values())
    assert json.loads(out)["subjects"] == 1000
    assert err.count("\n") == 1 and "40 staff, 1,000 subjects" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--subjects", "5000"],
        ["--id-prefix", "N"],
        ["--reference-only", "--variants"],
        ["--reference-only", "--invalid-lines", "3"],
        ["--reference-only", "--subjects", "10"],
        ["--reference-only", "--id-prefix", "a b"],
    ],
)
def test_misuse_of_the_options_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path, argv: list[str]
) -> None:
    code, out, err = _run(capsys, "--out", str(tmp_path), "--staff", "40", *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("accesswatch generate: ")
    assert not any(tmp_path.iterdir())
