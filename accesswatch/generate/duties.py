"""The duty roster: shift patterns per role, leave, and overtime.

Shifts are set in UK wall time and converted to UTC, so a night shift that
spans the clocks changing is an hour shorter or longer, as in life.
"""

from __future__ import annotations

import random

from .clock import DAY, MINUTE, date_text, local_day, local_to_utc
from .model import Duty, Staff

Shift = tuple[str, int, int]  # kind, start minute of the local day, length in minutes


def _weekday(day: int) -> int:
    return (day + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0


def _cycle(day: int, phase: int, first: Shift, second: Shift) -> list[Shift]:
    """Four on, four off: two of the first shift, two of the second."""
    c = (day + phase) % 8
    if c < 2:
        return [first]
    if c < 4:
        return [second]
    return []


def _shifts(rota: str, day: int, phase: int, variant: int, rng: random.Random) -> list[Shift]:
    wd = _weekday(day)
    if rota == "response":
        second = ("night", 22 * 60, 540) if variant == 0 else ("late", 15 * 60, 600)
        return _cycle(day, phase, ("early", 7 * 60, 600), second)
    if rota == "roads":
        return _cycle(day, phase, ("early", 7 * 60, 600), ("late", 16 * 60, 600))
    if rota == "control":
        return _cycle(day, phase, ("day", 7 * 60, 720), ("night", 19 * 60, 720))
    if rota == "neighbourhood":
        if wd in (phase % 7, (phase + 1) % 7):
            return []
        late = ((day + 3) // 7 + variant) % 2 == 1
        return [("late", 14 * 60, 480)] if late else [("early", 8 * 60, 480)]
    if rota == "cid":
        if wd < 5:
            return [("day", (8 + variant) * 60, 540)]
        if wd == 5 and ((day + 3) // 7 + phase) % 4 == 0:
            return [("weekend", 9 * 60, 480)]
        return []
    if rota == "office":
        if wd >= 5:
            return []
        return [("office", 7 * 60 + 30 + 15 * rng.randint(0, 8), 480)]
    if rota == "contractor":
        if wd >= 5 or rng.random() < 0.45:
            return []
        return [("office", 9 * 60, 480)]
    raise ValueError(f"unknown rota {rota!r}")


def _ymd(day: int) -> str:
    return date_text(day).replace("-", "")


def build_duties(rng: random.Random, staff: list[Staff], start: int, days: int) -> list[Duty]:
    """Duty records overlapping the feed for every member who works."""
    end = start + days * DAY
    first = local_day(start) - 1
    out: list[Duty] = []
    for m in staff:
        if not m.works:
            continue
        if rng.random() < 0.01:
            continue  # long-term absence: on the books, no duties
        phase, variant = rng.randrange(8), rng.randrange(2)
        leave: tuple[int, int] = (0, -1)
        if rng.random() < 0.15:
            begin = first + 1 + rng.randrange(max(1, days))
            leave = (begin, begin + rng.randint(2, 5))
        for day in range(first, first + days + 1):
            shifts = _shifts(m.spec.rota, day, phase, variant, rng)
            if leave[0] <= day < leave[1] or (shifts and rng.random() < 0.02):
                continue  # annual leave or a sick day
            if not shifts and rng.random() < 0.02:
                shifts = [("rest_day", 8 * 60, 480)]  # rest-day working
            for k, (kind, minute, length) in enumerate(shifts):
                s = local_to_utc(day * DAY + minute * MINUTE)
                e = local_to_utc(day * DAY + (minute + length) * MINUTE)
                duty = Duty(f"{m.user_id}-{_ymd(day)}-{k + 1}", m.user_id, s, e, kind)
                extra = rng.randint(1, 4) * 60 * MINUTE if rng.random() < 0.06 else 0
                if extra and rng.random() < 0.6:
                    duty.end += extra  # the shift ran on; the roster shows the longer duty
                    extra = 0
                m.duties.append(duty)
                if extra:
                    m.duties.append(
                        Duty(f"{m.user_id}-{_ymd(day)}-ot", m.user_id, e, e + extra, "overtime")
                    )
        m.duties = [d for d in m.duties if d.end > start and d.start < end]
        m.duties.sort(key=lambda d: d.start)
        out.extend(m.duties)
    return out


def distance_to_duty(member: Staff, ts: int) -> int:
    """Milliseconds from ts to the nearest of the member's duties (0 inside one)."""
    best = 1 << 62
    for d in member.duties:
        if d.start <= ts <= d.end:
            return 0
        best = min(best, d.start - ts if ts < d.start else ts - d.end)
    return best
