"""Reference lookups stay right through updates and tombstones."""

from __future__ import annotations

from accesswatch.contract.reference import Case, DutyPeriod
from accesswatch.contract.timestamps import format_ts
from accesswatch.reference import ReferenceData
from accesswatch.refstore import key_of
from tests.core.force import DAY, HOUR, T0, build_force, person, staff


def _living_at(ref: ReferenceData, postcode: str) -> set[str]:
    return {sid for sid in ref.subjects if ref.subjects[sid].postcode_key == key_of(postcode)}


def test_lookups() -> None:
    ref = build_force()
    assert ref.staff["u1"].postcode_key == key_of("LS14AP")
    assert ref.staff["u1"].surname_key == key_of("smith")
    assert ref.staff_person_owner("P-U2") == "u2"
    assert _living_at(ref, "LS14AP") == {"P-U1", "P-FAM", "P-NB"}
    assert ref.cases_listing("P-VIC") == {"C-OPEN", "C-OTHER"}
    assert ref.is_area("North") and not ref.is_area("Force HQ")


def test_updates_and_tombstones_keep_indexes_in_step() -> None:
    ref = build_force()
    ref.apply("subject", "P-NB", person("P-NB", "Jones", "LS2 2BB"))  # moved house
    assert "P-NB" not in _living_at(ref, "LS14AP") and "P-NB" in _living_at(ref, "LS22BB")
    ref.apply("subject", "P-FAM", None)
    assert _living_at(ref, "LS14AP") == {"P-U1"}
    ref.apply("staff", "u2", staff("u2", "Patel", "LS2 7XX", person_id=None))
    assert ref.staff_person_owner("P-U2") is None
    ref.apply(
        "case",
        "C-OTHER",
        Case(case_ref="C-OTHER", status="open", assigned_users=["u2"], subject_ids=["P-X"]),
    )
    assert ref.cases_listing("P-VIC") == {"C-OPEN"} and ref.cases_listing("P-X") == {
        "C-OPEN",
        "C-OTHER",
    }
    ref.apply("case", "C-OPEN", None)
    assert ref.cases_listing("P-VIC") == set()
    ref.apply("staff", "u1", None)
    assert "u1" not in ref.staff and ref.staff_person_owner("P-U1") is None


def test_duty_cover_with_grace_overlaps_and_deletion() -> None:
    ref = build_force()
    roster = ref.roster("u1")
    assert roster is not None
    assert roster.covers(T0 + HOUR, 0)
    assert roster.covers(T0 + 8 * HOUR + 29 * 60, 1800) and not roster.covers(
        T0 + 8 * HOUR + 31 * 60, 1800
    )
    assert not roster.covers(T0 + 12 * HOUR, 1800)
    # Long overtime: a 14-hour duty record overlapping the normal one covers the evening.
    ref.apply(
        "duty",
        "OT-1",
        DutyPeriod(
            duty_id="OT-1",
            user_id="u1",
            start=format_ts(T0 - 2 * HOUR),
            end=format_ts(T0 + 14 * HOUR),
        ),
    )
    roster = ref.roster("u1")  # a roster is as it was when asked for: ask again
    assert roster is not None and roster.covers(T0 + 12 * HOUR, 1800)
    ref.apply("duty", "OT-1", None)
    roster = ref.roster("u1")
    assert roster is not None and not roster.covers(T0 + 12 * HOUR, 1800)
    for d in range(7):
        ref.apply("duty", f"D-u1-{d}", None)
    assert ref.roster("u1") is None
    assert ref.roster("hq1") is None and ref.sizes()["duty"] == 3 * 7
    assert not build_force().roster("u1").covers(T0 + 7 * DAY + HOUR, 1800)  # type: ignore[union-attr]
