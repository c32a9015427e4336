"""The scorecard of scenarios.md: recall per scenario, false alerts per 1,000 staff per day."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accesswatch.contract.timestamps import parse_ts
from accesswatch.errors import AccessWatchError

SCENARIOS = {
    "S01": "self_lookup",
    "S02": "family_lookup",
    "S03": "neighbour_lookup",
    "S04": "colleague_lookup",
    "S05": "flagged_record",
    "S06": "victim_snooping",
    "S07": "repeat_subject",
    "S08": "bulk_harvest",
    "S09": "enumeration",
    "S10": "off_duty",
    "S11": "inactive_account",
    "S12": "bulk_export",
    "S13": "out_of_area",
}


@dataclass
class ScenarioScore:
    scenario: str
    name: str
    incidents: int
    detected: int

    @property
    def recall(self) -> float | None:
        return self.detected / self.incidents if self.incidents else None


@dataclass
class Scorecard:
    scenarios: list[ScenarioScore]
    alerts: int
    false_alerts: int
    staff: int
    days: float
    by_rule: dict[str, dict[str, int]] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)

    @property
    def false_per_1000_staff_day(self) -> float:
        return (
            self.false_alerts / (self.staff / 1000) / self.days if self.staff and self.days else 0.0
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "scenarios": [{**asdict(s), "recall": s.recall} for s in self.scenarios],
            "alerts": self.alerts,
            "false_alerts": self.false_alerts,
            "false_alerts_per_1000_staff_per_day": round(self.false_per_1000_staff_day, 3),
            "staff": self.staff,
            "days": self.days,
            "by_rule": self.by_rule,
            "missed": self.missed,
        }

    def to_text(self) -> str:
        lines = [f"{'scenario':<22} {'incidents':>9} {'detected':>9} {'recall':>7}"]
        for s in self.scenarios:
            recall = "-" if s.recall is None else f"{s.recall:.2f}"
            lines.append(f"{s.scenario} {s.name:<18} {s.incidents:>9} {s.detected:>9} {recall:>7}")
        lines += [
            "",
            f"alerts {self.alerts}, false alerts {self.false_alerts} "
            f"({self.false_per_1000_staff_day:.2f} per 1,000 staff per day; "
            f"{self.staff} staff, {self.days:g} days)",
            "",
            f"{'rule':<10} {'alerts':>7} {'true':>6} {'false':>6}",
        ]
        for rule_id, c in sorted(self.by_rule.items()):
            lines.append(f"{rule_id:<10} {c['alerts']:>7} {c['true']:>6} {c['false']:>6}")
        if self.missed:
            lines += ["", "missed incidents: " + ", ".join(self.missed)]
        return "\n".join(lines)


def evaluate(
    labels: dict[str, Any], alerts: list[dict[str, Any]], *, since: float | None = None
) -> Scorecard:
    """Score alerts against labelled incidents, exactly as scenarios.md defines it.

    ``since`` scores only a later period (a model trained on the earlier one):
    incidents that start then and alerts last seen then; the day count shrinks
    to match.
    """
    incidents = labels["incidents"]
    # Any labelled event makes an alert true, whichever period its incident began in.
    labelled: set[str] = {eid for inc in incidents for eid in inc["event_ids"]}
    days = float(labels.get("days", 0))
    if since is not None:
        start = min(
            [parse_ts(i["first_ts"]) for i in incidents]
            + [parse_ts(a["first_seen"]) for a in alerts]
            + [since]
        )
        incidents = [i for i in incidents if parse_ts(i["first_ts"]) >= since]
        alerts = [a for a in alerts if parse_ts(a["last_seen"]) >= since]
        days = max(0.0, days - max(0.0, since - _day_start(start)) / 86400)
    by_user: dict[str, set[str]] = {}
    for alert in alerts:
        by_user.setdefault(alert["user_id"], set()).update(alert["event_ids"])
    total: Counter[str] = Counter()
    detected: Counter[str] = Counter()
    missed = []
    for inc in incidents:
        total[inc["scenario"]] += 1
        if by_user.get(inc["user_id"], set()).intersection(inc["event_ids"]):
            detected[inc["scenario"]] += 1
        else:
            missed.append(f"{inc['scenario']}:{inc['incident_id']}")
    by_rule: dict[str, dict[str, int]] = {}
    false = 0
    for alert in alerts:
        c = by_rule.setdefault(alert["rule_id"], {"alerts": 0, "true": 0, "false": 0})
        c["alerts"] += 1
        if labelled.intersection(alert["event_ids"]):
            c["true"] += 1
        else:
            c["false"] += 1
            false += 1
    codes = sorted(set(SCENARIOS) | set(total))
    scores = [ScenarioScore(c, SCENARIOS.get(c, "?"), total[c], detected[c]) for c in codes]
    return Scorecard(scores, len(alerts), false, int(labels.get("staff", 0)), days, by_rule, missed)


def _day_start(t: float) -> float:
    return t - t % 86400


LABEL_FIELDS = ("incident_id", "scenario", "user_id", "event_ids", "first_ts")
ALERT_FIELDS = ("alert_id", "user_id", "rule_id", "event_ids", "first_seen", "last_seen")


def load_labels(path: Path) -> dict[str, Any]:
    """The labels ``accesswatch generate`` wrote, or ``AccessWatchError`` saying what is wrong."""
    where = f"--labels {path}"
    hint = "give the labels.json that `accesswatch generate` wrote"
    try:
        labels = json.loads(path.read_bytes())
    except json.JSONDecodeError as e:
        raise AccessWatchError(f"{where}:{e.lineno}: not valid JSON ({e.msg}); {hint}") from None
    except UnicodeDecodeError:
        raise AccessWatchError(f"{where}: not UTF-8 text; {hint}") from None
    if not isinstance(labels, dict) or not isinstance(labels.get("incidents"), list):
        raise AccessWatchError(f'{where}: not a labels file (no "incidents" list); {hint}')
    for n, incident in enumerate(labels["incidents"], 1):
        lacking = [k for k in LABEL_FIELDS if not isinstance(incident, dict) or k not in incident]
        if lacking:
            raise AccessWatchError(f"{where}: incident {n} lacks {', '.join(lacking)}; {hint}")
    return labels


def load_alerts(path: Path) -> list[dict[str, Any]]:
    """The alerts JSONL a backtest wrote, or ``AccessWatchError`` naming the line at fault."""
    where = f"--alerts {path}"
    hint = "give the alerts file `accesswatch backtest --out` wrote (one alert a line)"
    alerts = []
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                alert = json.loads(line)
            except json.JSONDecodeError as e:
                raise AccessWatchError(f"{where}:{n}: not valid JSON ({e.msg}); {hint}") from None
            except UnicodeDecodeError:
                raise AccessWatchError(f"{where}:{n}: not UTF-8 text; {hint}") from None
            lacking = [k for k in ALERT_FIELDS if not isinstance(alert, dict) or k not in alert]
            if lacking:
                raise AccessWatchError(f"{where}:{n}: not an alert, it lacks "
                                       f"{', '.join(lacking)}; {hint}")
            alerts.append(alert)
    return alerts
