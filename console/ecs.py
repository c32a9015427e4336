"""Alerts as Elastic Common Schema documents, for a SIEM.

>>> from accesswatch.core import Alert
>>> a = Alert("aw-1", "2026-03-02T09:14:03Z", "E00412", "AW-011", "Leaver account used",
...           "critical", 85.0, ["e1"], ["account E00412 is a leaver"],
...           "2026-03-02T09:14:00Z", "2026-03-02T09:14:00Z", 1)
>>> doc = to_ecs(a)
>>> doc["event"]["kind"], doc["rule"]["id"], doc["event"]["severity"], doc["user"]["id"]
('alert', 'AW-011', 99, 'E00412')
>>> doc["event"]["id"], {k: doc["accesswatch"]["alert"][k] for k in ("version", "update")}
('aw-1', {'version': 1, 'update': False})

An alert re-published with more evidence (contract v1.1) gives the same
``event.id`` and a higher ``accesswatch.alert.version``: a SIEM that indexes by
``event.id`` overwrites the document it holds.
"""

from __future__ import annotations

from typing import Any

import msgspec

from accesswatch.core import Alert
from console.store import StaffInfo
from console.triage import Decision

ECS_VERSION = "8.11.0"
# ECS wants a number; these are the bands Elastic's own detection rules use.
SEVERITY_NUMBER = {"low": 21, "medium": 47, "high": 73, "critical": 99}


def to_ecs(alert: Alert, *, member: StaffInfo | None = None,
           decision: Decision | None = None) -> dict[str, Any]:
    """One ECS document; accesswatch's own fields go under ``accesswatch.*``."""
    doc: dict[str, Any] = {
        "@timestamp": alert.created_at,
        "ecs": {"version": ECS_VERSION},
        "message": f"{alert.title}: " + "; ".join(alert.reasons),
        "event": {
            "kind": "alert", "category": ["intrusion_detection"], "type": ["info"],
            "id": alert.alert_id, "created": alert.created_at,
            "start": alert.first_seen, "end": alert.last_seen,
            "severity": SEVERITY_NUMBER[alert.severity],
            "risk_score": alert.score, "risk_score_norm": alert.score,
            "reason": alert.reasons[0],
            "dataset": "accesswatch.alert", "module": "accesswatch", "provider": "accesswatch",
        },
        "rule": {"id": alert.rule_id, "name": alert.title, "ruleset": "accesswatch"},
        "user": {"id": alert.user_id},
        "related": {"user": [alert.user_id]},
        "labels": {"accesswatch_severity": alert.severity},
        "observer": {"vendor": "accesswatch", "product": "accesswatch", "type": "monitor"},
        "accesswatch": {
            "alert": {"count": alert.count, "event_ids": list(alert.event_ids),
                      "subject_ids": list(alert.subject_ids), "reasons": list(alert.reasons),
                      "severity": alert.severity, "version": alert.version,
                      "update": alert.version > 1},
        },
    }
    if alert.updated_at is not None:
        doc["accesswatch"]["alert"]["updated_at"] = alert.updated_at
    if member is not None:
        doc["user"]["roles"] = [member.role]
        doc["accesswatch"]["member"] = msgspec.to_builtins(member)
    if alert.model:
        doc["accesswatch"]["model"] = alert.model
    if decision is not None:
        # Who decided what, not the note: free text may name people.
        doc["accesswatch"]["triage"] = {"status": decision.status, "by": decision.by,
                                        "at": decision.at, "assignee": decision.assignee}
    return doc
