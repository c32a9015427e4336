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
# Misuse shaped to stay under the rules' thresholds (``generate --variants``):
# scored in a block of their own, to show what the model adds.
VARIANTS = {
    "V08": "slow_harvest",
    "V09": "enumeration_bursts",
    "V12": "spread_export",
    "V13": "out_of_area_circle",
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
    # Alerts sharing an event with each detected incident: one analyst's worth of
    # work per incident is the aim, so the mean and the worst case both matter.
    per_incident: list[int] = field(default_factory=list)
    variants: list[ScenarioScore] = field(default_factory=list)
    evidence: ModelEvidence | None = None

    @property
    def variant_recall(self) -> float | None:
        """Recall over every variant incident (``generate --variants``); None without any."""
        n = sum(v.incidents for v in self.variants)
        return sum(v.detected for v in self.variants) / n if n else None

    @property
    def alerts_per_incident(self) -> tuple[float, int]:
        """(mean, max) alerts per detected incident; (0, 0) when none was detected."""
        if not self.per_incident:
            return 0.0, 0
        return sum(self.per_incident) / len(self.per_incident), max(self.per_incident)

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
            "alerts_per_detected_incident": {
                "mean": round(self.alerts_per_incident[0], 3),
                "max": self.alerts_per_incident[1],
            },
            "variants": [{**asdict(s), "recall": s.recall} for s in self.variants],
            "variant_recall": self.variant_recall,
            "model_evidence": None if self.evidence is None else self.evidence.to_json(),
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
            "alerts per detected incident: mean {:.2f}, max {}".format(*self.alerts_per_incident),
            "",
            f"{'rule':<10} {'alerts':>7} {'true':>6} {'false':>6}",
        ]
        for rule_id, c in sorted(self.by_rule.items()):
            lines.append(f"{rule_id:<10} {c['alerts']:>7} {c['true']:>6} {c['false']:>6}")
        if self.variants:
            lines += ["", f"{'variant':<22} {'incidents':>9} {'detected':>9} {'recall':>7}"]
            for s in self.variants:
                recall = "-" if s.recall is None else f"{s.recall:.2f}"
                lines.append(
                    f"{s.scenario} {s.name:<18} {s.incidents:>9} {s.detected:>9} {recall:>7}"
                )
            n, found = (sum(v.incidents for v in self.variants),
                        sum(v.detected for v in self.variants))
            lines.append(f"{'all variants':<22} {n:>9} {found:>9} {self.variant_recall:>7.2f}")
        if self.evidence is not None:
            lines += ["", self.evidence.to_text()]
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
    by_user: dict[str, list[set[str]]] = {}
    for alert in alerts:
        by_user.setdefault(alert["user_id"], []).append(set(alert["event_ids"]))
    total: Counter[str] = Counter()
    detected: Counter[str] = Counter()
    missed = []
    per_incident = []
    for inc in incidents:
        total[inc["scenario"]] += 1
        labelled_here = set(inc["event_ids"])
        theirs = by_user.get(inc["user_id"], ())
        hits = sum(1 for ids in theirs if not ids.isdisjoint(labelled_here))
        if hits:
            detected[inc["scenario"]] += 1
            per_incident.append(hits)
            if inc["scenario"] in VARIANTS:  # not in the scenarios' alerts per incident
                per_incident.pop()
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
    codes = sorted((set(SCENARIOS) | set(total)) - set(VARIANTS))
    scores = [ScenarioScore(c, SCENARIOS.get(c, "?"), total[c], detected[c]) for c in codes]
    variants = [ScenarioScore(c, name, total[c], detected[c])
                for c, name in VARIANTS.items() if total[c]]
    return Scorecard(
        scores,
        len(alerts),
        false,
        int(labels.get("staff", 0)),
        days,
        by_rule,
        missed,
        per_incident,
        variants,
        model_evidence(labels["incidents"], alerts),
    )


@dataclass
class ModelEvidence:
    """How much of the true model alerts' evidence is their incident's own events.

    An alert another rule's firings joined (a reason "also AW-…") holds that
    rule's evidence too, so the share is also given for the alerts the model
    raised alone: its own evidence.
    """

    alerts: int = 0  # true model alerts
    event_ids: int = 0  # the event ids they list
    inside: int = 0  # ... that are labelled events of the member's incident
    worst: float = 1.0  # the lowest share of any one alert
    alone: int = 0  # true model alerts no other rule joined
    alone_ids: int = 0
    alone_inside: int = 0

    @property
    def share(self) -> float | None:
        return self.inside / self.event_ids if self.event_ids else None

    @property
    def alone_share(self) -> float | None:
        return self.alone_inside / self.alone_ids if self.alone_ids else None

    def add(self, ids: set[str], inside: int, joined: bool) -> None:
        self.alerts += 1
        self.event_ids += len(ids)
        self.inside += inside
        self.worst = min(self.worst, inside / len(ids))
        if not joined:
            self.alone += 1
            self.alone_ids += len(ids)
            self.alone_inside += inside

    def to_json(self) -> dict[str, Any]:
        share, alone = self.share, self.alone_share
        return {**asdict(self), "share": None if share is None else round(share, 4),
                "alone_share": None if alone is None else round(alone, 4)}

    def to_text(self) -> str:
        if self.share is None:
            return "model evidence inside its incident: - (no true model alert)"
        text = (
            f"model evidence inside its incident: {self.share:.0%} of {self.event_ids} event ids "
            f"in {self.alerts} true model alerts (worst alert {self.worst:.0%})"
        )
        if self.alone_share is not None:
            text += f"; in the {self.alone} no other rule joined, {self.alone_share:.0%}"
        return text


def model_evidence(
    incidents: list[dict[str, Any]], alerts: list[dict[str, Any]]
) -> ModelEvidence | None:
    """For each true model alert (``AW-M``…), the share of its event ids that are labelled
    events of the incident it describes (the member's incidents it shares an event with).

    None when no alert is the model's.
    """
    model = [a for a in alerts if a["rule_id"].startswith("AW-M")]
    if not model:
        return None
    mine: dict[str, list[set[str]]] = {}
    for inc in incidents:
        mine.setdefault(inc["user_id"], []).append(set(inc["event_ids"]))
    out = ModelEvidence()
    for alert in model:
        ids = set(alert["event_ids"])
        hit = [labelled for labelled in mine.get(alert["user_id"], ()) if ids & labelled]
        if hit:
            joined = any(r.startswith("also AW-") for r in alert.get("reasons", ()))
            out.add(ids, len(ids & set().union(*hit)), joined)
    return out


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
