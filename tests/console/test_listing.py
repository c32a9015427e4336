"""Listing on the server: paging, sorting, filtering and honest totals; bulk triage; exports.

Every expected figure is worked out here from the alerts the test made, not read
back from the index under test.
"""

from __future__ import annotations

import csv
import io
import json
import random
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from accesswatch.core import Alert
from console.alert_index import ALERT_SORTS, CASE_SORTS
from console.state import ConsoleState
from console.store import AlertStore, StaffInfo
from tests.console.helpers import FakeRecorder, ListRecorder, alert, make_app, run, sign_in

Client = TestClient[Any, Any]
N = 250
MEMBERS = ["E001", "E002", "E003", "E004", "E005"]
RULES = {"AW-001": "Member opened their own record", "AW-002": "Member opened a relative's record",
         "AW-005": "Celebrity record opened", "AW-011": "Leaver account used"}
SEVERITIES = ["critical", "high", "medium", "low"]


def many(n: int = N, seed: int = 4) -> list[Alert]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        user = MEMBERS[i % len(MEMBERS)]
        rule = list(RULES)[i % len(RULES)]
        day, hour = 1 + (i * 7) % 27, rnd.randrange(24)
        t = f"2026-03-{day:02d}T{hour:02d}:{i % 60:02d}:00Z"
        out.append(alert(f"aw-{i:020d}", user_id=user, rule_id=rule, title=RULES[rule],
                         severity=rnd.choice(SEVERITIES),  # type: ignore[arg-type]
                         score=round(rnd.uniform(10, 99), 1), created_at=t, last_seen=t,
                         reasons=[f"reason {i} for P-{1000 + i % 17}"],
                         event_ids=[f"ev-{i}"]))
        out[-1].first_seen = t
        out[-1].subject_ids = [f"P-{1000 + i % 17}"]
    return out


def state_of(alerts: list[Alert], limit: int = 10_000) -> ConsoleState:
    state = ConsoleState(AlertStore(limit))
    for m, area in zip(MEMBERS, ["North", "North", "South", "East", "West"], strict=True):
        state.staff.upsert(m, StaffInfo("constable", "Response", area, "active"))
    for a in alerts:
        state.add_alert(a, settle=False)
    state.settle()
    state.caught_up.update(alerts=True, triage=True, staff=True, cases=True)
    return state


async def all_pages(client: Client, query: str, limit: int = 100) -> tuple[list[dict[str, Any]],
                                                                           list[dict[str, Any]]]:
    """Every row of a listing, page by page; and each page's body."""
    rows: list[dict[str, Any]] = []
    bodies: list[dict[str, Any]] = []
    cursor = ""
    while True:
        sep = "&" if query else ""
        resp = await client.get(f"/api/alerts?{query}{sep}limit={limit}{cursor}")
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        bodies.append(body)
        rows += body["alerts"]
        if not body["next_cursor"]:
            return rows, bodies
        cursor = f"&cursor={body['next_cursor']}"


def test_pages_cover_every_alert_once_with_honest_totals() -> None:
    alerts = many()

    async def body(client: Client) -> None:
        await sign_in(client)
        rows, bodies = await all_pages(client, "sort=score&dir=desc")
        assert [len(b["alerts"]) for b in bodies] == [100, 100, 50]
        assert all(b["total"] == N and b["held"] == N and b["dropped"] == 0 for b in bodies)
        assert sorted(r["alert_id"] for r in rows) == sorted(a.alert_id for a in alerts)
        want = sorted(alerts, key=lambda a: (a.score, a.alert_id), reverse=True)
        assert [r["alert_id"] for r in rows] == [a.alert_id for a in want]
        assert {r["rule_name"] for r in rows} == set(RULES.values())

    run(make_app(state_of(alerts)), body)


@pytest.mark.parametrize("sort", sorted(ALERT_SORTS))
def test_every_column_sorts_both_ways_across_pages(sort: str) -> None:
    alerts = many(120)
    field = {"severity": "severity"}.get(sort, sort)
    rank = {"critical": 4, "high": 3, "medium": 2, "low": 1}

    def key(r: dict[str, Any]) -> Any:
        v = r[field]
        return rank[v] if sort == "severity" else ("" if v is None else v)

    async def body(client: Client) -> None:
        await sign_in(client)
        for direction in ("asc", "desc"):
            rows, _ = await all_pages(client, f"sort={sort}&dir={direction}", limit=25)
            assert len(rows) == 120 and len({r["alert_id"] for r in rows}) == 120
            keys = [key(r) for r in rows]
            assert keys == sorted(keys, reverse=direction == "desc"), (sort, direction)

    run(make_app(state_of(alerts)), body)


