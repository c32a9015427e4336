"""The audit log being written, and the gate that keeps ordinary work ordinary.

Every ordinary access passes `Ledger.normal`, which refuses anything the
catalogue would call misuse (own record, family, neighbours, colleagues,
flagged records and victims without a justifying case, the same person on a
third day, repeated out-of-area opens). That is what makes the labels
complete: misuse enters only through `Ledger.misuse`, and is labelled there.
"""

from __future__ import annotations

import random

from . import names
from .clock import DAY, local_day
from .model import PROTECTIVE_FLAGS, STAFF_FLAG, VICTIM_FLAG, Force, Staff
from .moves import Emit

# ts, event_id, user_id, terminal_id, system, action,
# subject_type, subject_id, query, case_ref, result_count
Event = tuple[
    int, str, str, str, str, str, str | None, str | None, str | None, str | None, int | None
]

# Systems that stamp milliseconds; the others stamp whole seconds.
MILLISECOND_SYSTEMS = ("PND", "ATHENA")

# Out-of-area people or places a member may open without a case over the feed.
_OUT_OF_AREA_ALLOWANCE = 2
_FORCE_WIDE_ALLOWANCE = 12


class Ledger:
    def __init__(self, rng: random.Random, force: Force) -> None:
        self.rng = rng
        self.force = force
        self.events: list[Event] = []
        self._ids: set[str] = set()
        # (user, subject) -> utc days and local days of unjustified opens
        self._unjustified: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        self._out_of_area: dict[str, list[str]] = {}
        self.counts: dict[str, int] = {}
        self.opens: dict[str, int] = {}  # events that opened a record, per user
        self.last: dict[str, int] = {}  # latest access time per user

    def _event_id(self, system: str) -> str:
        while True:
            eid = f"{system.lower()}-{self.rng.getrandbits(64):016x}"
            if eid not in self._ids:
                self._ids.add(eid)
                return eid

    def _stamp(self, ts: int, system: str) -> int:
        ts -= ts % 1000
        if system in MILLISECOND_SYSTEMS:
            ts += self.rng.randrange(1000)
        return ts

    def _append(
        self,
        m: Staff,
        ts: int,
        terminal: str,
        system: str,
        action: str,
        stype: str | None,
        sid: str | None,
        query: str | None,
        case_ref: str | None,
        count: int | None,
    ) -> str:
        eid = self._event_id(system)
        self.events.append(
            (
                self._stamp(ts, system),
                eid,
                m.user_id,
                terminal,
                system,
                action,
                stype,
                sid,
                query,
                case_ref,
                count,
            )
        )
        self.counts[m.user_id] = self.counts.get(m.user_id, 0) + 1
        if sid:
            self.opens[m.user_id] = self.opens.get(m.user_id, 0) + 1
        if ts > self.last.get(m.user_id, 0):
            self.last[m.user_id] = ts
        return eid

    def normal(
        self,
        m: Staff,
        ts: int,
        terminal: str,
        system: str,
        action: str,
        stype: str | None,
        sid: str | None,
        query: str | None = None,
        case_ref: str | None = None,
        count: int | None = None,
    ) -> str | None:
        """Record an ordinary access and return its id; None if it would be misuse."""
        if not self.force.start <= ts < self.force.end:
            return None
        if sid is not None and not self._permitted(m, ts, sid, case_ref):
            return None
        return self._append(m, ts, terminal, system, action, stype, sid, query, case_ref, count)

    def normal_emitter(self, m: Staff, terminal: str, limit: int) -> Emit:
        """An Emit for moves.lookup that records ordinary work up to `limit`."""

        def emit(
            ts: int,
            system: str,
            action: str,
            stype: str | None,
            sid: str | None,
            query: str | None,
            case_ref: str | None,
            count: int | None,
        ) -> str | None:
            if ts > limit:
                return None
            return self.normal(m, ts, terminal, system, action, stype, sid, query, case_ref, count)

        return emit

    def misuse_emitter(self, m: Staff, terminal: str) -> Emit:
        def emit(
            ts: int,
            system: str,
            action: str,
            stype: str | None,
            sid: str | None,
            query: str | None,
            case_ref: str | None,
            count: int | None,
        ) -> str | None:
            return self.misuse(m, ts, terminal, system, action, stype, sid, query, case_ref, count)

        return emit

    def misuse(
        self,
        m: Staff,
        ts: int,
        terminal: str,
        system: str,
        action: str,
        stype: str | None,
        sid: str | None,
        query: str | None = None,
        case_ref: str | None = None,
        count: int | None = None,
    ) -> str:
        """Record a misuse access without any gate; the caller labels it."""
        if not self.force.start <= ts < self.force.end:
            raise ValueError(f"misuse event at {ts} is outside the feed")
        return self._append(m, ts, terminal, system, action, stype, sid, query, case_ref, count)

    def _permitted(self, m: Staff, ts: int, sid: str, case_ref: str | None) -> bool:
        f = self.force
        s = f.subject_by_id[sid]
        if sid == m.person_id:
            return False
        if (
            VICTIM_FLAG in s.flags
            and s.subject_type == "person"
            and not f.covers_victim(m.user_id, sid, ts)
        ):
            return False
        if f.justifies(case_ref, m.user_id, sid, ts):
            return True
        if (
            s.staff_of is not None
            or STAFF_FLAG in s.flags
            or any(x in PROTECTIVE_FLAGS for x in s.flags)
        ):
            return False
        force_wide = m.area == names.FORCE_WIDE_AREA
        if s.subject_type == "vehicle":
            return True  # a vehicle check needs no case, wherever the keeper lives
        if s.subject_type != "person":
            return force_wide or s.area == m.area or s.area is None
        if m.postcode_key is not None and s.postcode_key == m.postcode_key:
            return False
        if s.area != m.area and not self._out_of_area_ok(m, sid, force_wide):
            return False
        return self._third_day_ok(m, ts, sid)

    def _out_of_area_ok(self, m: Staff, sid: str, force_wide: bool) -> bool:
        seen = self._out_of_area.setdefault(m.user_id, [])
        if sid in seen:
            return True
        if len(seen) >= (_FORCE_WIDE_ALLOWANCE if force_wide else _OUT_OF_AREA_ALLOWANCE):
            return False
        seen.append(sid)
        return True

    def _third_day_ok(self, m: Staff, ts: int, sid: str) -> bool:
        utc_days, local_days = self._unjustified.setdefault((m.user_id, sid), ([], []))
        u, loc = ts // DAY, local_day(ts)
        new_u = utc_days if u in utc_days else [*utc_days, u]
        new_l = local_days if loc in local_days else [*local_days, loc]
        if len(new_u) > 2 or len(new_l) > 2:
            return False
        self._unjustified[(m.user_id, sid)] = (new_u, new_l)
        return True

    def opened_without_case(self, user_id: str, sid: str) -> bool:
        """True when ordinary work may have opened ``sid`` for this member with no case."""
        return (user_id, sid) in self._unjustified

    def out_of_area_opened(self, user_id: str) -> int:
        """People from other areas ordinary work opened for this member with no case."""
        return len(self._out_of_area.get(user_id, ()))
