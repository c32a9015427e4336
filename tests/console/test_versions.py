"""Alert versions in the console (contract v1.1): each alert_id holds its highest version.

Every reader is checked three ways: a newer version replaces, an older one arriving
after it is ignored, the same version again changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from aiokafka.structs import ConsumerRecord

from accesswatch.core import Alert
from console.alert_index import Query
from console.ecs import to_ecs
from console.feeds import Feeds
from console.siem import newest
from console.state import ConsoleState, detail, summary
from console.store import AlertStore
from console.triage import decide
from console.versions import LatestVersions
from tests.console.helpers import alert, grown, make_app, make_state, run, sign_in

Client = Any
V1 = alert("aw-v", user_id="E00412")
V2, V3 = grown(V1, 2), grown(grown(V1, 2), 3)


def content(a: Alert) -> tuple[Any, ...]:
    return (a.version, a.updated_at, a.count, a.event_ids, a.reasons, a.last_seen, a.score)


# --- the bounded memory of versions seen (webhook, tail) ----------------------
def test_latest_versions_takes_only_higher_versions() -> None:
    seen = LatestVersions(limit=10)
    assert seen.offer("a", 1) and seen.offer("a", 3)
    assert not seen.offer("a", 2)  # older, after a newer
    assert not seen.offer("a", 3)  # the same again
    assert seen.get("a") == 3 and seen.get("b") == 0


def test_latest_versions_stays_bounded_and_forgets_the_longest_idle() -> None:
    seen = LatestVersions(limit=3)
    for i in range(5):
        seen.offer(f"a{i}", 1)
    seen.offer("a2", 1)  # a stale repeat still counts as use: a2 is kept over a3
    seen.offer("a5", 1)
    assert len(seen) == 3
    assert [seen.get(f"a{i}") for i in range(6)] == [0, 0, 1, 0, 1, 1]


# --- the store -----------------------------------------------------------------
def test_a_newer_version_replaces_the_content_where_the_alert_stands() -> None:
    store = AlertStore(limit=10)
    for a in (V1, alert("aw-other", user_id="E00412"), alert("aw-third", user_id="E9")):
        assert store.add(a) == "new"
    assert store.add(V3) == "updated"
    held = store.get("aw-v")
    assert held is not None and content(held) == content(V3)
    assert held.count == V1.count + 2 and "ev-v3" in held.event_ids
    assert list(store.alerts) == ["aw-v", "aw-other", "aw-third"]  # its place is kept
    assert dict(store.by_user) == {"E00412": ["aw-v", "aw-other"], "E9": ["aw-third"]}
    assert [a.alert_id for a in store.of_member("E00412")] == ["aw-v", "aw-other"]


@pytest.mark.parametrize("late", [V1, V2, V3], ids=["older v1", "older v2", "same v3"])
def test_an_older_or_the_same_version_after_a_newer_changes_nothing(late: Alert) -> None:
    store = AlertStore(limit=10)
    store.add(V1)
    store.add(V3)
    assert store.add(msgspec.structs.replace(late, count=999)) == "stale"
    held = store.get("aw-v")
    assert held is not None and content(held) == content(V3)
    assert store.by_user["E00412"] == ["aw-v"]


def test_a_version_absent_on_the_wire_is_version_1() -> None:
    wire = msgspec.json.encode(V1)
    assert b'"version"' not in wire and b'"updated_at"' not in wire
    decoded = msgspec.json.decode(wire, type=Alert)
    store = AlertStore(limit=10)
    store.add(V2)
    assert decoded.version == 1 and store.add(decoded) == "stale"


def test_updates_never_grow_the_store_past_its_limit() -> None:
    store = AlertStore(limit=3)
    ids = [f"aw-{n}" for n in range(5)]
    for n, alert_id in enumerate(ids):
        store.add(alert(alert_id, user_id=f"E{n % 2}"))
        for version in (2, 3):  # each one grows while it is the newest
            store.add(grown(alert(alert_id, user_id=f"E{n % 2}"), version))
    assert list(store.alerts) == ids[2:]
    assert all(a.version == 3 for a in store.alerts.values())
    assert {u: sorted(i) for u, i in store.by_user.items()} == {"E0": ["aw-2", "aw-4"],
                                                                "E1": ["aw-3"]}


# --- the state, its views and the live feed ---------------------------------------
def test_an_update_keeps_the_triage_decision_and_shows_its_version() -> None:
    state = make_state()
    alert_id = "aw-00000000000000000001"
    decision = decide(None, alert_id, "misuse", by="lena", at="2026-03-02T09:30:00Z",
                      note="no case")
    state.apply_decision(decision)
    v4 = grown(alert(alert_id), 4)
    assert state.add_alert(v4)
    row = summary(state, state.alerts.alerts[alert_id])
    assert (row["status"], row["version"], row["updated_at"]) == ("misuse", 4, v4.updated_at)
    assert row["count"] == 3 and row["last_seen"] == v4.last_seen
    assert state.triage.get(alert_id) == decision
    first = summary(state, state.alerts.alerts["aw-00000000000000000002"])
    assert (first["version"], first["updated_at"]) == (1, None)
    pane = detail(state, state.alerts.alerts[alert_id])
    assert pane["summary"]["version"] == 4 and pane["alert"]["version"] == 4
    assert pane["evidence_missing"] == ["ev-v4"]  # the new evidence is named
    newest = state.index.alerts(Query(sort="created_at", dir="desc")).rows
    assert [r["version"] for r in newest] == [1, 4]


def test_listeners_hear_new_versions_only() -> None:
    state = ConsoleState(AlertStore(10))
    q = state.hub.subscribe()
    for a in (V1, V3, V2, V3, V1):
        state.add_alert(a)
    heard = [q.get_nowait() for _ in range(q.qsize())]
    alerts = [json.loads(data) for kind, data in heard if kind == "alert"]
    assert [(r["alert_id"], r["version"]) for r in alerts] == [("aw-v", 1), ("aw-v", 3)]
    cases = [json.loads(data) for kind, data in heard if kind == "case"]
    assert [(c["alerts"], c["risk"]) for c in cases] == [(1, V1.score), (1, V3.score)]


def test_the_alert_feed_keeps_the_highest_version_whatever_the_arrival_order() -> None:
    state = ConsoleState(AlertStore(10))
    feeds = Feeds(None, state, {})  # type: ignore[arg-type]  # _on_alert reads no setting
    for offset, a in enumerate((V1, V3, V2, V3, V1)):
        feeds._on_alert(ConsumerRecord("access.alerts", 0, offset, 0, 0, b"E00412",
                                       msgspec.json.encode(a), None, 6, 0, ()))
    held = state.alerts.get("aw-v")
    assert held is not None and content(held) == content(V3)


def test_the_api_shows_the_version_and_when_it_was_updated() -> None:
    state = make_state()
    alert_id = "aw-00000000000000000001"
    state.add_alert(grown(alert(alert_id), 3))

    async def body(client: Client) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
        await sign_in(client)
        rows = (await (await client.get("/api/alerts")).json())["alerts"]
        one = await (await client.get(f"/api/alerts/{alert_id}")).json()
        ecs = await (await client.get(f"/api/alerts/{alert_id}/ecs")).json()
        return {r["alert_id"]: r for r in rows}, one, [one["summary"], ecs]

    rows, one, (row, ecs) = run(make_app(state), body)
    assert (rows[alert_id]["version"], rows[alert_id]["updated_at"]) == (3, "2026-03-02T10:03:00Z")
    assert rows["aw-00000000000000000002"]["version"] == 1
    assert row["version"] == 3 and one["alert"]["count"] == 3
    assert ecs["event"]["id"] == alert_id and ecs["accesswatch"]["alert"]["version"] == 3


# --- the SIEM side ---------------------------------------------------------------------
def test_ecs_documents_keep_the_alert_id_and_carry_the_version() -> None:
    first, update = to_ecs(V1), to_ecs(V3)
    assert first["event"]["id"] == update["event"]["id"] == "aw-v"  # the SIEM overwrites
    assert first["@timestamp"] == update["@timestamp"] == V1.created_at
    assert first["accesswatch"]["alert"]["version"] == 1
    assert first["accesswatch"]["alert"]["update"] is False
    assert "updated_at" not in first["accesswatch"]["alert"]
    mine = update["accesswatch"]["alert"]
    assert (mine["version"], mine["update"], mine["updated_at"]) == (3, True, V3.updated_at)
    assert mine["count"] == V3.count and update["event"]["end"] == V3.last_seen


def test_the_export_writes_each_alert_once_at_its_highest_version() -> None:
    other = alert("aw-other")
    values = [msgspec.json.encode(a) for a in (V1, other, V3, V2, V3, V1)]
    held = newest([*values, b"not an alert", None])
    assert list(held) == ["aw-v", "aw-other"]
    assert content(held["aw-v"]) == content(V3) and held["aw-other"] == other
