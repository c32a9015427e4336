"""Trust what the console reads (issue 20, item 4), through the real feed path.

Malformed alerts are quarantined and never break the feed; decisions and case
records count only when a console's key signed them; a tombstone erases nothing.
Each refusal is counted on ``/metrics`` and listed for a lead, by offset only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import msgspec
import pytest
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry

from accesswatch.errors import InvalidRecord
from console.cases import decide_case
from console.feeds import Feeds
from console.metrics import ConsoleMetrics
from console.state import ConsoleState
from console.triage import Decision, decide, encode
from console.trust import Quarantine, RecordSigner, check_alert, install, signing_key
from tests.console.helpers import alert, make_app, make_state, run, sign_in

Client = Any
KEY = b"a-console-signing-key-for-tests-0123456789"
AT = "2026-03-02T09:00:00Z"
MARK = "NEIGHBOUR-SMITH-12-ACACIA"  # in each bad record: must never be logged or served


def good(alert_id: str = "aw-good", **patch: Any) -> bytes:
    body: dict[str, Any] = msgspec.to_builtins(alert(alert_id, user_id="E00777"))
    body["reasons"] = [f"opened {MARK}"]
    body.update(patch)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


BAD_ALERTS = {
    "reasons: []": (good("aw-b1", reasons=[]), "empty_list"),
    "event_ids: []": (good("aw-b2", event_ids=[]), "empty_list"),
    "bad created_at": (good("aw-b3", created_at="yesterday"), "bad_timestamp"),
    "bad first_seen": (good("aw-b4", first_seen="2026-13-40T00:00:00Z"), "bad_timestamp"),
    "bad last_seen": (good("aw-b5", last_seen="2026-03-02 09:00:00"), "bad_timestamp"),
    # parse_ts takes a lower-case "z" (RFC 3339 allows it); the views' fromisoformat does not
    "lower-case z": (good("aw-b6", last_seen="2026-03-02t09:00:00z"), "bad_timestamp"),
    "bad updated_at": (good("aw-b7", version=2, updated_at="soon"), "bad_timestamp"),
    "missing field": (good("aw-b8", user_id=...), "missing_field"),
    "wrong type": (good("aw-b9", score=f"high {MARK}"), "wrong_type"),
    "bad severity": (good("aw-b10", severity="urgent"), "bad_enum"),
    "score past 100": (good("aw-b11", score=180.0), "out_of_range"),
    "count 0": (good("aw-b12", count=0), "out_of_range"),
    "not JSON": (f'{{"alert_id": "{MARK}"'.encode(), "invalid_json"),
    "a list": (b"[1, 2]", "not_object"),
}


def record(value: bytes | None, offset: int, *, topic: str = "access.alerts",
           key: bytes = b"k") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, 0,  # type: ignore[arg-type]
                          len(value or b""), [])


def feeds_for(state: ConsoleState, signer: RecordSigner | None = None) -> Feeds:
    # _on_alert, _on_decision and _on_case read no setting: the real handlers, no broker
    return Feeds(None, state, {}, signer=signer or RecordSigner(KEY),  # type: ignore[arg-type]
                 quarantine=Quarantine(ConsoleMetrics(CollectorRegistry())))


def metric(feeds: Feeds, name: str, **labels: str) -> float:
    value = feeds.quarantine.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# --- alerts ----------------------------------------------------------------------
def test_a_sound_alert_passes_the_check() -> None:
    a = check_alert(good())
    assert a.alert_id == "aw-good" and a.reasons == [f"opened {MARK}"]


@pytest.mark.parametrize("raw,reason_class", BAD_ALERTS.values(), ids=BAD_ALERTS.keys())
def test_each_way_an_alert_breaks_the_contract_is_refused(raw: bytes,
                                                          reason_class: str) -> None:
    with pytest.raises(InvalidRecord) as refused:
        check_alert(raw)
    assert refused.value.reason_class == reason_class
    assert MARK not in refused.value.reason


def test_malformed_alerts_are_quarantined_and_the_feed_keeps_working(
        caplog: pytest.LogCaptureFixture) -> None:
    state = make_state()
    feeds = feeds_for(state)
    caplog.set_level(logging.WARNING, "accesswatch.console.trust")
    for offset, (raw, _) in enumerate(BAD_ALERTS.values(), start=10):
        feeds._on_alert(record(raw, offset))
    feeds._on_alert(record(good("aw-good"), 99))
    state.settle()  # as _follow does after each batch: a bad time here once killed the feed
    app = make_app(state)
    install(app, feeds.quarantine)

    async def body(client: Client) -> None:
        await sign_in(client, "lena")
        listed = await client.get("/api/alerts")
        assert listed.status == 200
        ids = {a["alert_id"] for a in (await listed.json())["alerts"]}
        assert "aw-good" in ids and not ids & {f"aw-b{n}" for n in range(1, 13)}
        assert (await client.get("/api/cases")).status == 200
        assert (await client.get("/api/alerts/aw-good")).status == 200
        assert (await client.get("/api/alerts/aw-b1")).status == 404
        seen = await client.get("/api/quarantine")
        assert seen.status == 200
        text = await seen.text()
        q = json.loads(text)
        assert q["total"] == len(BAD_ALERTS)
        assert [(r["topic"], r["partition"], r["offset"]) for r in q["records"]] == [
            ("access.alerts", 0, n) for n in range(10 + len(BAD_ALERTS) - 1, 9, -1)]
        assert {r["reason_class"] for r in q["records"]} == {c for _, c in BAD_ALERTS.values()}
        assert MARK not in text and "aw-b" not in text  # where, never what
        scraped = await client.get("/metrics")
        assert scraped.status == 200
        text = await scraped.text()
        assert ('accesswatch_console_quarantined_total{reason_class="empty_list",'
                'topic="alerts"} 2.0') in text
        assert "accesswatch_console_alerts_held 3.0" in text
        assert MARK not in text and "E00777" not in text

    run(app, body)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == len(BAD_ALERTS)
    assert "alerts: quarantined access.alerts[0]@10: empty_list (reasons)" in lines
    assert not any(MARK in line or "aw-b" in line for line in lines)


def test_the_quarantine_is_for_leads_and_metrics_need_no_session() -> None:
    app = make_app()
    install(app, Quarantine(ConsoleMetrics(CollectorRegistry())))

    async def body(client: Client) -> None:
        assert (await client.get("/metrics")).status == 200  # a scraper has no session
        assert (await client.get("/api/quarantine")).status == 401
        await sign_in(client, "ana")
        assert (await client.get("/api/quarantine")).status == 403

    run(app, body)


def test_the_quarantine_stays_bounded() -> None:
    q = Quarantine(ConsoleMetrics(CollectorRegistry()), limit=3)
    for n in range(5):
        q.refuse("alerts", "access.alerts", 0, n, InvalidRecord("x", "invalid_json"))
    assert q.total == 5 and [r.offset for r in q.held] == [2, 3, 4]


# --- triage decisions ------------------------------------------------------------
def five_steps(signer: RecordSigner, feeds: Feeds) -> Decision:
    d = None
    for n, action in enumerate(("acknowledge", "assign", "unassign", "misuse", "reopen")):
        d = decide(d, "aw-00000000000000000001", action, by="ana", at=AT, assignee="ana",
                   note="no case covers it" if action == "misuse" else "")
        feeds._on_decision(record(signer.encode("triage", d.alert_id, d), n,
                                  topic="access.alerts.triage", key=d.alert_id.encode()))
    assert d is not None
    return d


def test_signed_decisions_round_trip_through_the_real_write_and_read_paths() -> None:
    state = make_state()
    feeds = feeds_for(state)
    sent: list[tuple[str, bytes, bytes]] = []

    class Producer:
        async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
            sent.append((topic, value, key))

    feeds._producer = Producer()  # type: ignore[assignment]
    feeds.s = msgspec.defstruct("S", [("triage_topic", str), ("triage_audit_topic", str)])(
        "t", "t.audit")  # type: ignore[assignment]
    d = decide(None, "aw-00000000000000000001", "acknowledge", by="ana", at=AT)
    asyncio.run(feeds.record(d, d.history[-1]))
    (topic, value, key), = [s for s in sent if s[0] == "t"]
    assert json.loads(value)["sig"].startswith(feeds.signer.key_id + ".")
    feeds._on_decision(record(value, 0, topic=topic, key=key))
    assert state.triage.get(d.alert_id) == d
    assert feeds.quarantine.total == 0


def test_a_forged_unsigned_decision_is_ignored_and_counted() -> None:
    state = make_state()
    feeds = feeds_for(state)
    mine = five_steps(feeds.signer, feeds)
    forged = decide(mine, mine.alert_id, "false_positive", by="lena", at=AT, note="fine")
    forged = msgspec.structs.replace(forged, version=99)
    feeds._on_decision(record(encode(forged), 7, topic="access.alerts.triage",
                              key=forged.alert_id.encode()))
    held = state.triage.get(mine.alert_id)
    assert held == mine and held.by == "ana" and held.version == 5
    assert metric(feeds, "accesswatch_console_triage_rejected_total", reason="unsigned") == 1
    assert [(r.offset, r.reason_class) for r in feeds.quarantine.held] == [(7, "unsigned")]


@pytest.mark.parametrize("how", ["tampered", "another key", "another alert's key"])
def test_a_tampered_or_misplaced_signed_decision_is_ignored_and_counted(how: str) -> None:
    state = make_state()
    feeds = feeds_for(state)
    mine = five_steps(feeds.signer, feeds)
    later = decide(mine, mine.alert_id, "false_positive", by="lena", at=AT, note="fine")
    key = later.alert_id.encode()
    if how == "tampered":
        body = json.loads(feeds.signer.encode("triage", later.alert_id, later))
        body["by"] = "vic"
        raw = json.dumps(body).encode()
    elif how == "another key":
        raw = RecordSigner(b"not-the-consoles-key-000000000000000").encode(
            "triage", later.alert_id, later)
    else:  # a real signed record copied under another alert's key
        raw, key = feeds.signer.encode("triage", later.alert_id, later), b"aw-other"
    feeds._on_decision(record(raw, 8, topic="access.alerts.triage", key=key))
    assert state.triage.get(mine.alert_id) == mine
    assert metric(feeds, "accesswatch_console_triage_rejected_total",
                  reason="bad_signature") == 1


def test_a_tombstone_does_not_erase_a_five_step_history() -> None:
    state = make_state()
    feeds = feeds_for(state)
    mine = five_steps(feeds.signer, feeds)
    feeds._on_decision(record(None, 9, topic="access.alerts.triage",
                              key=mine.alert_id.encode()))
    held = state.triage.get(mine.alert_id)
    assert held == mine and len(held.history) == 5
    assert metric(feeds, "accesswatch_console_triage_rejected_total", reason="tombstone") == 1
    assert metric(feeds, "accesswatch_console_quarantined_total", topic="triage",
                  reason_class="tombstone") == 1


def test_a_decision_signed_for_the_cases_topic_does_not_verify_as_triage() -> None:
    signer = RecordSigner(KEY)
    d = decide(None, "aw-1", "acknowledge", by="ana", at=AT)
    with pytest.raises(InvalidRecord) as refused:
        signer.verify("triage", b"aw-1", signer.encode("cases", "aw-1", d))
    assert refused.value.reason_class == "bad_signature"


# --- case records ----------------------------------------------------------------
def test_only_signed_case_records_are_applied_and_tombstones_are_counted() -> None:
    state = make_state()
    feeds = feeds_for(state)
    r = decide_case(None, "C-1", "E00412", ["aw-00000000000000000001"], "assign", by="ana",
                    role="analyst", at=AT, owner="ana")
    forged = msgspec.structs.replace(r, owner="vic", version=50)
    feeds._on_case(record(encode(forged), 0, topic="access.alerts.cases", key=b"C-1"))
    assert not state.case_book.of_member("E00412")
    feeds._on_case(record(feeds.signer.encode("cases", "C-1", r), 1,
                          topic="access.alerts.cases", key=b"C-1"))
    feeds._on_case(record(None, 2, topic="access.alerts.cases", key=b"C-1"))
    held = state.case_book.of_member("E00412")
    assert [(c.case_id, c.owner, c.version) for c in held] == [("C-1", "ana", 1)]
    assert metric(feeds, "accesswatch_console_cases_rejected_total", reason="unsigned") == 1
    assert metric(feeds, "accesswatch_console_cases_rejected_total", reason="tombstone") == 1


# --- the key -----------------------------------------------------------------------
def test_the_key_is_the_setting_or_derived_from_the_secret() -> None:
    given, line = signing_key("k" * 40, b"secret-secret-secret", True)
    assert given == b"k" * 40 and "SIGNING_KEY" in line
    one, line = signing_key(None, b"secret-secret-secret", True)
    again, _ = signing_key(None, b"secret-secret-secret", True)
    other, _ = signing_key(None, b"another-secret-secret", True)
    assert one == again != other and one != b"secret-secret-secret"
    assert "derived from ACCESSWATCH_CONSOLE_SECRET" in line
    _, random_line = signing_key(None, b"random", False)
    assert "cannot be verified" in random_line


def test_the_siem_export_leaves_out_what_the_feed_would_quarantine() -> None:
    from console.siem import newest

    # to_ecs reads reasons[0]: an empty list once stopped the webhook loop for good
    held = newest([good("aw-good"), BAD_ALERTS["reasons: []"][0], None,
                   BAD_ALERTS["bad created_at"][0]])
    assert list(held) == ["aw-good"]
