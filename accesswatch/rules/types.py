"""Typed rules: one msgspec Struct per kind, unknown keys forbidden."""

from __future__ import annotations

import re
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo

import msgspec

Severity = Literal["low", "medium", "high", "critical"]
Status = Literal["experimental", "stable", "deprecated"]
Action = Literal["search", "view", "print", "export", "update"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@cache
def seconds(text: str) -> float:
    """``"30m"`` → 1800.0; ``"7d"`` → 604800.0."""
    m = _DURATION.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 2h or 7d")
    return float(m.group(1)) * _UNIT[m.group(2)]


class Exempt(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Who a rule never fires for: an allow-list, usually a shared ``$list``."""

    users: list[str] = []
    roles: list[str] = []
    units: list[str] = []


class Rule(msgspec.Struct, forbid_unknown_fields=True, frozen=True, tag_field="kind"):
    id: str
    title: str
    severity: Severity
    status: Status = "stable"
    tags: list[str] = []
    description: str = ""
    # Points added to the member's risk score when this rule raises an alert
    # (or, for a signal with alert: false, each time it matches).
    risk: float = 0.0
    alert: bool = True
    # Firings of this rule for one member within this span fold into one alert.
    fold: str = "24h"
    exempt: Exempt = Exempt()

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Z][A-Z0-9]*-[A-Z0-9-]+", self.id):
            raise ValueError(f"id {self.id!r} must look like AW-S01")
        if self.risk < 0:
            raise ValueError("risk must be >= 0")
        for name in _DURATION_FIELDS.intersection(self.__struct_fields__):
            try:
                span = seconds(getattr(self, name))
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
            if span <= 0:
                raise ValueError(f"{name} must be > 0")


_DURATION_FIELDS = {"fold", "window", "lookback", "grace", "half_life"}


class Relationship(Rule, tag="relationship", frozen=True):
    relation: Literal["self", "family", "neighbour", "colleague"] = "self"
    unless_justified: bool = True


class FlaggedRecord(Rule, tag="flagged_record", frozen=True):
    flags: list[str] = []
    unless_justified: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.flags:
            raise ValueError("flags must name at least one flag")


class Victim(Rule, tag="victim", frozen=True):
    flag: str = "victim"


class UnjustifiedAccess(Rule, tag="unjustified_access", frozen=True):
    subject_types: list[str] = msgspec.field(default_factory=lambda: ["person"])


class RepeatSubject(Rule, tag="repeat_subject", frozen=True):
    min_days: int = 3
    lookback: str = "30d"
    subject_types: list[str] = msgspec.field(default_factory=lambda: ["person"])
    timezone: str = "Europe/London"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_days < 2:
            raise ValueError("min_days must be >= 2")


class OffDuty(Rule, tag="off_duty", frozen=True):
    grace: str = "30m"
    # Reasons give times in this zone, as rosters are written.
    timezone: str = "Europe/London"


class Account(Rule, tag="account", frozen=True):
    condition: Literal["inactive_status", "idle", "unknown"] = "inactive_status"
    statuses: list[str] = msgspec.field(default_factory=lambda: ["suspended", "leaver"])
    idle_days: float = 60


class OutOfArea(Rule, tag="out_of_area", frozen=True):
    window: str = "7d"
    min_distinct: int = 4
    subject_types: list[str] = msgspec.field(
        default_factory=lambda: ["person", "incident", "other"]
    )
    unless_justified: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_distinct < 1:
            raise ValueError("min_distinct must be >= 1")


class WindowCount(Rule, tag="window_count", frozen=True):
    window: str = "1h"
    threshold: int = 10
    actions: list[Action] = msgspec.field(
        default_factory=lambda: ["search", "view", "print", "export", "update"]
    )
    distinct_subjects: bool = False
    only_unjustified: bool = False
    opens_only: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.threshold < 2:
            raise ValueError("threshold must be >= 2")
        if not self.actions:
            raise ValueError("actions must name at least one action")


class Volume(Rule, tag="volume", frozen=True):
    """Opens in the last hour or two against the member's usual rate per duty hour."""

    # Each window ending at this open is judged; the longest is kept.
    windows: list[str] = msgspec.field(default_factory=lambda: ["1h", "2h"])
    ratio: float = 3.0
    min_count: int = 15
    min_unjustified_share: float = 0.5
    # The usual rate: opens before the longest window, over the rostered duty
    # hours they fell in, within this lookback.
    lookback: str = "14d"
    # Fewer duty hours of history than this: the member's own rate is not trusted
    # yet, and a window needs ``cold_min_count`` opens.
    warmup_hours: float = 8.0
    cold_min_count: int = 20
    # Checks that are ordinary without a case: they count towards volume, not
    # towards the unjustified share.
    casual_types: list[str] = msgspec.field(default_factory=lambda: ["vehicle", "address"])

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ratio <= 1:
            raise ValueError("ratio must be > 1")
        if not 0 <= self.min_unjustified_share <= 1:
            raise ValueError("min_unjustified_share must be between 0 and 1")
        if not self.windows:
            raise ValueError("windows must name at least one span, like [1h, 2h]")
        for w in self.windows:
            try:
                span = seconds(w)
            except ValueError as e:
                raise ValueError(f"windows: {e}") from None
            if span <= 0:
                raise ValueError("windows must be > 0")


class Risk(Rule, tag="risk", frozen=True):
    threshold: float = 20.0
    half_life: str = "24h"
    rearm_below: float = 0.5


AnyRule = (
    Relationship
    | FlaggedRecord
    | Victim
    | UnjustifiedAccess
    | RepeatSubject
    | OffDuty
    | Account
    | OutOfArea
    | WindowCount
    | Volume
    | Risk
)


class Settings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Work tails off after a case closes: a closed case still justifies access
    # by its assignees for this long (0 = the catalogue's strict reading).
    closed_case_grace: str = "48h"
    # How far behind a member's newest event an event may arrive and still be
    # judged as if it had come in time order; older ones are refused as too_late.
    horizon: str = "24h"
    # Alerts are grouped by periods of local time (a rule's ``fold``) in this zone.
    timezone: str = "Europe/London"
    # One incident, one alert: a rule's firing that would open a new alert joins
    # the member's open alert that holds any of its events, or else whose latest
    # evidence is at most this long before the firing's first (0s: only shared
    # events join).
    episode_gap: str = "1h"
    # False: every rule raises its own alerts, as before episodes were joined.
    one_alert_per_incident: bool = True
    # Contract v1.0's allowance for slightly late events; the horizon replaced it.
    # Still accepted so older packs load; it changes nothing.
    lateness: str = "10m"

    def __post_init__(self) -> None:
        for name in ("closed_case_grace", "horizon", "lateness", "episode_gap"):
            try:
                seconds(getattr(self, name))
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        try:
            _zone_exists(self.timezone)
        except Exception:
            raise ValueError(f"timezone: {self.timezone!r} is not a known time zone") from None


def _zone_exists(name: str) -> None:
    ZoneInfo(name)
