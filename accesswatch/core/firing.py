"""What a rule check returns when it matches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# One piece of evidence: starts with (event time, event_id), the order evidence is
# counted in (a window's entries serve as they are).
Evidence = (
    tuple[float, str] | tuple[float, str, str | None] | tuple[float, str, str | None, bool]
)


@dataclass(slots=True)
class Firing:
    evidence: Sequence[Evidence]  # in event-time order, the triggering event last; never kept
    reasons: list[str]
    subject_ids: list[str] = field(default_factory=list)

    @property
    def event_ids(self) -> list[str]:
        return [e[1] for e in self.evidence]

    @property
    def first_t(self) -> float:
        return self.evidence[0][0]

    @property
    def count(self) -> int:
        return len(self.evidence)
