"""How each kind of member works: share of the force, rota, volume and task mix.

Rates are accesses per hour on duty; they differ by an order of magnitude
between a neighbourhood PCSO and a control-room call handler, which is what
makes a per-user baseline necessary.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RoleSpec:
    unit: str
    role: str
    share: float  # of the whole force
    rate: float  # accesses per duty hour, before per-person spread
    rota: str  # key into duties.ROTAS
    hq_share: float  # share posted force-wide (area HQ) rather than to an area
    mobile: float  # chance the member carries a mobile data terminal
    caseload: tuple[int, int]  # investigations led at any one time
    tasks: tuple[tuple[str, float], ...]


def _mix(text: str) -> tuple[tuple[str, float], ...]:
    """'case:.5 search:.5' -> (('case', 0.5), ('search', 0.5))"""
    return tuple((k, float(w)) for k, w in (item.split(":") for item in text.split()))


# fmt: off
SPECS: tuple[RoleSpec, ...] = (
    # unit, role, share, rate, rota, hq_share, mobile, caseload, task mix (kind:weight)
    RoleSpec("Response", "constable", 0.3, 4.0, "response", 0.0, 0.7, (1, 3),
             _mix("case:0.36 vehicle:0.25 address:0.1 person:0.06 search:0.14 stop:0.04 log:0.05")),
    RoleSpec("Response", "sergeant", 0.04, 3.0, "response", 0.0, 0.4, (0, 2),
             _mix("case:0.55 vehicle:0.1 address:0.1 person:0.04 search:0.16 log:0.05")),
    RoleSpec("Neighbourhood", "constable", 0.09, 2.5, "neighbourhood", 0.0, 0.5, (2, 4),
             _mix("case:0.45 address:0.2 vehicle:0.12 person:0.07 search:0.16")),
    RoleSpec("Neighbourhood", "pcso", 0.05, 1.5, "neighbourhood", 0.0, 0.6, (0, 1),
             _mix("case:0.3 address:0.32 vehicle:0.12 person:0.05 search:0.21")),
    RoleSpec("Neighbourhood", "sergeant", 0.015, 2.5, "neighbourhood", 0.0, 0.3, (1, 2),
             _mix("case:0.55 address:0.15 vehicle:0.08 person:0.04 search:0.18")),
    RoleSpec("CID", "detective", 0.09, 4.5, "cid", 0.0, 0.1, (4, 8),
             _mix("case:0.72 vehicle:0.06 address:0.07 person:0.03 search:0.12")),
    RoleSpec("CID", "sergeant", 0.02, 3.5, "cid", 0.0, 0.1, (2, 4),
             _mix("case:0.75 vehicle:0.04 address:0.05 person:0.02 search:0.14")),
    RoleSpec("Safeguarding", "detective", 0.04, 4.0, "office", 0.0, 0.0, (4, 7),
             _mix("case:0.8 address:0.06 person:0.02 search:0.12")),
    RoleSpec("Control Room", "call_handler", 0.1, 14.0, "control", 1.0, 0.0, (0, 0),
             _mix("call:0.86 vehicle:0.04 address:0.04 person:0.01 search:0.05")),
    RoleSpec("Control Room", "sergeant", 0.01, 6.0, "control", 1.0, 0.0, (0, 0),
             _mix("call:0.6 vehicle:0.1 address:0.1 search:0.2")),
    RoleSpec("Intelligence", "analyst", 0.06, 16.0, "office", 0.3, 0.0, (0, 0),
             _mix("operation:0.62 case:0.1 search:0.2 vehicle:0.08")),
    RoleSpec("Roads Policing", "constable", 0.05, 6.0, "roads", 0.0, 0.8, (0, 1),
             _mix("vehicle:0.58 case:0.1 person:0.04 address:0.04 search:0.16 stop:0.08")),
    RoleSpec("Custody", "sergeant", 0.02, 3.5, "control", 0.0, 0.0, (0, 0),
             _mix("custody:0.8 search:0.2")),
    RoleSpec("Custody", "detention_officer", 0.02, 2.5, "control", 0.0, 0.0, (0, 0),
             _mix("custody:0.75 search:0.25")),
    RoleSpec("Criminal Justice", "police_staff", 0.03, 6.0, "office", 0.0, 0.0, (0, 0),
             _mix("file:0.85 search:0.15")),
    RoleSpec("Contractors", "contractor", 0.015, 0.5, "contractor", 1.0, 0.0, (0, 0),
             _mix("other:0.85 search:0.15")),
)
# fmt: on

SPEC_BY_KEY: dict[tuple[str, str], RoleSpec] = {(s.unit, s.role): s for s in SPECS}

# Units whose members investigate and so lead or join cases.
CASE_UNITS = ("Response", "Neighbourhood", "CID", "Safeguarding", "Roads Policing")
# Units that turn out to a major incident in their area.
MAJOR_INCIDENT_UNITS = ("Response", "Neighbourhood", "CID", "Intelligence")
# Custody suites exist in some areas only.
CUSTODY_AREAS = ("City", "East", "West", "Riverside")


def spec_for(unit: str, role: str) -> RoleSpec:
    return SPEC_BY_KEY[(unit, role)]
