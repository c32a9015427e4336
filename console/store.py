"""What the console holds in memory: alerts, the staff directory, live listeners.

All of it is rebuilt from Kafka on start; all of it is bounded.  The accesses
themselves are on disk, in the access history (``console.history``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, defaultdict
from typing import Any, Literal

import msgspec

from accesswatch.contract.reference import StaffMember
from accesswatch.core import Alert

Added = Literal["new", "updated", "stale"]


class StaffInfo(msgspec.Struct):
    """The directory fields the console shows; names and addresses stay in HR."""

    role: str
    unit: str
    area: str
    status: str

    @classmethod
    def of(cls, m: StaffMember) -> StaffInfo:
        return cls(m.role, m.unit, m.area, m.status)


class StaffDirectory:
    def __init__(self) -> None:
        self.members: dict[str, StaffInfo] = {}

    def upsert(self, user_id: str, info: StaffInfo) -> None:
        self.members[user_id] = info

    def remove(self, user_id: str) -> None:
        self.members.pop(user_id, None)

    def area(self, user_id: str) -> str:
        info = self.members.get(user_id)
        return info.area if info else "unknown"


class AlertStore:
    """Alerts by id in arrival order, and each member's alert ids; at most ``limit``.

    Each id holds its highest version (contract v1.1): a newer version replaces the
    alert's content where it stands, an older or the same one changes nothing.

    >>> store = AlertStore(limit=10)
    >>> a = Alert("aw-1", "2026-03-02T09:14:03Z", "E1", "AW-011", "Leaver account used",
    ...           "critical", 85.0, ["e1"], ["a leaver"], "2026-03-02T09:14:00Z",
    ...           "2026-03-02T09:14:00Z", 1)
    >>> v2 = msgspec.structs.replace(a, version=2, count=2, event_ids=["e1", "e2"])
    >>> store.add(a), store.add(v2), store.add(a), store.get("aw-1").count
    ('new', 'updated', 'stale', 2)
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.alerts: OrderedDict[str, Alert] = OrderedDict()
        self.by_user: dict[str, list[str]] = defaultdict(list)
        self.dropped = 0  # alerts let go over the limit, oldest first; the page says so
        self.evicted: list[Alert] = []  # let go by the last ``add``

    def add(self, alert: Alert) -> Added:
        """Keep ``alert`` if it is new or a newer version of one held."""
        held = self.alerts.get(alert.alert_id)
        if held is not None:
            if alert.version <= held.version:
                return "stale"
            # Assigning to a held key keeps its place: eviction order is first arrival.
            self.alerts[alert.alert_id] = alert
            if held.user_id != alert.user_id:  # ids include the member; never expected
                self._unindex(held)
                self.by_user[alert.user_id].append(alert.alert_id)
            return "updated"
        self.alerts[alert.alert_id] = alert
        self.by_user[alert.user_id].append(alert.alert_id)
        self.evicted = []
        while len(self.alerts) > self.limit:
            _, old = self.alerts.popitem(last=False)
            self._unindex(old)
            self.evicted.append(old)
            self.dropped += 1
        return "new"

    def _unindex(self, alert: Alert) -> None:
        ids = self.by_user[alert.user_id]
        ids.remove(alert.alert_id)
        if not ids:
            del self.by_user[alert.user_id]

    def get(self, alert_id: str) -> Alert | None:
        return self.alerts.get(alert_id)

    def of_member(self, user_id: str) -> list[Alert]:
        """The member's alerts, oldest first."""
        return sorted((self.alerts[i] for i in self.by_user.get(user_id, ())),
                      key=lambda a: a.created_at)


class Hub:
    """Fan-out to server-sent-event listeners; a listener that falls behind is dropped
    (its browser reconnects and reloads the list)."""

    CLOSE = ("close", "")

    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self.listeners: set[asyncio.Queue[tuple[str, str]]] = set()

    def subscribe(self) -> asyncio.Queue[tuple[str, str]]:
        q: asyncio.Queue[tuple[str, str]] = asyncio.Queue(self.queue_size)
        self.listeners.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[tuple[str, str]]) -> None:
        self.listeners.discard(q)

    def publish(self, kind: str, payload: Any) -> None:
        data = msgspec.json.encode(payload).decode()
        for q in list(self.listeners):
            try:
                q.put_nowait((kind, data))
            except asyncio.QueueFull:
                self._drop(q)

    def close_all(self) -> None:
        for q in list(self.listeners):
            self._drop(q)

    def _drop(self, q: asyncio.Queue[tuple[str, str]]) -> None:
        self.listeners.discard(q)
        while not q.empty():
            q.get_nowait()
        with contextlib.suppress(asyncio.QueueFull):
            q.put_nowait(self.CLOSE)
