"""Rule kinds decided by one event and the reference data."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from accesswatch.core.context import EventContext, assigned_open_case_listing
from accesswatch.core.firing import Firing
from accesswatch.core.state import UserState
from accesswatch.rules import types as r
from accesswatch.rules.types import seconds


def _opened(ctx: EventContext, what: str) -> Firing:
    return Firing([(ctx.t, ctx.event.event_id)], [what], [ctx.sid] if ctx.sid else [])


def relationship(rule: r.Relationship, ctx: EventContext, st: UserState) -> Firing | None:
    staff, subject, sid = ctx.staff, ctx.subject, ctx.sid
    if staff is None or sid is None:
        return None
    own = sid == staff.person_id
    relation = rule.relation
    if relation == "self":
        if not own:
            return None
        what = f"opened their own person record {sid}"
    elif own:
        return None
    elif relation == "colleague":
        owner = ctx.ref.staff_person_owner(sid)
        if owner is not None and owner != staff.user_id:
            what = f"opened the person record {sid} of colleague {owner}"
        elif subject is not None and "staff" in subject.flags:
            what = f"opened record {sid}, flagged as a member of staff"
        else:
            return None
    else:
        if subject is None or subject.subject_type != "person" or not staff.postcode_key:
            return None
        if subject.postcode_key != staff.postcode_key:
            return None
        same_name = bool(staff.surname_key) and subject.surname_key == staff.surname_key
        if relation == "family" and same_name:
            what = (
                f"opened the person record {sid} of someone sharing their surname and home postcode"
            )
        elif relation == "neighbour" and not same_name:
            what = f"opened the person record {sid} of someone living at their home postcode"
        else:
            return None
    if rule.unless_justified:
        if ctx.justified:
            return None
        what += f"; no case justified it: {ctx.why_unjustified}"
    return _opened(ctx, what)


def flagged_record(rule: r.FlaggedRecord, ctx: EventContext, st: UserState) -> Firing | None:
    subject = ctx.subject
    if subject is None or not subject.flags:
        return None
    hit = subject.flags.intersection(rule.flags)
    if not hit:
        return None
    what = f"opened {subject.subject_type} record {ctx.sid}, flagged {', '.join(sorted(hit))}"
    if rule.unless_justified:
        if ctx.justified:
            return None
        what += f"; no case justified it: {ctx.why_unjustified}"
    return _opened(ctx, what)


def victim(rule: r.Victim, ctx: EventContext, st: UserState) -> Firing | None:
    subject = ctx.subject
    if subject is None or rule.flag not in subject.flags:
        return None
    if ctx.justified or assigned_open_case_listing(ctx):
        return None
    return _opened(
        ctx,
        f"opened record {ctx.sid}, flagged {rule.flag}, without being assigned "
        f"to an open case that lists them ({ctx.why_unjustified})",
    )


def unjustified_access(
    rule: r.UnjustifiedAccess, ctx: EventContext, st: UserState
) -> Firing | None:
    if ctx.sid is None or ctx.subject_type not in rule.subject_types or ctx.justified:
        return None
    return _opened(
        ctx,
        f"opened {ctx.subject_type} record {ctx.sid} with no justifying case "
        f"({ctx.why_unjustified})",
    )


def off_duty(rule: r.OffDuty, ctx: EventContext, st: UserState) -> Firing | None:
    roster = ctx.ref.roster(ctx.event.user_id)
    # No roster for the member: we cannot judge, and guessing would flood analysts.
    if roster is None:
        return None
    grace = seconds(rule.grace)
    if roster.covers(ctx.t, grace):
        return None
    gap = roster.nearest_gap(ctx.t) or 0.0
    at = datetime.fromtimestamp(ctx.t, ZoneInfo(rule.timezone)).strftime("%Y-%m-%d %H:%M %Z")
    return _opened(
        ctx,
        f"used {ctx.event.system} ({ctx.event.action}) at {at}, "
        f"{_span(gap)} from the nearest rostered duty "
        f"(grace {_span(grace)})",
    )


def account(rule: r.Account, ctx: EventContext, st: UserState) -> Firing | None:
    staff, uid = ctx.staff, ctx.event.user_id
    if rule.condition == "unknown":
        if staff is not None:
            return None
        return _opened(
            ctx,
            f"account {uid} is not in the staff directory but made an access on {ctx.event.system}",
        )
    if staff is None:
        return None
    if rule.condition == "inactive_status":
        if staff.status not in rule.statuses:
            return None
        return _opened(
            ctx,
            f"account {uid} is marked {staff.status} in the staff directory "
            f"but made an access on {ctx.event.system}",
        )
    before = max(ctx.prev_t, staff.last_active or 0.0)
    idle = ctx.t - before
    if before <= 0 or idle < rule.idle_days * 86400:
        return None
    return _opened(
        ctx,
        f"account {uid} had been idle for {idle / 86400:.0f} days "
        f"(limit {rule.idle_days:g}) before this access",
    )


def _span(s: float) -> str:
    m = round(s / 60)
    if m < 60:
        return f"{m} min"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h < 48 else f"{h // 24} days"
