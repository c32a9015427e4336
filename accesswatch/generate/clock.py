"""Time as integer milliseconds since the Unix epoch, and its wire forms.

Integers keep a million events cheap to sort; rosters are written in UK wall
time, so the Europe/London offset is computed here without a tz database.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache

SECOND = 1_000
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000

_EPOCH = date(1970, 1, 1)


def to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt.isoformat()}: a zone is required")
    return int(dt.timestamp() * 1000)


@cache
def date_text(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).isoformat()


def _last_sunday(year: int, month: int) -> date:
    d = date(year, month, 31)
    return d - timedelta(days=(d.weekday() + 1) % 7)


@cache
def _bst(year: int) -> tuple[int, int]:
    """UTC instants (ms) at which British Summer Time starts and ends: 01:00 UTC."""
    begin = datetime.combine(_last_sunday(year, 3), datetime.min.time(), UTC) + timedelta(hours=1)
    end = datetime.combine(_last_sunday(year, 10), datetime.min.time(), UTC) + timedelta(hours=1)
    return to_ms(begin), to_ms(end)


def _year(ms: int) -> int:
    return int(date_text(ms // DAY)[:4])


def london_offset(ms: int) -> int:
    begin, end = _bst(_year(ms))
    return HOUR if begin <= ms < end else 0


def local_to_utc(wall_ms: int) -> int:
    """UTC instant of a London wall-clock time given as if it were UTC.

    In the spring gap the wall time does not exist and lands an hour later; in
    the autumn overlap the first (summer-time) reading wins, as rosters do.
    """
    summer = wall_ms - HOUR
    if london_offset(summer) == HOUR:
        return summer
    return wall_ms


def local_day(ms: int) -> int:
    """Days since the epoch of the London calendar date at this instant."""
    return (ms + london_offset(ms)) // DAY


def local_hour(ms: int) -> int:
    return ((ms + london_offset(ms)) % DAY) // HOUR


def _clock(ms: int) -> tuple[str, int, int, int, int]:
    s, milli = divmod(ms, SECOND)
    day, rem = divmod(s, 86_400)
    hh, rem = divmod(rem, 3_600)
    mm, ss = divmod(rem, 60)
    return date_text(day), hh, mm, ss, milli


def utc_text(ms: int) -> str:
    """'2026-03-02T08:15:02Z'."""
    d, hh, mm, ss, _ = _clock(ms)
    return f"{d}T{hh:02d}:{mm:02d}:{ss:02d}Z"


def utc_text_ms(ms: int) -> str:
    """'2026-03-02T08:15:02.123Z'."""
    d, hh, mm, ss, milli = _clock(ms)
    return f"{d}T{hh:02d}:{mm:02d}:{ss:02d}.{milli:03d}Z"


def local_text(ms: int) -> str:
    """London wall time with its offset, '2026-03-02T08:15:02+00:00'."""
    off = london_offset(ms)
    d, hh, mm, ss, _ = _clock(ms + off)
    return f"{d}T{hh:02d}:{mm:02d}:{ss:02d}+0{off // HOUR}:00"


def day_start(day: int) -> int:
    return day * DAY
