"""Reference records (staff, subjects, cases, duties) and their normalisation."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from accesswatch.contract.explain import explain
from accesswatch.contract.schemas import schema
from accesswatch.contract.timestamps import parse_ts_recent
from accesswatch.errors import InvalidRecord


class StaffMember(msgspec.Struct, gc=False):
    user_id: str
    surname: str
    role: str
    unit: str
    area: str
    status: Literal["active", "suspended", "leaver"]
    forenames: str | None = None
    home_postcode: str | None = None
    person_id: str | None = None
    last_active: str | None = None


class SubjectRecord(msgspec.Struct, gc=False):
    subject_id: str
    subject_type: Literal["person", "vehicle", "address", "incident", "other"]
    surname: str | None = None
    forenames: str | None = None
    postcode: str | None = None
    area: str | None = None
    flags: list[str] = []


class Case(msgspec.Struct, gc=False):
    case_ref: str
    status: Literal["open", "closed"]
    assigned_users: list[str]
    area: str | None = None
    subject_ids: list[str] = []
    opened_at: str | None = None
    closed_at: str | None = None


class DutyPeriod(msgspec.Struct, gc=False):
    duty_id: str
    user_id: str
    start: str
    end: str


RECORD_TYPES: dict[str, type[msgspec.Struct]] = {
    "staff": StaffMember,
    "subject": SubjectRecord,
    "case": Case,
    "duty": DutyPeriod,
}
KEY_FIELDS = {"staff": "user_id", "subject": "subject_id", "case": "case_ref", "duty": "duty_id"}
_TIME_FIELDS = {
    "staff": ("last_active",),
    "case": ("opened_at", "closed_at"),
    "duty": ("start", "end"),
}
_decoders = {kind: msgspec.json.Decoder(t) for kind, t in RECORD_TYPES.items()}
_any = msgspec.json.Decoder()


def decode_reference(kind: str, raw: bytes) -> Any:
    """Decode one reference record of ``kind`` (staff|subject|case|duty)."""
    try:
        try:
            record = _decoders[kind].decode(raw)
        except msgspec.ValidationError:
            value = _any.decode(raw)
            problem = explain(value, schema(kind))
            if problem is not None:
                raise problem from None
            record = msgspec.convert(value, RECORD_TYPES[kind], strict=False)
    except msgspec.DecodeError as e:
        raise InvalidRecord(f"not valid JSON: {e}", "invalid_json") from None
    except UnicodeDecodeError:
        raise InvalidRecord("not valid UTF-8", "invalid_utf8") from None
    except RecursionError:
        raise InvalidRecord("JSON nested too deeply", "too_deep") from None
    _check_times(kind, record)
    return record


def plain_decoder(kind: str) -> Callable[[bytes], Any]:
    """``decode_reference`` of ``kind`` for a record as most are: one that needs no
    coercion.

    Anything else raises, saying nothing useful: the caller then asks
    ``decode_reference``, which accepts what it can and says why not.  The
    reference feed's cold read decodes millions of records this way; for a kind
    with no times to check (subjects, most of them) it is msgspec's own decoder.
    """
    decode = _decoders[kind].decode
    if kind not in _TIME_FIELDS:
        return decode

    def decode_checked(raw: bytes) -> Any:
        record = decode(raw)
        _check_times(kind, record)
        return record

    return decode_checked


def _check_times(kind: str, record: Any) -> None:
    for name in _TIME_FIELDS.get(kind, ()):
        value = getattr(record, name)
        if value is not None:
            parse_ts_recent(value, name)


def normalise_postcode(postcode: str | None) -> str | None:
    """``" ls1  4ap "`` → ``"LS14AP"``: UK postcodes vary only in spacing and case."""
    if not postcode:
        return None
    key = "".join(postcode.split()).upper()
    return key or None


def normalise_surname(surname: str | None) -> str | None:
    """``"  MacDonald "`` → ``"macdonald"``; inner whitespace collapses to one space."""
    if not surname:
        return None
    key = " ".join(unicodedata.normalize("NFKC", surname).split()).casefold()
    return key or None
