"""Contract v1: the wire formats, decoded fast and validated strictly."""

from __future__ import annotations

from accesswatch.contract.events import AccessEvent, decode_event
from accesswatch.contract.reference import (
    Case,
    DutyPeriod,
    StaffMember,
    SubjectRecord,
    decode_reference,
    normalise_postcode,
    normalise_surname,
)

__all__ = [
    "AccessEvent",
    "Case",
    "DutyPeriod",
    "StaffMember",
    "SubjectRecord",
    "decode_event",
    "decode_reference",
    "normalise_postcode",
    "normalise_surname",
]
