"""Alerts exactly as ``alert.schema.json``, with deterministic ids and folding."""

from __future__ import annotations

import hashlib
import math
from typing import Any, Literal

import msgspec

MAX_EVIDENCE = 100
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


class Fired(msgspec.Struct, gc=False):
    """What the core hands its driver: a new alert, or a firing folded into one.

    A folded firing carries the same ``alert_id``, ``count`` of the events it
    adds and its own ``event_ids``; ``merge`` applies it to the open alert.
    ``at`` is the position, in the batch given to the detector, of the event
    that fired it (a driver that merges several runs orders alerts by it).
    """

    alert: Alert
    folded: bool
    at: int = 0


def alert_id(rule_id: str, user_id: str, trigger_event_id: str) -> str:
    """Same rule, member and triggering event → same id, on any replay."""
    digest = hashlib.blake2b(
        f"{rule_id}\x1f{user_id}\x1f{trigger_event_id}".encode(), digest_size=10
    )
    return "aw-" + digest.hexdigest()


def score(severity: str, count: int) -> float:
    """Severity sets the band; repetition lifts it a little, never past 100."""
    return round(min(100.0, _SEVERITY_SCORE[severity] + 3.0 * math.log2(max(count, 1))), 1)


def merge(alert: Alert, firing: Alert) -> None:
    """Fold a later firing into an open alert: count it, keep its evidence."""
    alert.count += firing.count
    alert.last_seen = max(alert.last_seen, firing.last_seen)
    for eid in firing.event_ids:
        if len(alert.event_ids) >= MAX_EVIDENCE:
            break
        if eid not in alert.event_ids:
            alert.event_ids.append(eid)
    for sid in firing.subject_ids:
        if sid not in alert.subject_ids and len(alert.subject_ids) < MAX_EVIDENCE:
            alert.subject_ids.append(sid)
    alert.score = score(alert.severity, alert.count)
