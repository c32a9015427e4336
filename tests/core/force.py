"""A tiny force in code, and an event factory, for rule tests."""

from __future__ import annotations

from accesswatch.contract.events import AccessEvent
from accesswatch.contract.reference import Case, DutyPeriod, StaffMember, SubjectRecord
from accesswatch.contract.timestamps import format_ts, parse_ts
from accesswatch.reference import ReferenceData

T0 = parse_ts("2026-03-02T08:00:00Z")  # a Monday, 08:00, start of u1's early shift
HOUR = 3600.0
DAY = 86400.0


def staff(
    user_id: str,
    surname: str,
    postcode: str | None,
    person_id: str | None = None,
    status: str = "active",
    area: str = "North",
    last_active: str | None = None,
    role: str = "constable",
    unit: str = "Response",
) -> StaffMember:
    return StaffMember(
        user_id=user_id,
        surname=surname,
        role=role,
        unit=unit,
        area=area,
        status=status,
        home_postcode=postcode,
        person_id=person_id,
        last_active=last_active,
    )


def person(
    sid: str,
    surname: str | None = None,
    postcode: str | None = None,
    area: str | None = "North",
    flags: list[str] | None = None,
    subject_type: str = "person",
) -> SubjectRecord:
    return SubjectRecord(
        subject_id=sid,
        subject_type=subject_type,
        surname=surname,  # type: ignore[arg-type]
        postcode=postcode,
        area=area,
        flags=flags or [],
    )


def build_force() -> ReferenceData:
    ref = ReferenceData()
    people = [
        staff("u1", "Smith", "LS1 4AP", person_id="P-U1"),
        staff("u2", "Patel", "ls2 7xx", person_id="P-U2"),
        staff("u3", "Jones", "LS3 1AA", status="leaver"),
        staff("u4", "Brown", "LS3 1AB", status="suspended"),
        staff("u5", "Evans", "LS3 1AC", last_active=format_ts(T0 - 90 * DAY)),
        staff("u6", "Khan", "LS3 1AD", last_active=format_ts(T0 - 10 * DAY)),
        staff("hq1", "Ward", "LS9 9ZZ", area="Force HQ", role="call_handler", unit="Control Room"),
    ]
    for s in people:
        ref.apply("staff", s.user_id, s)
    subjects = [
        person("P-U1", "Smith", "LS14AP"),
        person("P-FAM", "  SMITH ", "ls1  4ap"),  # family: same surname and postcode
        person("P-SMITH-ELSEWHERE", "Smith", "LS8 2BB"),  # surname alone is not family
        person("P-NB", "Jones", "LS1 4AP"),  # neighbour
        person("P-U2", "Patel", "LS2 7XX"),  # colleague's own record
        person("P-STAFF", "Okafor", "LS5 5AA", flags=["staff"]),
        person("P-VIP", "Star", "LS6 6AA", flags=["vip"]),
        person("P-SENS", "Quiet", "LS6 6AB", flags=["sensitive"]),
        person("P-VIC", "Able", "LS7 7AA", flags=["victim"]),
        person("P-X", "Baker", "LS7 7AB"),
        person("V-1", None, None, subject_type="vehicle"),
        *[person(f"P-S{i}", "South", f"S1 {i}AA", area="South") for i in range(8)],
        *[person(f"P-N{i:03d}", "Many", f"LS9 {i % 10}AA") for i in range(200)],
    ]
    for s in subjects:
        ref.apply("subject", s.subject_id, s)
    cases = [
        Case(
            case_ref="C-OPEN",
            status="open",
            assigned_users=["u1"],
            subject_ids=["P-VIC", "P-FAM", "P-NB", "P-U2", "P-VIP", "P-X"],
            opened_at=format_ts(T0 - 5 * DAY),
        ),
        Case(
            case_ref="C-ANY",
            status="open",
            assigned_users=["u1"],
            subject_ids=[],
            opened_at=format_ts(T0 - 5 * DAY),
        ),
        Case(
            case_ref="C-OTHER",
            status="open",
            assigned_users=["u2"],
            subject_ids=["P-VIC"],
            opened_at=format_ts(T0 - 5 * DAY),
        ),
        Case(
            case_ref="C-CLOSED",
            status="closed",
            assigned_users=["u1"],
            subject_ids=["P-VIP"],
            opened_at=format_ts(T0 - 30 * DAY),
            closed_at=format_ts(T0 - 10 * DAY),
        ),
    ]
    for c in cases:
        ref.apply("case", c.case_ref, c)
    for d in range(7):
        start = T0 + d * DAY
        for uid in ("u1", "u2", "u5", "u6"):
            ref.apply(
                "duty",
                f"D-{uid}-{d}",
                DutyPeriod(
                    duty_id=f"D-{uid}-{d}",
                    user_id=uid,
                    start=format_ts(start),
                    end=format_ts(start + 8 * HOUR),
                ),
            )
    return ref


_counter = iter(range(10**9))


def ev(
    user: str = "u1",
    t: float = T0 + HOUR,
    subject: str | None = "P-X",
    action: str = "view",
    case: str | None = None,
    system: str = "PND",
) -> AccessEvent:
    n = next(_counter)
    event = AccessEvent(
        event_id=f"e{n}",
        ts=format_ts(t),
        user_id=user,
        terminal_id="NTH-T1",
        system=system,
        action=action,
        subject_id=subject,  # type: ignore[arg-type]
        case_ref=case,
    )
    event.t = t
    return event


def rules_raised(alerts) -> set[str]:
    """Rule ids whose firings show in ``alerts``: each alert's own rule and those
    that joined it (an incident's other rules say "also AW-009: ..." there)."""
    out: set[str] = set()
    for a in alerts:
        out.add(a.rule_id)
        out.update(why[5:].split(":")[0] for why in a.reasons if why.startswith("also "))
    return out
