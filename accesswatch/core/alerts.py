"""Alerts exactly as ``alert.schema.json``: deterministic ids by rule, member and period."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

import msgspec

MAX_EVIDENCE = 100  # event and subject ids an alert lists (``count`` counts them all)
_SEVERITY_SCORE = {"low": 30.0, "medium": 50.0, "high": 70.0, "critical": 85.0}


class Alert(msgspec.Struct, omit_defaults=True):
    alert_id: str
    created_at: str
    user_id: str
    rule_id: str
    title: str
    severity: Literal["low", "medium", "high", "critical"]
    score: float
    event_ids: list[str]
    reasons: list[str]
    first_seen: str
    last_seen: str
    count: int
    subject_ids: list[str] = msgspec.field(default_factory=list)
    model: dict[str, Any] | None = None
    # Living record (contract v1.1): 1 when first published, +1 each time it is
    # published again with more evidence; ``updated_at`` is that publish time.
    version: int = 1
    updated_at: str | None = None


def alert_id(rule_id: str, user_id: str, period_start: float) -> str:
    """Same rule, member and period → same id, whatever the delivery order."""
    digest_ = hashlib.blake2b(
        f"{rule_id}\x1f{user_id}\x1f{period_start:.0f}".encode(), digest_size=10
    )
    return "aw-" + digest_.hexdigest()


# Periods are counted from a Monday, so seven-day periods run Monday to Sunday.
_MONDAY = 4 * 86400.0


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def period(t: float, length: float, zone: str) -> tuple[float, float]:
    """The period of local time holding ``t``: (start, end) as POSIX seconds.

    Periods are ``length`` long in local wall-clock time, counted from local
    midnight on Monday 5 January 1970: a 24 h fold is the local day, 7 d a week
    from Monday.  Across a clock change a day is 23 or 25 hours.

    >>> period(1772438400.0, 86400.0, "Europe/London")   # 2026-03-02T08:00Z
    (1772409600.0, 1772496000.0)
    """
    tz = _zone(zone)
    local = datetime.fromtimestamp(t, tz).replace(tzinfo=None)
    since = (local - _EPOCH).total_seconds() - _MONDAY
    start_local = _EPOCH + timedelta(seconds=since - since % length + _MONDAY)
    end_local = start_local + timedelta(seconds=length)
    return (
        start_local.replace(tzinfo=tz).timestamp(),
        end_local.replace(tzinfo=tz).timestamp(),
    )


_EPOCH = datetime(1970, 1, 1)
_content = msgspec.json.Encoder()


def digest(alert: Alert) -> int:
    """A fingerprint of an alert's content (as the core keeps it: no publish fields)."""
    return int.from_bytes(hashlib.blake2b(_content.encode(alert), digest_size=8).digest(), "big")


def record(alert: Alert, created_at: str) -> Alert:
    """A copy of the core's alert to hand a driver, which the core will not change."""
    copy = msgspec.json.decode(_content.encode(alert), type=Alert)
    copy.created_at = created_at
    return copy


def score(severity: str, count: int) -> float:
    """Severity sets the band; repetition lifts it a little, never past 100."""
    return round(min(100.0, _SEVERITY_SCORE[severity] + 3.0 * math.log2(max(count, 1))), 1)
