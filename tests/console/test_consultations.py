"""The consultation log: every read of personal data is recorded once, with who, when,
what, from where and why; the export gives them back; analysts are judged as events."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator, FormatChecker

from accesswatch.backtest import AlertBook
from accesswatch.contract.events import decode_event
from accesswatch.contract.schemas import schema
from accesswatch.core import Detector
from accesswatch.rules import load_rules
from console import consultations as cons
from console.auth import User, Users, hash_password
from console.consultations import (
    NOT_PERSONAL,
    PURPOSE_HEADER,
    READS,
    Consultation,
    ConsultationTopic,
    access_event,
    export_lines,
    read_consultations,
)
from console.sessions import SessionSigner
from console.web import build_app
from tests.console.helpers import (
    PASSWORDS,
    ROLE_OF,
    SECRET,
    FakeRecorder,
    ListRecorder,
    make_state,
    run,
    sign_in,
)
from tests.core.force import build_force, rules_raised

Client = TestClient[Any, Any]
STAFF_ID = {"lena": "E00900", "ana": "u1"}  # vic has none
EVENT_SCHEMA = Draft202012Validator(schema("access_event"), format_checker=FormatChecker())


def users() -> Users:
    return Users({n: User(n, ROLE_OF[n], hash_password(pw, n=2**10), STAFF_ID.get(n))
                  for n, pw in PASSWORDS.items()}, 60)


def app_with(consulted: Any, state: Any = None, held: Any = None) -> Any:
    state = state or make_state()
    return build_app(state=state, users=users(), signer=SessionSigner(SECRET, 3600),
                     recorder=FakeRecorder(), case_recorder=ListRecorder(),
                     watch_recorder=ListRecorder(), consultation_recorder=consulted,
                     consultation_log=held or cons.ConsultationLog(100))


def a_case_id(state: Any) -> str:
    state.settle()
    return next(iter(state.case_views))


def get_routes(app: Any) -> set[str]:
    return {r.resource.canonical for r in app.router.routes()
            if r.method == "GET" and r.resource is not None}


def test_every_get_route_is_either_recorded_or_shows_nothing_personal() -> None:
    # A new read route that nobody taught the consultation log fails here.
    routes = get_routes(app_with(ListRecorder()))
    assert routes - set(READS) - NOT_PERSONAL == set()
    assert set(READS) <= routes  # and none of the log's entries is stale


def _path(template: str, case_id: str) -> str:
    sample = {"alert_id": "aw-00000000000000000001", "case_id": case_id, "user_id": "E00412",
              "subject_id": "P-204"}
    return re.sub(r"\{(\w+)\}", lambda m: sample[m.group(1)], template)


# What each read must at least name.
MUST_NAME = {
    "/api/alerts": {"alert": "aw-00000000000000000001", "member": "E00412"},
    "/api/alerts/{alert_id}": {"alert": "aw-00000000000000000001", "event": "ev-1",
                               "subject": "P-204", "member": "E00412"},
    "/api/alerts/{alert_id}/ecs": {"alert": "aw-00000000000000000001", "event": "ev-2"},
    "/api/alerts.csv": {"alert": "aw-00000000000000000002"},
    "/api/alerts.ndjson": {"alert": "aw-00000000000000000002"},
    "/api/ecs": {"alert": "aw-00000000000000000001", "member": "E00412"},
    "/api/false-positives.csv": {},
    "/api/false-positives.json": {},
    "/api/cases": {"member": "E00412"},
    "/api/cases/{case_id}": {"member": "E00412", "alert": "aw-00000000000000000001"},
    "/api/cases/{case_id}/evidence.zip": {"member": "E00412", "event": "ev-1"},
    "/api/members/{user_id}/timeline": {"member": "E00412", "event": "ev-2",
                                        "subject": "P-204"},
    "/api/subjects/{subject_id}": {"subject": "P-204", "event": "ev-1", "member": "E00412"},
    "/api/watchlist": {},
    "/api/stream": {},
    "/api/consultations": {},
}


def test_every_read_route_appends_exactly_one_record_with_who_when_what_where_why() -> None:
    consulted, state = ListRecorder(), make_state()
    case_id = a_case_id(state)
    assert set(MUST_NAME) == set(READS)

    async def body(client: Client) -> dict[str, list[Consultation]]:
        await sign_in(client, "lena")
        out = {}
        for template in READS:
            before = len(consulted.written)
            resp = await client.get(_path(template, case_id),
                                    headers={PURPOSE_HEADER: "weekly%20audit%20%E2%9C%93"})
            if template == "/api/stream":
                await resp.content.readline()  # connected; the rest is the live feed
                resp.close()
            else:
                await resp.read()
            assert resp.status == 200, (template, resp.status)
            out[template] = consulted.written[before:]
        return out

    seen = run(app_with(consulted, state), body)
    for template, records in seen.items():
        assert len(records) == 1, (template, records)
        (c,) = records
        assert (c.user, c.role, c.staff_id, c.route) == ("lena", "lead", "E00900", template)
        assert c.address == "127.0.0.1" and re.fullmatch(r"\d{4}-.*\.\d{3}Z", c.at)
        assert c.purpose == cons.Purpose(text="weekly audit ✓")  # percent-encoded UTF-8
        assert c.what.kind == READS[template].kind
        for kind, value in MUST_NAME[template].items():
            assert value in c.what.ids[kind], (template, kind, c.what.ids)
        assert all(c.what.counts[k] == len(v) for k, v in c.what.ids.items())
    assert seen["/api/cases/{case_id}"][0].what.ids["case"][0] == case_id
    assert len({c.id for rs in seen.values() for c in rs}) == len(seen)


def test_the_case_or_alert_worked_is_the_purpose_and_reading_one_is_its_own() -> None:
    consulted, state = ListRecorder(), make_state()
    case_id = a_case_id(state)

    async def body(client: Client) -> None:
        await sign_in(client, "ana")
        for path, why in [("/api/subjects/P-204", case_id),
                          ("/api/members/E00412/timeline", "aw-00000000000000000002"),
                          ("/api/alerts/aw-00000000000000000001", ""),
                          (f"/api/cases/{case_id}", ""),
                          (f"/api/alerts.csv?purpose={case_id}", "")]:
            resp = await client.get(path, headers={PURPOSE_HEADER: why})
            assert resp.status == 200, (path, await resp.text())

    run(app_with(consulted, state), body)
    got = [c.purpose for c in consulted.written]
    assert got == [cons.Purpose(case_id=case_id),
                   cons.Purpose(alert_id="aw-00000000000000000002"),
                   cons.Purpose(alert_id="aw-00000000000000000001"),
                   cons.Purpose(case_id=case_id), cons.Purpose(case_id=case_id)]


@pytest.mark.parametrize("path", ["/api/members/E00412/timeline", "/api/subjects/P-204",
                                  "/api/alerts.csv", "/api/alerts.ndjson", "/api/ecs",
                                  "/api/false-positives.json"])
def test_a_timeline_subject_or_export_without_a_purpose_is_answered_428(path: str) -> None:
    consulted = ListRecorder()

    async def body(client: Client) -> tuple[int, dict[str, Any]]:
        await sign_in(client, "lena")
        resp = await client.get(path, headers={PURPOSE_HEADER: " \t"})
        return resp.status, await resp.json()

    status, answer = run(app_with(consulted), body)
    assert status == 428 and answer["purpose_required"] is True and answer["error"]
    assert "E00412" not in json.dumps(answer) and consulted.written == []


def test_a_read_that_fails_is_not_a_consultation() -> None:
    consulted = ListRecorder()

    async def body(client: Client) -> list[int]:
        await sign_in(client, "vic")
        return [(await client.get(p)).status for p in (
            "/api/alerts/aw-nope", "/api/cases/C-nope", "/api/false-positives.json",
            "/api/alerts.csv?severity=nonsense", "/api/consultations")]

    assert run(app_with(consulted), body) == [404, 404, 403, 400, 403]
    assert consulted.written == []


@pytest.mark.parametrize("path", ["/api/alerts", "/api/alerts/aw-00000000000000000001",
                                  "/api/subjects/P-204", "/api/alerts.csv", "/api/ecs",
                                  "/api/stream", "/api/members/E00412/timeline"])
@pytest.mark.parametrize("broken", ["fails", "absent"])
def test_no_record_no_read_503(path: str, broken: str) -> None:
    consulted = ListRecorder()
    consulted.fail = True

    async def body(client: Client) -> tuple[int, str]:
        await sign_in(client, "lena")
        resp = await client.get(path)
        return resp.status, await resp.text()

    status, text = run(app_with(consulted if broken == "fails" else None), body)
    assert status == 503 and "consultation log" in text
    for private in ("E00412", "P-204", "ev-1", "aw-00000000000000000002"):
        assert private not in text


def test_a_lead_reads_the_log_filtered_and_that_read_is_recorded_too() -> None:
    consulted, held = ListRecorder(), cons.ConsultationLog(3)

    async def recorder(c: Consultation) -> None:  # as the topic does: written, then read back
        await consulted(c)
        held.apply_record(cons.encode(c))

    async def body(client: Client) -> list[Any]:
        await sign_in(client, "ana")
        await client.get("/api/subjects/P-204")
        await client.get("/api/alerts")
        refused = (await client.get("/api/consultations")).status
        client.session.cookie_jar.clear()
        await sign_in(client, "lena")
        everything = await (await client.get("/api/consultations")).json()
        by_ana = await (await client.get("/api/consultations?user=ana&subject=P-204")).json()
        later = await (await client.get("/api/consultations?from=2999-01-01T00:00:00Z")).json()
        bad = (await client.get("/api/consultations?to=yesterday")).status
        return [refused, everything, by_ana, later, bad]

    refused, everything, by_ana, later, bad = run(app_with(recorder, held=held), body)
    assert refused == 403 and bad == 400
    # A read of the log is recorded once answered: the next read shows it.
    assert everything["held"] == 2 and everything["limit"] == 3
    assert [c["route"] for c in everything["consultations"]] == [
        "/api/alerts", "/api/subjects/{subject_id}"]  # newest first
    assert [c["user"] for c in by_ana["consultations"]] == ["ana"]
    # Bounded: the last 3 held, the oldest dropped and said so.
    assert later["total"] == 0 and later["held"] == 3 and later["dropped"] == 1
    assert [c.route for c in consulted.written] == [  # neither the 403 nor the 400
        "/api/subjects/{subject_id}", "/api/alerts", *["/api/consultations"] * 3]


# --- the export -----------------------------------------------------------------------
def _recorded() -> list[Consultation]:
    consulted = ListRecorder()

    async def body(client: Client) -> None:
        await sign_in(client, "ana")
        await client.get("/api/subjects/P-204", headers={PURPOSE_HEADER: "=cmd|' /C calc'!A0"})
        await client.get("/api/alerts")
        client.session.cookie_jar.clear()
        await sign_in(client, "vic")
        await client.get("/api/members/E00412/timeline")

    run(app_with(consulted), body)
    return list(consulted.written)


def test_the_export_reproduces_the_records_as_csv_and_json() -> None:
    records = _recorded()
    values = [cons.encode(c) for c in records] + [b"not a consultation", None]
    found, bad = read_consultations(values)
    assert found == records and bad == 2
    assert [msgspec.json.decode(line.encode(), type=Consultation)
            for line in export_lines(found, "json")] == records
    text = "".join(export_lines(found, "csv"))
    assert text.count("\r\n") == len(records) + 1
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["user"] for r in rows] == ["ana", "ana", "vic"]
    assert rows[0]["purpose_text"] == "'=cmd|' /C calc'!A0"  # never a formula
    assert rows[0]["subject_ids"].split() == records[0].what.ids["subject"]
    assert rows[2]["member_ids"].split()[0] == "E00412"
    assert rows[0]["at"] == records[0].at and rows[0]["address"] == "127.0.0.1"


def test_the_export_filters_by_time_user_and_subject() -> None:
    records = _recorded()
    values = [cons.encode(c) for c in records]
    assert [c.user for c in read_consultations(values, user="vic")[0]] == ["vic"]
    assert [c.route for c in read_consultations(values, subject="P-204")[0]] == [
        "/api/subjects/{subject_id}", "/api/members/{user_id}/timeline"]  # the member's too
    assert read_consultations(values, subject="E00412", user="u1")[0] == records[:2]
    first = records[0].at
    assert read_consultations(values, end=first)[0] == []
    assert read_consultations(values, start=first)[0] == records


def _cli(monkeypatch: pytest.MonkeyPatch, argv: list[str],
         values: list[bytes | None]) -> int:
    from accesswatch import cli

    monkeypatch.setattr("console.siem.read_to_end", lambda s, topic: [(None, v) for v in values])
    monkeypatch.setattr("accesswatch.ops.commands._ready", lambda s, **_: None)
    return cli.main(["console", "consultations", *argv])


def test_the_cli_writes_the_matching_records(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    records = _recorded()
    values: list[bytes | None] = [cons.encode(c) for c in records]
    out = tmp_path / "log.csv"
    assert _cli(monkeypatch, ["--from", "2000-01-01T00:00:00Z", "--to", "2999-01-01T00:00:00Z",
                              "--user", "ana", "--out", str(out)], values) == 0
    with out.open(newline="") as f:
        text = f.read()
    assert text.count("\r\n") == 3
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["id"] for r in rows] == [c.id for c in records if c.user == "ana"]
    assert "2 consultations" in capsys.readouterr().err
    assert _cli(monkeypatch, ["--from", "2000-01-01", "--to", "2999-01-01", "--subject",
                              "P-204", "--format", "json"], values) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [records[0].id, records[2].id]


@pytest.mark.parametrize(("argv", "says"), [
    (["--from", "yesterday", "--to", "2026-01-01"], "--from"),
    (["--from", "2026-01-02", "--to", "2026-01-01"], "--from is after --to"),
    (["--to", "2026-01-01"], "--from"),
    (["--from", "2026-01-01", "--to", "2026-01-02", "--format", "xml"], "--format"),
])
def test_bad_cli_arguments_are_one_line_never_a_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str],
        says: str) -> None:
    assert _cli(monkeypatch, argv, []) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error" in line or says in line]) == 1


# --- analysts through the detection core -------------------------------------------------
def _subject_consultation(user: str, subject: str, why: str = "a test") -> Consultation:
    consulted = ListRecorder()

    async def body(client: Client) -> None:
        await sign_in(client, user)
        resp = await client.get(f"/api/subjects/{subject}", headers={PURPOSE_HEADER: why})
        assert resp.status == 200

    run(app_with(consulted), body)
    (c,) = consulted.written
    return c  # type: ignore[no-any-return]


def test_an_analyst_opening_a_neighbours_page_raises_the_neighbour_alert() -> None:
    # ana's staff id is u1 of the test force: P-NB lives at u1's home postcode.
    c = _subject_consultation("ana", "P-NB", why="checking on the neighbours")
    event = access_event(c)
    assert event is not None
    assert not list(EVENT_SCHEMA.iter_errors(event)), list(EVENT_SCHEMA.iter_errors(event))
    assert (event["system"], event["action"], event["user_id"], event["subject_id"]) == (
        "ACCESSWATCH", "view", "u1", "P-NB")
    assert event["terminal_id"] == "console:127.0.0.1" and event["query"] is None
    decoded = decode_event(cons.encode(event))
    book = AlertBook()
    book.add(Detector(load_rules(), build_force()).process_batch([decoded], {}))
    neighbour = [a for a in book.alerts.values() if a.rule_id == "AW-003"]
    assert len(neighbour) == 1 and neighbour[0].user_id == "u1"
    assert neighbour[0].event_ids == [event["event_id"]]
    assert "AW-003" in rules_raised(book.alerts.values())
    # The same open on Niche raises the same rule.
    niche = decode_event(cons.encode({**event, "system": "NICHE", "event_id": "n-1",
                                      "terminal_id": "NTH-T1"}))
    other = AlertBook()
    other.add(Detector(load_rules(), build_force()).process_batch([niche], {}))
    assert {a.rule_id for a in other.alerts.values()} == {a.rule_id
                                                         for a in book.alerts.values()}


def test_the_purpose_case_is_the_events_case_ref_and_a_timeline_is_an_other_subject() -> None:
    consulted, state = ListRecorder(), make_state()
    case_id = a_case_id(state)

    async def body(client: Client) -> None:
        await sign_in(client, "lena")
        await client.get("/api/members/E00412/timeline", headers={PURPOSE_HEADER: case_id})

    run(app_with(consulted, state), body)
    event = access_event(consulted.written[0])
    assert event is not None and not list(EVENT_SCHEMA.iter_errors(event))
    assert (event["user_id"], event["subject_type"], event["subject_id"], event["case_ref"]) == (
        "E00900", "other", "E00412", case_id)


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
        self.sent.append((topic, value, key))


@pytest.mark.parametrize("on", [True, False])
def test_the_topic_writes_the_record_and_when_on_the_access_event(on: bool) -> None:
    import asyncio

    from console.config import ConsoleSettings

    s = ConsoleSettings(_env_file=None, console_audit_as_events=on)  # type: ignore[call-arg]
    topic = ConsultationTopic(s, cons.ConsultationLog())
    topic._producer = FakeProducer()
    opened = _subject_consultation("ana", "P-NB")
    unknown = _subject_consultation("vic", "P-NB")  # no staff id: counted, not produced
    listing = msgspec.structs.replace(opened, what=cons.Ids().what("alerts"))
    for c in (opened, unknown, listing):
        asyncio.run(topic(c))
    sent = topic._producer.sent
    assert [t for t, _, _ in sent] == (
        [s.consultations_topic, s.topic_events, s.consultations_topic, s.consultations_topic]
        if on else [s.consultations_topic] * 3)
    assert s.consultations_topic == "console.consultations"
    assert topic.without_staff_id == (1 if on else 0)
    if on:
        assert decode_event(sent[1][1]).user_id == "u1" and sent[1][2] == b"u1"


def test_the_address_is_the_clients_behind_a_trusted_proxy() -> None:
    from console.client_address import parse_networks, trust_proxies

    consulted = ListRecorder()
    app = app_with(consulted)
    trust_proxies(app, parse_networks("127.0.0.1"))

    async def body(client: Client) -> None:
        await sign_in(client, "ana")
        await client.get("/api/alerts", headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.5"})

    run(app, body)
    assert [c.address for c in consulted.written] == ["203.0.113.5"]


# --- the counters on /metrics -----------------------------------------------------------
def _scrape(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        m = re.match(r"(accesswatch_console_consultations\w*(?:\{[^}]*\})?) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def test_the_counters_count_reads_by_kind_and_the_refused_ones_naming_no_one() -> None:
    from console.trust import Quarantine
    from console.trust import install as install_trust

    consulted = ListRecorder()
    app = app_with(consulted)
    install_trust(app, Quarantine())

    async def body(client: Client) -> tuple[list[int], str]:
        await sign_in(client, "ana")
        statuses = [(await client.get(p)).status for p in (
            "/api/subjects/P-204", "/api/members/E00412/timeline", "/api/alerts",
            "/api/alerts/aw-00000000000000000001", "/api/alerts/aw-nope")]
        consulted.fail = True
        statuses += [(await client.get(p)).status for p in (
            "/api/subjects/P-204", "/api/ecs")]
        return statuses, await (await client.get("/metrics")).text()

    statuses, text = run(app, body)
    assert statuses == [200, 200, 200, 200, 404, 503, 503]
    got = _scrape(text)
    want = {f'accesswatch_console_consultations_total{{kind="{k}"}}': 0.0 for k in cons.KINDS}
    want.update({'accesswatch_console_consultations_total{kind="subject"}': 1.0,
                 'accesswatch_console_consultations_total{kind="timeline"}': 1.0,
                 'accesswatch_console_consultations_total{kind="alerts"}': 1.0,
                 'accesswatch_console_consultations_total{kind="alert"}': 1.0,
                 "accesswatch_console_consultations_failed_total": 2.0,
                 "accesswatch_console_consultations_no_staff_id_total": 0.0})
    assert {k: v for k, v in got.items() if k.endswith("_total") or "_total{" in k} == want
    assert len(consulted.written) == 4
    for private in ("E00412", "P-204", "aw-0", "ana", "u1", "127.0.0.1"):
        assert private not in text


def test_a_subject_opened_by_a_user_with_no_staff_id_is_counted() -> None:
    import asyncio

    from prometheus_client import CollectorRegistry

    from console.config import ConsoleSettings
    from console.metrics import ConsoleMetrics

    s = ConsoleSettings(_env_file=None)  # type: ignore[call-arg]
    metrics = ConsoleMetrics(CollectorRegistry())
    topic = ConsultationTopic(s, cons.ConsultationLog(), metrics=metrics)
    topic._producer = FakeProducer()
    for c in (_subject_consultation("vic", "P-NB"), _subject_consultation("ana", "P-NB"),
              _subject_consultation("vic", "P-204")):
        asyncio.run(topic(c))
    assert metrics.consultations_no_staff_id._value.get() == 2.0 == topic.without_staff_id
    assert [t for t, _, _ in topic._producer.sent].count(s.topic_events) == 1
