"""Serialise the force to the contract's JSON Lines files and the labels.

Each source system writes its audit lines its own way: PNC, STORM and ANPR
leave out empty fields, NICHE and STORM stamp London wall time with an
offset, PND and ATHENA stamp milliseconds, and ATHENA adds a field of its own
that consumers must ignore. The shape depends only on the system, so it
tells nothing about whether an event is misuse.
"""

from __future__ import annotations

import json
import pathlib
import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from .clock import local_text, utc_text, utc_text_ms
from .incidents import Incident
from .ledger import Event
from .model import Case, Duty, Force, Staff, Subject

if TYPE_CHECKING:
    from .national_staff import Member

_ENCODE = msgspec.json.Encoder().encode

_STAMP: dict[str, Callable[[int], str]] = {
    "PNC": utc_text,
    "ANPR": utc_text,
    "PND": utc_text_ms,
    "ATHENA": utc_text_ms,
    "NICHE": local_text,
    "STORM": local_text,
}
_SPARSE = ("PNC", "STORM", "ANPR")
_FIELDS = ("subject_type", "subject_id", "query", "case_ref", "result_count")


def event_record(e: Event, seq: int) -> dict[str, Any]:
    ts, eid, uid, terminal, system, action = e[:6]
    rec: dict[str, Any] = {
        "event_id": eid,
        "ts": _STAMP.get(system, utc_text)(ts),
        "user_id": uid,
        "terminal_id": terminal,
        "system": system,
        "action": action,
    }
    sparse = system in _SPARSE
    for name, value in zip(_FIELDS, e[6:], strict=True):
        if value is not None or not sparse:
            rec[name] = value
    if system == "ATHENA":
        rec["audit_seq"] = seq
    return rec


def staff_record(m: Staff | Member) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "user_id": m.user_id,
        "surname": m.surname,
        "forenames": m.forenames,
        "role": m.role,
        "unit": m.unit,
        "area": m.area,
        "home_postcode": m.home_postcode,
        "person_id": m.person_id,
        "status": m.status,
    }
    if m.last_active is not None:
        rec["last_active"] = utc_text(m.last_active)
    return rec


def subject_record(s: Subject) -> dict[str, Any]:
    rec: dict[str, Any] = {"subject_id": s.subject_id, "subject_type": s.subject_type}
    if s.subject_type == "person":
        rec.update(surname=s.surname, forenames=s.forenames)
    rec.update(postcode=s.postcode, area=s.area, flags=s.flags)
    if s.extra:
        rec.update(s.extra)
    return rec


def case_record(c: Case) -> dict[str, Any]:
    return {
        "case_ref": c.case_ref,
        "status": "open" if c.closed is None else "closed",
        "area": c.area,
        "assigned_users": c.assigned,
        "subject_ids": c.subject_ids,
        "opened_at": None if c.opened is None else utc_text(c.opened),
        "closed_at": None if c.closed is None else utc_text(c.closed),
    }


def duty_record(d: Duty) -> dict[str, Any]:
    # The roster speaks local time.
    return {
        "duty_id": d.duty_id,
        "user_id": d.user_id,
        "start": local_text(d.start),
        "end": local_text(d.end),
    }


def _write_lines(path: pathlib.Path, lines: Iterable[bytes]) -> None:
    with path.open("wb") as fh:
        chunk: list[bytes] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= 50_000:
                fh.write(b"\n".join(chunk) + b"\n")
                chunk.clear()
        if chunk:
            fh.write(b"\n".join(chunk) + b"\n")


def _invalid(rng: random.Random, kind: int, base: dict[str, Any]) -> bytes:
    """One line a consumer must dead-letter: each kind breaks the contract differently."""
    bad = dict(base)
    bad["event_id"] = f"bad-{rng.getrandbits(48):012x}"
    if kind == 0:
        return _ENCODE(bad)[: rng.randint(10, 60)]  # truncated mid-write
    if kind == 1:
        del bad["user_id"]
    elif kind == 2:
        bad["action"] = rng.choice(("delete", "browse", "VIEW"))
    elif kind == 3:
        bad["ts"] = bad["ts"][:19]  # no zone
    elif kind == 4:
        bad["result_count"] = -rng.randint(1, 9)
    elif kind == 5:
        bad["terminal_id"] = ""
    elif kind == 6:
        bad["ts"] = rng.choice(("yesterday", "2026-13-45T25:61:00Z", "1772438400"))
    else:
        return _ENCODE([bad["event_id"], bad["ts"]])
    return _ENCODE(bad)


def _event_lines(rng: random.Random, events: list[Event], invalid: int) -> list[bytes]:
    lines: list[bytes] = []
    athena = 0
    for e in events:
        if e[4] == "ATHENA":
            athena += 1
        lines.append(_ENCODE(event_record(e, athena)))
    if invalid and events:
        spots = sorted(rng.randrange(len(events)) for _ in range(invalid))
        for n, i in enumerate(reversed(spots)):
            base = event_record(events[i], 0)
            base.pop("audit_seq", None)
            lines.insert(i + 1, _invalid(rng, (invalid - 1 - n) % 8, base))
    return lines


def label_record(code_seq: str, inc: Incident, stamps: dict[str, int]) -> dict[str, Any]:
    ids = sorted(inc.event_ids, key=lambda e: (stamps[e], e))
    return {
        "incident_id": code_seq,
        "scenario": inc.scenario,
        "user_id": inc.user_id,
        "event_ids": ids,
        "first_ts": utc_text_ms(stamps[ids[0]]),
        "last_ts": utc_text_ms(stamps[ids[-1]]),
    }


def write_force(
    out_dir: pathlib.Path,
    force: Force,
    events: list[Event],
    incidents: list[Incident],
    meta: dict[str, Any],
    invalid: int,
    rng: random.Random,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_lines(out_dir / "events.jsonl", _event_lines(rng, events, invalid))
    _write_lines(out_dir / "staff.jsonl", (_ENCODE(staff_record(m)) for m in force.staff))
    _write_lines(out_dir / "subjects.jsonl", (_ENCODE(subject_record(s)) for s in force.subjects))
    cases = sorted(force.cases, key=lambda c: c.case_ref)
    _write_lines(out_dir / "cases.jsonl", (_ENCODE(case_record(c)) for c in cases))
    duties = sorted((d for m in force.staff for d in m.duties), key=lambda d: (d.start, d.duty_id))
    _write_lines(out_dir / "duties.jsonl", (_ENCODE(duty_record(d)) for d in duties))
    stamps = {e[1]: e[0] for e in events}
    ordered = sorted(
        incidents, key=lambda i: (i.scenario, min(stamps[e] for e in i.event_ids), i.user_id)
    )
    counters: dict[str, int] = {}
    labels = []
    for inc in ordered:
        counters[inc.scenario] = counters.get(inc.scenario, 0) + 1
        labels.append(label_record(f"{inc.scenario}-{counters[inc.scenario]:03d}", inc, stamps))
    doc = {**meta, "incidents": labels}
    (out_dir / "labels.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
