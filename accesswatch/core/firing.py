"""What a rule check returns when it matches."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Firing:
    event_ids: list[str]
    reasons: list[str]
    subject_ids: list[str] = field(default_factory=list)
    first_t: float | None = None  # earliest evidence time, when it is not this event's

    @property
    def count(self) -> int:
        return len(self.event_ids)
