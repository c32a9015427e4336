"""What ``accesswatch budget`` found: alerts a day per rule now and proposed, recall
per scenario, and the changes to make, as tables or JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec

from accesswatch.core.alerts import Alert
from accesswatch.rules.loader import RulePack


@dataclass
class Row:
    """One alerting rule: its knob (None: fixed), the value now and proposed, alerts a day."""

    rule_id: str
    kind: str
    knob: str | None
    now: Any
    proposed: Any
    per_day_now: float
    per_day_proposed: float


@dataclass
class Recall:
    scenario: str
    name: str
    incidents: int
    now: float | None
    proposed: float | None


@dataclass
class Budget:
    """The report: every alerting rule, the totals, the changes and the pack with them."""

    per_day: float
    base: RulePack
    rows: list[Row]
    changes: dict[str, dict[str, str]]  # rule id → field → value, as YAML text
    text: str  # the pack with the changes, comments and all
    events: int
    rejected: int
    staff: int
    days: float
    runs: int
    seconds: float
    recall: list[Recall] = field(default_factory=list)
    false_per_day: tuple[float, float] | None = None

    def total(self) -> tuple[float, float]:
        return (sum(r.per_day_now for r in self.rows), sum(r.per_day_proposed for r in self.rows))

    def add_recall(
        self, labels: dict[str, Any], now: dict[str, Alert], proposed: dict[str, Alert]
    ) -> None:
        """Each scenario's recall on ``labels`` with the alerts now and proposed."""
        from accesswatch.evaluate import evaluate

        cards = [
            evaluate(labels, [msgspec.to_builtins(a) for a in alerts.values()])
            for alerts in (now, proposed)
        ]
        for before, after in zip(cards[0].scenarios, cards[1].scenarios, strict=True):
            self.recall.append(
                Recall(before.scenario, before.name, before.incidents, before.recall, after.recall)
            )
        self.false_per_day = (cards[0].false_alerts / self.days, cards[1].false_alerts / self.days)

    def snippet(self) -> str:
        """The changes as the ``rules:`` entries to edit, each saying what it was."""
        was = {(r.rule_id, r.knob): r.now for r in self.rows}
        lines = ["rules:"]
        for rule_id, fields in self.changes.items():
            lines.append(f"  - id: {rule_id}")
            lines += [
                f"    {name}: {value}  # was {was.get((rule_id, name))}"
                for name, value in fields.items()
            ]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        now, proposed = self.total()
        out: dict[str, Any] = {
            "per_day": self.per_day,
            "pack": {"source": self.base.source, "version": self.base.version},
            "events": self.events,
            "rejected": self.rejected,
            "staff": self.staff,
            "days": self.days,
            "runs": self.runs,
            "rules": [asdict(r) for r in self.rows],
            "total": {"per_day_now": now, "per_day_proposed": proposed},
            "changes": self.changes,
        }
        if self.false_per_day is not None:
            out["recall"] = [asdict(r) for r in self.recall]
            out["false_per_day"] = dict(zip(("now", "proposed"), self.false_per_day, strict=True))
        return out

    def to_text(self) -> str:
        lines = [
            f"budget: at most {self.per_day:g} alerts a day; pack {self.base.source} "
            f"(version {self.base.version})",
            f"over {self.events:,} events ({self.rejected:,} rejected), {self.staff:,} staff, "
            f"{self.days:.2f} days; {self.runs} backtest runs in {self.seconds:.0f} s",
            "",
            f"{'rule':<9}{'kind':<16}{'knob':<13}{'now':>6}{'a day':>8}"
            f"{'proposed':>10}{'a day':>8}",
        ]
        for r in self.rows:
            moved = " *" if r.now != r.proposed else ""
            lines.append(
                f"{r.rule_id:<9}{r.kind:<16}{r.knob or '-':<13}{r.now or '-':>6}"
                f"{r.per_day_now:>8.2f}{r.proposed or '-':>10}{r.per_day_proposed:>8.2f}{moved}"
            )
        now, proposed = self.total()
        lines.append(f"{'total':<44}{now:>8.2f}{'':>10}{proposed:>8.2f}")
        if self.false_per_day is not None:
            lines += ["", f"{'scenario':<23}{'incidents':>9}{'recall now':>12}{'proposed':>10}"]
            for c in self.recall:
                lines.append(
                    f"{c.scenario} {c.name:<19}{c.incidents:>9}{_share(c.now):>12}"
                    f"{_share(c.proposed):>10}"
                )
            before, after = self.false_per_day
            lines.append(f"{'false alerts a day':<32}{before:>12.2f}{after:>10.2f}")
        lines.append("")
        if not self.changes:
            lines.append("within the budget as it is: no change proposed")
        else:
            lines += [
                "proposed (* above; `--write FILE` writes the pack with them, and "
                "`accesswatch whatif --rules FILE` previews it):",
                self.snippet(),
            ]
        return "\n".join(lines)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
