"""Reference records decode, reject with reasons, and normalise what varies."""

from __future__ import annotations

import json

import pytest

from accesswatch.contract import decode_reference, normalise_postcode, normalise_surname
from accesswatch.errors import InvalidRecord

STAFF = {
    "user_id": "u1",
    "surname": "Smith",
    "role": "constable",
    "unit": "Response",
    "area": "North",
    "status": "active",
    "home_postcode": "ls1 4ap",
    "extra": 1,
}


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("LS1 4AP", "LS14AP"),
        (" ls1  4ap ", "LS14AP"),
        ("LS14AP", "LS14AP"),
        ("ls1\t4ap", "LS14AP"),
        ("", None),
        (None, None),
        ("   ", None),
    ],
)
def test_postcode_normalisation(raw: str | None, key: str | None) -> None:
    assert normalise_postcode(raw) == key


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("Smith", "smith"),
        ("  SMITH ", "smith"),
        ("Mac  Donald", "mac donald"),
        ("O'Brien", "o'brien"),
        ("", None),
        (None, None),
    ],
)
def test_surname_normalisation(raw: str | None, key: str | None) -> None:
    assert normalise_surname(raw) == key


def test_reference_kinds_decode() -> None:
    assert decode_reference("staff", json.dumps(STAFF).encode()).user_id == "u1"
    assert decode_reference("subject", b'{"subject_id":"P1","subject_type":"person"}').flags == []
    case = decode_reference("case", b'{"case_ref":"C1","status":"open","assigned_users":["u1"]}')
    assert case.subject_ids == []
    duty = decode_reference(
        "duty",
        b'{"duty_id":"D1","user_id":"u1","start":"2026-03-02T07:00:00Z",'
        b'"end":"2026-03-02T15:00:00Z"}',
    )
    assert duty.end.endswith("Z")


@pytest.mark.parametrize(
    ("kind", "record", "expected"),
    [
        (
            "staff",
            {**STAFF, "status": "retired"},
            "status: 'retired' is not one of active|suspended|leaver",
        ),
        ("staff", {k: v for k, v in STAFF.items() if k != "area"}, "area: missing"),
        (
            "staff",
            {**STAFF, "last_active": "2026-01-01"},
            "last_active: '2026-01-01' is not an RFC 3339",
        ),
        (
            "subject",
            {"subject_id": "P1", "subject_type": "person", "flags": "vip"},
            "flags: must be an array",
        ),
        (
            "case",
            {"case_ref": "C1", "status": "open", "assigned_users": [1]},
            "assigned_users[0]: must be a string",
        ),
        (
            "duty",
            {"duty_id": "D1", "user_id": "u1", "start": "2026-03-02T07:00:00", "end": "x"},
            "start: no time zone",
        ),
    ],
)
def test_reference_rejections(kind: str, record: dict, expected: str) -> None:
    with pytest.raises(InvalidRecord) as info:
        decode_reference(kind, json.dumps(record).encode())
    assert expected in info.value.reason


@pytest.mark.parametrize("raw", [b"[[[[", b'{"user_id": [1,2', b"", b"\xff"])
def test_reference_malformed_input_is_a_rejection(raw: bytes) -> None:
    with pytest.raises(InvalidRecord):
        decode_reference("staff", raw)
