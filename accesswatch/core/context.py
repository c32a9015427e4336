"""What the rules need to know about one event, worked out once and lazily."""

from __future__ import annotations

from accesswatch.contract.events import AccessEvent
from accesswatch.reference import CaseInfo, ReferenceData, Staff, Subject


class EventContext:
    """One event with its member, subject and (lazily) its policing purpose."""

    __slots__ = (
        "_why",
        "closed_grace",
        "event",
        "prev_t",
        "ref",
        "sid",
        "staff",
        "subject",
        "subject_type",
        "t",
    )

    def __init__(
        self,
        event: AccessEvent,
        ref: ReferenceData,
        prev_t: float,
        closed_grace: float,
    ) -> None:
        self.event = event
        self.t = event.t
        self.ref = ref
        self.prev_t = prev_t
        self.closed_grace = closed_grace
        self.staff: Staff | None = ref.staff.lookup(event.user_id)
        self.sid: str | None = event.subject_id or None
        self.subject: Subject | None = ref.subjects.lookup(self.sid) if self.sid else None
        self.subject_type = self.subject.subject_type if self.subject else event.subject_type
        self._why: str | None = None

    @property
    def justified(self) -> bool:
        """True when the event's case_ref is a justifying case (scenarios.md)."""
        why = self._why
        if why is None:
            why = self._why = justifying_case_problem(
                self.event, self.sid, self.ref, self.closed_grace
            )
        return why == ""

    @property
    def why_unjustified(self) -> str:
        """``""`` when justified, else why not, in words for the alert."""
        if self._why is None:
            self._why = justifying_case_problem(self.event, self.sid, self.ref, self.closed_grace)
        return self._why


def case_open_at(case: CaseInfo, t: float, closed_grace: float) -> bool:
    """Open at ``t``: after it opened and before it closed (plus the tail-off grace)."""
    if case.opened is not None and t < case.opened:
        return False
    if case.closed is not None:
        return t <= case.closed + closed_grace
    # Closed with no closing time: we cannot place it, so it justifies nothing.
    return case.status == "open"


def justifying_case_problem(
    event: AccessEvent, sid: str | None, ref: ReferenceData, closed_grace: float
) -> str:
    """Why ``event.case_ref`` does not justify the access; ``""`` when it does.

    A justifying case exists, was open at the time, has the member among its
    assignees and, where it lists subjects, lists the subject opened.
    """
    ref_text = event.case_ref
    if not ref_text:
        return "no case was given"
    case = ref.cases.lookup(ref_text)
    if case is None:
        return f"the case given ({ref_text}) does not exist"
    if not case_open_at(case, event.t, closed_grace):
        return f"the case given ({ref_text}) was not open at the time"
    if event.user_id not in case.assigned:
        return f"they are not assigned to the case given ({ref_text})"
    if sid and case.subjects and sid not in case.subjects:
        return f"the case given ({ref_text}) does not list that record"
    return ""


def assigned_open_case_listing(ctx: EventContext) -> bool:
    """True when the member is assigned to an open case that lists the subject."""
    if ctx.sid is None:
        return False
    cases = ctx.ref.cases
    for ref_text in ctx.ref.cases_listing(ctx.sid):
        case = cases.lookup(ref_text)
        if (
            case is not None
            and ctx.event.user_id in case.assigned
            and case_open_at(case, ctx.t, ctx.closed_grace)
        ):
            return True
    return False