def test_filters_and_text_search_count_what_they_match() -> None:
    alerts = many()

    def expect(pred: Any) -> set[str]:
        return {a.alert_id for a in alerts if pred(a)}

    cases = {
        "severity=critical": expect(lambda a: a.severity == "critical"),
        "rule=AW-005": expect(lambda a: a.rule_id == "AW-005"),
        "area=North": expect(lambda a: a.user_id in ("E001", "E002")),
        "q=E003": expect(lambda a: a.user_id == "E003"),
        "q=p-1005": expect(lambda a: "P-1005" in a.subject_ids),  # case-insensitive
        "q=celebrity": expect(lambda a: a.rule_id == "AW-005"),  # the rule's name
        f"q={alerts[17].alert_id}": {alerts[17].alert_id},
        "q=100%25": set(),  # a literal %, not a wildcard
        "from=2026-03-20T00:00:00Z": expect(lambda a: a.last_seen >= "2026-03-20T00:00:00Z"),
        "from=2026-03-05T00:00:00Z&to=2026-03-06T00:00:00Z":
            expect(lambda a: "2026-03-05" <= a.first_seen[:10] <= "2026-03-05"),
        "severity=high&rule=AW-002&q=E00":
            expect(lambda a: a.severity == "high" and a.rule_id == "AW-002"),
    }

    async def body(client: Client) -> None:
        await sign_in(client)
        for query, want in cases.items():
            rows, bodies = await all_pages(client, query, limit=40)
            assert {r["alert_id"] for r in rows} == want, query
            assert bodies[0]["total"] == len(want), query

    run(make_app(state_of(alerts)), body)


def test_a_status_and_assignee_filter_follow_triage() -> None:
    alerts = many(30)
    recorder = FakeRecorder()

    async def body(client: Client) -> None:
        token = await sign_in(client, "ana")
        h = {"X-CSRF-Token": token}
        first = alerts[3].alert_id
        resp = await client.post(f"/api/alerts/{first}/triage", headers=h,
                                 json={"action": "assign", "assignee": "ana"})
        assert resp.status == 200
        mine = await (await client.get("/api/alerts?assignee=me")).json()
        assert [r["alert_id"] for r in mine["alerts"]] == [first] and mine["total"] == 1
        resp = await client.post(f"/api/alerts/{first}/triage", headers=h,
                                 json={"action": "misuse", "note": "no case"})
        misuse = await (await client.get("/api/alerts?status=misuse")).json()
        assert misuse["total"] == 1 and misuse["alerts"][0]["status"] == "misuse"
        resp = await client.post(f"/api/alerts/{first}/triage", headers=h,
                                 json={"action": "reopen"})
        assert resp.status == 200
        resp = await client.post(f"/api/alerts/{first}/triage", headers=h,
                                 json={"action": "unassign"})
        assert resp.status == 200
        back = await (await client.get("/api/alerts?status=acknowledged")).json()
        assert back["total"] == 1 and back["alerts"][0]["assignee"] is None
        assert (await (await client.get("/api/alerts?status=new")).json())["total"] == 29

    run(make_app(state_of(alerts), recorder), body)
    assert [d.status for d, _ in recorder.written] == ["acknowledged", "misuse", "acknowledged",
                                                       "acknowledged"]


def test_the_page_says_how_many_alerts_the_console_let_go() -> None:
    alerts = many(120)

    async def body(client: Client) -> None:
        await sign_in(client)
        rows, bodies = await all_pages(client, "", limit=50)
        assert (bodies[0]["total"], bodies[0]["held"], bodies[0]["dropped"]) == (100, 100, 20)
        assert len(rows) == 100

    run(make_app(state_of(alerts, limit=100)), body)


def test_bad_listing_requests_get_one_line_and_400() -> None:
    async def body(client: Client) -> None:
        await sign_in(client)
        for query, words in [("sort=password", "cannot sort"), ("dir=sideways", "asc or desc"),
                             ("cursor=not-a-cursor", "cursor"), ("from=yesterday", "from is"),
                             ("severity=urgent", "severity is")]:
            resp = await client.get(f"/api/alerts?{query}")
            assert resp.status == 400, query
            assert words in (await resp.json())["error"], query

    run(make_app(state_of(many(10))), body)


