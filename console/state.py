"""The console's state and the views the API serves from it (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from accesswatch.core import Alert
from console.store import AlertStore, EventIndex, Hub, StaffDirectory
from console.triage import Decision, TriageBook

SEVERITIES = ("critical", "high", "medium", "low")
SORTS = ("risk", "newest")
MEMBER_HISTORY = 50


@dataclass
class ConsoleState:
    alerts: AlertStore
    events: EventIndex
    staff: StaffDirectory = field(default_factory=StaffDirectory)
    triage: TriageBook = field(default_factory=TriageBook)
    hub: Hub = field(default_factory=Hub)
    # Which feeds have caught up with the end offsets they saw at start.
    caught_up: dict[str, bool] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return bool(self.caught_up) and all(self.caught_up.values())

    # --- changes, each announced to the live listeners ---------------------
    def add_alert(self, alert: Alert) -> bool:
        """Hold ``alert`` if it is new or newer than the version held; True when it was."""
        if self.alerts.add(alert) == "stale":
            return False
        if self.hub.listeners:  # none while the backlog is read at start
            self.hub.publish("alert", summary(self, alert))
        return True

    def apply_decision(self, decision: Decision) -> None:
        if self.triage.apply(decision):
            alert = self.alerts.get(decision.alert_id)
            if alert is not None and self.hub.listeners:
                self.hub.publish("alert", summary(self, alert))


def summary(state: ConsoleState, alert: Alert) -> dict[str, Any]:
    """One row of the feed."""
    d = state.triage.get(alert.alert_id)
    return {
        "alert_id": alert.alert_id, "created_at": alert.created_at,
        "user_id": alert.user_id, "rule_id": alert.rule_id, "title": alert.title,
        "severity": alert.severity, "score": alert.score, "count": alert.count,
        "area": state.staff.area(alert.user_id), "status": d.status if d else "new",
        "assignee": d.assignee if d else None, "reason": alert.reasons[0],
        "last_seen": alert.last_seen, "version": alert.version,
        "updated_at": alert.updated_at,
    }


def listing(state: ConsoleState, *, severity: str = "", rule: str = "", area: str = "",
            status: str = "", sort: str = "risk", limit: int = 500) -> dict[str, Any]:
    """The feed, filtered and sorted, with the choices each filter offers."""
    rows = [summary(state, a) for a in state.alerts.alerts.values()]
    choices = {
        "severity": [s for s in SEVERITIES if any(r["severity"] == s for r in rows)],
        "rule": sorted({r["rule_id"] for r in rows}),
        "area": sorted({r["area"] for r in rows}),
        "status": sorted({r["status"] for r in rows}),
    }
    wanted = {"severity": severity, "rule_id": rule, "area": area, "status": status}
    rows = [r for r in rows if all(not v or r[k] == v for k, v in wanted.items())]
    if sort == "newest":
        rows.sort(key=lambda r: r["created_at"], reverse=True)
    else:  # risk: the highest score first, the newest first among equals
        rows.sort(key=lambda r: (r["score"], r["created_at"]), reverse=True)
    return {"alerts": rows[:limit], "total": len(rows), "choices": choices,
            "ready": state.ready}


def detail(state: ConsoleState, alert: Alert) -> dict[str, Any]:
    """Everything the detail pane shows: reasons, evidence, model, member history, triage."""
    evidence = [state.events.get(eid) for eid in alert.event_ids]
    member = state.alerts.of_member(alert.user_id)[-MEMBER_HISTORY:]
    info = state.staff.members.get(alert.user_id)
    d = state.triage.get(alert.alert_id)
    return {
        "alert": msgspec.to_builtins(alert),
        "summary": summary(state, alert),
        "member": msgspec.to_builtins(info) if info else None,
        "evidence": [msgspec.to_builtins(e) for e in evidence if e is not None],
        "evidence_missing": [eid for eid, e in zip(alert.event_ids, evidence, strict=True)
                             if e is None],
        "history": [{"alert_id": a.alert_id, "created_at": a.created_at, "rule_id": a.rule_id,
                     "title": a.title, "severity": a.severity, "score": a.score,
                     "status": state.triage.status_of(a.alert_id)} for a in member],
        "triage": msgspec.to_builtins(d) if d else None,
    }
