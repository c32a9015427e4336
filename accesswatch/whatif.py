"""Preview a rule change: the current and a proposed pack over the same history.

Alerts are matched by id.  An id is a hash of the rule, the member and the
period, so the same incident under the same rule keeps its id in both runs:
an id only the proposed pack raises is gained, one only the current pack
raises is lost, and one both raise with different content is changed.

``History`` is the machinery: events read once, then one backtest per pack
(``budget.py`` runs many packs over one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import msgspec

from accesswatch.backtest import BacktestResult, ParsedEvents, read_events, run_backtest
from accesswatch.core.alerts import Alert
from accesswatch.core.detector import Detector, Model
from accesswatch.reference import ReferenceData
from accesswatch.rules.loader import RulePack

SHOWN = 5  # ids printed per list; --json gives them all
DAY = 86400.0
# Publication bookkeeping, not what the alert says.
_NOT_CONTENT = ("created_at", "updated_at", "version")


@dataclass
class RuleChange:
    """One rule's alerts under the current pack and the proposed one."""

    rule_id: str
    before: int = 0
    after: int = 0
    gained: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


@dataclass
class WhatIf:
    rules: list[RuleChange]
    base: RulePack
    proposed: RulePack
    events: int
    rejected: int
    staff: int
    days: float

    def per_staff_day(self, alerts: int) -> float | None:
        """Alerts per 1,000 staff per day; None without staff to divide by."""
        return alerts * 1000 / self.staff / self.days if self.staff else None

    def total(self) -> RuleChange:
        t = RuleChange("total")
        for r in self.rules:
            t.before += r.before
            t.after += r.after
            t.gained += r.gained
            t.lost += r.lost
            t.changed += r.changed
        return t

    def to_json(self) -> dict[str, Any]:
        def row(r: RuleChange) -> dict[str, Any]:
            return {
                "rule_id": r.rule_id, "before": r.before, "after": r.after,
                "gained": r.gained, "lost": r.lost, "changed": r.changed,
                "change_per_1000_staff_per_day": self.per_staff_day(r.after - r.before),
            }

        total = row(self.total())
        del total["rule_id"]
        return {
            "base": {"source": self.base.source, "version": self.base.version},
            "proposed": {"source": self.proposed.source, "version": self.proposed.version},
            "events": self.events, "rejected": self.rejected,
            "staff": self.staff, "days": self.days,
            "rules": [row(r) for r in self.rules], "total": total,
        }

    def to_text(self) -> str:
        lines = [
            f"current  {self.base.source} (version {self.base.version})",
            f"proposed {self.proposed.source} (version {self.proposed.version})",
            f"over {self.events:,} events ({self.rejected:,} rejected), {self.staff:,} staff, "
            f"{self.days:.2f} days",
            "",
            f"{'rule':<10}{'before':>8}{'after':>8}{'gained':>8}{'lost':>8}{'changed':>9}"
            "  per 1,000 staff/day",
        ]
        for r in [*self.rules, self.total()]:
            rate = self.per_staff_day(r.after - r.before)
            shown = "n/a" if rate is None else f"{rate:+.2f}"
            lines.append(
                f"{r.rule_id:<10}{r.before:>8,}{r.after:>8,}{len(r.gained):>8,}"
                f"{len(r.lost):>8,}{len(r.changed):>9,}  {shown}"
            )
            if r.rule_id != "total":
                lines += [f"  {what}: {_some(ids)}" for what, ids in
                          (("gained", r.gained), ("lost", r.lost), ("changed", r.changed)) if ids]
        return "\n".join(lines)


def _some(ids: list[str]) -> str:
    more = f" … and {len(ids) - SHOWN} more" if len(ids) > SHOWN else ""
    return ", ".join(ids[:SHOWN]) + more


def compare(before: dict[str, Alert], after: dict[str, Alert]) -> list[RuleChange]:
    """Per rule that raised anything under either pack, by rule id; ids in evidence order."""
    rules: dict[str, RuleChange] = {}

    def of(alert: Alert) -> RuleChange:
        return rules.setdefault(alert.rule_id, RuleChange(alert.rule_id))

    for alert in sorted(before.values(), key=_order):
        of(alert).before += 1
        if alert.alert_id not in after:
            of(alert).lost.append(alert.alert_id)
        elif _content(alert) != _content(after[alert.alert_id]):
            of(alert).changed.append(alert.alert_id)
    for alert in sorted(after.values(), key=_order):
        of(alert).after += 1
        if alert.alert_id not in before:
            of(alert).gained.append(alert.alert_id)
    return [rules[k] for k in sorted(rules)]


def _order(alert: Alert) -> tuple[str, str]:
    return (alert.first_seen, alert.alert_id)


def _content(alert: Alert) -> dict[str, Any]:
    content: dict[str, Any] = msgspec.to_builtins(alert)
    for key in _NOT_CONTENT:
        content.pop(key, None)
    return content


@dataclass
class History:
    """Events read once, with their reference data: run pack after pack over them."""

    events: ParsedEvents
    ref: ReferenceData
    model: Model | None = None
    jobs: int = 1
    progress: bool = False

    @classmethod
    def read(
        cls, path: Path, ref: ReferenceData, *, model: Model | None = None, jobs: int = 1,
        progress: bool = False,
    ) -> History:
        return cls(read_events(path, progress=progress), ref, model, jobs, progress)

    @property
    def staff(self) -> int:
        return len(self.ref.staff)

    @cached_property
    def days(self) -> float:
        """The events' event-time span in days, first to last, at least 1."""
        times = [e.t for e in self.events.events]
        return max((max(times) - min(times)) / DAY, 1.0) if times else 1.0

    def run(self, pack: RulePack) -> BacktestResult:
        """A backtest of ``pack`` (with the model, if any) over the history."""
        detector = Detector(pack, self.ref, model=self.model)
        return run_backtest(self.events, self.ref, detector=detector, jobs=self.jobs,
                            progress=self.progress)


def run_whatif(
    events_path: Path,
    ref: ReferenceData,
    base: RulePack,
    proposed: RulePack,
    *,
    model: Model | None = None,
    jobs: int = 1,
    progress: bool = False,
) -> WhatIf:
    """Backtest both packs over the same events and reference data; compare their alerts."""
    history = History.read(events_path, ref, model=model, jobs=jobs, progress=progress)
    results = [history.run(pack) for pack in (base, proposed)]
    return WhatIf(
        rules=compare(results[0].alerts, results[1].alerts),
        base=base,
        proposed=proposed,
        events=results[0].events,
        rejected=results[0].rejected,
        staff=history.staff,
        days=history.days,
    )