def test_bulk_triage_reports_each_alert() -> None:
    alerts = many(20)
    recorder = FakeRecorder()

    async def body(client: Client) -> dict[str, Any]:
        token = await sign_in(client, "ana")
        ids = [a.alert_id for a in alerts[:3]] + ["aw-nope"]
        resp = await client.post("/api/alerts/bulk", headers={"X-CSRF-Token": token},
                                 json={"alert_ids": ids, "action": "acknowledge"})
        out: dict[str, Any] = await resp.json()
        no_note = await client.post("/api/alerts/bulk", headers={"X-CSRF-Token": token},
                                    json={"alert_ids": ids[:2], "action": "misuse"})
        out["no_note"] = await no_note.json()
        viewer = await sign_in(client, "vic")
        denied = await client.post("/api/alerts/bulk", headers={"X-CSRF-Token": viewer},
                                   json={"alert_ids": ids[:1], "action": "acknowledge"})
        out["viewer"] = denied.status
        return out

    out = run(make_app(state_of(alerts), recorder), body)
    assert out["done"] == 3
    assert [r["ok"] for r in out["results"]] == [True, True, True, False]
    assert out["results"][3]["error"] == "no such alert"
    assert out["no_note"]["done"] == 0 and all("note" in r["error"]
                                                for r in out["no_note"]["results"])
    assert out["viewer"] == 403
    assert len(recorder.written) == 3


def test_exports_hold_exactly_the_filtered_view() -> None:
    alerts = many()
    want = [a for a in sorted(alerts, key=lambda a: (a.created_at, a.alert_id), reverse=True)
            if a.severity == "high"]

    async def body(client: Client) -> tuple[str, str]:
        await sign_in(client)
        q = "severity=high&sort=created_at&dir=desc"
        text = await (await client.get(f"/api/alerts.csv?{q}")).text()
        ndjson = await (await client.get(f"/api/alerts.ndjson?{q}")).text()
        return text, ndjson

    text, ndjson = run(make_app(state_of(alerts)), body)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["alert_id"] for r in rows] == [a.alert_id for a in want]
    assert {r["severity"] for r in rows} == {"high"} and rows[0]["rule_name"] in RULES.values()
    docs = [json.loads(line) for line in ndjson.splitlines()]
    assert [d["event"]["id"] for d in docs] == [a.alert_id for a in want]


# --- cases ---------------------------------------------------------------------------
def test_cases_page_sort_and_filter_like_alerts() -> None:
    alerts = many()

    async def body(client: Client) -> None:
        await sign_in(client)
        listing = await (await client.get("/api/cases?limit=500")).json()
        ids = [c["case_id"] for c in listing["cases"]]
        assert listing["total"] == len(ids) == len(set(ids)) > 0
        # every alert is in exactly one case, and the case counts add up
        assert sum(c["alerts"] for c in listing["cases"]) == N
        by_alert = await (await client.get("/api/alerts?limit=500")).json()
        assert all(r["case_id"] in ids for r in by_alert["alerts"])
        for sort in CASE_SORTS:
            page = await (await client.get(f"/api/cases?sort={sort}&dir=asc&limit=500")).json()
            assert len(page["cases"]) == len(ids), sort
        north = await (await client.get("/api/cases?area=North&limit=500")).json()
        assert {c["user_id"] for c in north["cases"]} == {"E001", "E002"}

    run(make_app(state_of(alerts)), body)


def test_a_case_closed_as_misuse_needs_a_second_persons_approval() -> None:
    alerts = many(10)
    cases = ListRecorder()

    async def body(client: Client) -> list[tuple[int, str]]:
        seen: list[tuple[int, str]] = []
        ana = await sign_in(client, "ana")
        case_id = (await (await client.get("/api/cases?member=E001")).json())["cases"][0][
            "case_id"]
        h = {"X-CSRF-Token": ana}

        async def act(headers: dict[str, str], **body: Any) -> None:
            resp = await client.post(f"/api/cases/{case_id}", headers=headers, json=body)
            out = await resp.json()
            seen.append((resp.status, out["case"]["status"] if resp.status == 200
                         else out["error"]))

        await act(h, action="assign", owner="ana")
        await act(h, action="close", outcome="misuse", note="looked up a neighbour")
        await act(h, action="approve")  # the proposer may not approve
        lena = await sign_in(client, "lena")
        await act({"X-CSRF-Token": lena}, action="approve", note="agreed")
        detail = await (await client.get(f"/api/cases/{case_id}")).json()
        seen.append((200, f"{detail['record']['outcome']} by {detail['record']['approved_by']}"))
        return seen

    seen = run(make_app(state_of(alerts), case_recorder=cases), body)
    assert seen[0] == (200, "new") or seen[0][1] in ("new", "investigating")
    assert seen[1] == (200, "awaiting_approval")
    assert seen[2][0] == 400
    assert seen[3] == (200, "closed")
    assert seen[4] == (200, "misuse by lena")
    assert [r.status for r in cases.written] == [seen[0][1], "awaiting_approval", "closed"]
