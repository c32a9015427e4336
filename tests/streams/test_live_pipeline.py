"""End to end through the real broker: a generated force, kcat, a worker restarted mid-way.

The events go in by kcat (a client this project did not write), in two
halves with the worker stopped and started between them, so the second
worker must carry on from the changelog.  The alert set must equal the
backtest's on the same lines; every invalid line must be on the DLQ with its
reason and original bytes; consumed = processed + rejected on /metrics.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest

from accesswatch.backtest import run_backtest
from accesswatch.contract.timestamps import format_ts
from accesswatch.generate import generate_force
from accesswatch.ops.produce import event_key
from accesswatch.reference import load_reference_dir
from accesswatch.rules import load_rules
from benchmarks.delivery import deliver
from streams.settings import Settings
from streams.topics import create_topics
from tests.reliability.harness import content, newest
from tests.streams.live import (
    WorkerProcess,
    aw,
    kcat_produce,
    partitions_by_key,
    produce,
    read_topic,
    total,
)

pytestmark = pytest.mark.broker

# Lines a worker must dead-letter, beyond the generator's own, with the class each gets.
INVALID = {
    b"\xff\xfe not utf-8 at all": "invalid_utf8",
    b'{"event_id": "bad-types", "ts": "2026-03-03T10:00:00Z", "user_id": 42, '
    b'"terminal_id": "T", "system": "PNC", "action": "view"}': "wrong_type",
    b'{"event_id": "bad-zone", "ts": "2026-03-03T10:00:00", "user_id": "E1", '
    b'"terminal_id": "T", "system": "PNC", "action": "view"}': "bad_timestamp",
    b'{"event_id": "no-user", "ts": "2026-03-03T10:00:00Z"}': "missing_field",
    # Truncated JSON that starts as an array: decode_event lets msgspec.DecodeError
    # escape (a core bug, reported); the worker must refuse it all the same.
    b"[[[[[[[[[[": "invalid_json",
}


@dataclass
class Run:
    settings: Settings
    env: dict[str, str]
    work: Path
    force: Path
    lines: list[bytes]
    invalid: list[bytes]
    first: dict[str, float] = field(default_factory=dict)  # worker 1's final metrics
    second: dict[str, float] = field(default_factory=dict)
    worker: WorkerProcess | None = None
    events_per_second: float = 0.0


# Both sources of events (streams/source.py): a plain aiokafka consumer (the default) and a
# Faust agent (``FAST_PATH=false``).
@pytest.fixture(scope="module", params=["fast-path", "faust-delivery"])
def run(broker: str, tmp_path_factory: pytest.TempPathFactory,  # type: ignore[no-untyped-def]
        request: pytest.FixtureRequest):
    work = tmp_path_factory.mktemp("live")
    p = f"e{uuid.uuid4().hex[:8]}"
    env = {"ACCESSWATCH_BOOTSTRAP_SERVERS": broker, "ACCESSWATCH_APP_ID": f"{p}-aw",
           "ACCESSWATCH_TOPIC_EVENTS": f"{p}.events", "ACCESSWATCH_TOPIC_ALERTS": f"{p}.alerts",
           "ACCESSWATCH_TOPIC_DLQ": f"{p}.dlq", "ACCESSWATCH_TOPIC_REF_STAFF": f"{p}.staff",
           "ACCESSWATCH_TOPIC_REF_SUBJECTS": f"{p}.subjects",
           "ACCESSWATCH_TOPIC_REF_CASES": f"{p}.cases",
           "ACCESSWATCH_TOPIC_REF_DUTIES": f"{p}.duties", "ACCESSWATCH_PARTITIONS": "4",
           "ACCESSWATCH_DATA_DIR": str(work / "faust"),
           "ACCESSWATCH_FAST_PATH": str(request.param == "fast-path").lower(),
           "ACCESSWATCH_ALERT_UPDATE_INTERVAL": "0.5"}
    settings = Settings.model_validate({k.removeprefix("ACCESSWATCH_").lower(): v
                                        for k, v in env.items()})
    force = work / "force"
    generate_force(force, staff=150, days=3, seed=11, invalid_lines=8)
    # As feeds deliver (contract v1.1): late, in extracts, an outage backlog, repeats.
    deliver(force / "events.jsonl", work / "delivered.jsonl", seed=11)
    lines = [ln for ln in (work / "delivered.jsonl").read_bytes().split(b"\n") if ln.strip()]
    step = len(lines) // (len(INVALID) + 1)
    for n, bad in enumerate(INVALID, 1):
        lines.insert(n * step, bad)
    invalid = [ln for ln in lines if _is_invalid(ln)]
    # The backtest's input: all lines but those the core decoder crashes on (see INVALID).
    (work / "all.jsonl").write_bytes(b"\n".join(ln for ln in lines if _core_decodes(ln)) + b"\n")

    create_topics(settings)
    loaded = aw(env, "load-ref", str(force), cwd=work)
    assert loaded.returncode == 0, loaded.stderr
    r = Run(settings, env, work, force, lines, invalid)
    half = len(lines) // 2
    first, second = lines[:half], lines[half:]

    kcat_produce(broker, settings.topic_events, [(event_key(ln), ln) for ln in first])
    w1 = WorkerProcess(env, work, "worker1")
    try:
        w1.wait_ready()
        started = time.monotonic()
        _wait_consumed(w1, len(first))
        r.events_per_second = len(first) / (time.monotonic() - started)
        print(f"\nworker drained {len(first):,} events at {r.events_per_second:,.0f} events/s")
        _wait_alerts_published(w1, settings)
        r.first = w1.metrics()
    finally:
        assert w1.stop() == 0, w1.tail()

    w2 = r.worker = WorkerProcess(env, work, "worker2")
    try:
        w2.wait_ready()
        kcat_produce(broker, settings.topic_events, [(event_key(ln), ln) for ln in second])
        _wait_consumed(w2, len(second))
        r.second = _wait_alerts_published(w2, settings, before=r.first)
        yield r
    finally:
        w2.stop()


def _is_invalid(line: bytes) -> bool:
    from accesswatch.errors import InvalidRecord
    from streams.batch import decode

    try:
        decode(line)
    except InvalidRecord:
        return True
    return False


def _core_decodes(line: bytes) -> bool:
    """False for a line ``decode_event`` raises on with something not ``InvalidRecord``."""
    from accesswatch.contract.events import decode_event
    from accesswatch.errors import InvalidRecord

    try:
        decode_event(line)
    except InvalidRecord:
        return True
    except Exception:
        return False
    return True


def _wait_consumed(w: WorkerProcess, n: int) -> None:
    from tests.streams.conftest import wait_until

    wait_until(lambda: w.proc.poll() is None and total(w.metrics(),
               "accesswatch_events_consumed_total") >= n, 120, f"{n} events consumed")


def _wait_alerts_published(w: WorkerProcess, s: Settings,
                           before: dict[str, float] | None = None) -> dict[str, float]:
    """Until the alert topic holds every alert the workers counted as published."""
    from tests.streams.conftest import wait_until

    def settled() -> dict[str, float] | None:
        m = w.metrics()
        if total(m, "accesswatch_alert_updates_held"):
            return None  # versions still waiting for their interval
        counted = sum(total(x, name) for x in (m, before or {})
                      for name in ("accesswatch_alerts_total", "accesswatch_alert_updates_total"))
        return m if len(read_topic(s, s.topic_alerts)) >= counted else None

    return wait_until(settled, 60, "published alerts to reach the alert topic", every=0.2)


def test_live_alerts_equal_the_backtest_in_content(run: Run) -> None:
    """The newest version of each live alert is the backtest's alert, every field but the
    publish fields; across the restart no version went out twice."""
    ref, problems = load_reference_dir(run.force)
    assert not problems
    expected = run_backtest(run.work / "all.jsonl", ref, load_rules())
    records = [msgspec.json.decode(r.value)
               for r in read_topic(run.settings, run.settings.topic_alerts)]
    assert expected.alerts, "the force should raise alerts"
    live = newest(records)
    assert set(live) == set(expected.alerts)
    backtest = {aid: content(msgspec.to_builtins(a)) for aid, a in expected.alerts.items()}
    assert {aid: content(a) for aid, a in live.items()} == backtest
    versions = [(a["alert_id"], a.get("version", 1)) for a in records]
    assert len(versions) == len(set(versions))
    assert any(v > 1 for _, v in versions), "the force should grow some alerts"


def test_alerts_are_keyed_by_member_and_match_the_schema(run: Run) -> None:
    from jsonschema import Draft202012Validator, FormatChecker

    from accesswatch.contract.schemas import schema

    validator = Draft202012Validator(schema("alert"), format_checker=FormatChecker())
    for r in read_topic(run.settings, run.settings.topic_alerts):
        alert = msgspec.json.decode(r.value)
        validator.validate(alert)
        assert r.key == alert["user_id"].encode()


def test_every_invalid_line_is_dead_lettered_with_reason_and_original_bytes(run: Run) -> None:
    dlq = read_topic(run.settings, run.settings.topic_dlq)
    assert Counter(r.value for r in dlq) == Counter(run.invalid)
    assert len(run.invalid) == len(INVALID) + 8
    for r in dlq:
        headers = dict(r.headers)
        assert headers["accesswatch-reason"], r
        assert headers["accesswatch-source-topic"] == run.settings.topic_events.encode()
        assert int(headers["accesswatch-source-offset"]) >= 0
        assert int(headers["accesswatch-source-partition"]) == r.partition
        if r.value in INVALID:
            assert headers["accesswatch-reason-class"].decode() == INVALID[r.value]


def test_consumed_equals_processed_plus_rejected_on_each_worker(run: Run) -> None:
    for m in (run.first, run.second):
        consumed = total(m, "accesswatch_events_consumed_total")
        assert consumed == (total(m, "accesswatch_events_processed_total")
                            + total(m, "accesswatch_events_rejected_total"))
    # A clean stop commits: the second worker read exactly the second half.
    assert total(run.first, "accesswatch_events_consumed_total") == len(run.lines) // 2
    assert total(run.second, "accesswatch_events_consumed_total") == (
        len(run.lines) - len(run.lines) // 2)
    assert total(run.first, "accesswatch_events_rejected_total") + total(
        run.second, "accesswatch_events_rejected_total") == len(run.invalid)


def test_kcat_partitions_members_as_the_project_clients_do(run: Run) -> None:
    from kafka.partitioner.default import murmur2

    for key, parts in partitions_by_key(read_topic(run.settings,
                                                   run.settings.topic_events)).items():
        assert parts == {(murmur2(key) & 0x7FFFFFFF) % 4}, key


def test_a_real_prometheus_scrapes_the_worker(run: Run, tmp_path: Path) -> None:
    from tests.streams.live import prometheus_query, run_prometheus

    assert run.worker is not None
    expected = total(run.second, "accesswatch_events_processed_total")
    with run_prometheus(tmp_path, run.worker.metrics_port) as base:
        got = prometheus_query(base, "sum(accesswatch_events_processed_total)", expected)
    assert got == expected


def test_reference_updates_take_effect_without_a_restart(run: Run) -> None:
    from tests.streams.conftest import wait_until

    s, w = run.settings, run.worker
    assert w is not None
    staff = [msgspec.json.decode(ln) for ln in (run.force / "staff.jsonl").read_bytes().split(
        b"\n") if ln.strip()]
    active = [m for m in staff if m["status"] == "active"]
    leaver, removed = {**active[0], "status": "leaver"}, active[1]
    upserts = "accesswatch_reference_updates_total{kind=staff,op=upsert}"
    before = w.metrics()[upserts]
    produce(s, s.topic_ref_staff, leaver["user_id"].encode(), msgspec.json.encode(leaver))
    produce(s, s.topic_ref_staff, removed["user_id"].encode(), None)  # a tombstone
    wait_until(lambda: w.metrics().get(upserts) == before + 1 and w.metrics().get(
        "accesswatch_reference_updates_total{kind=staff,op=tombstone}") == 1, 30,
        "the staff update and tombstone to be applied")

    when = format_ts(time.time())
    events = []
    for member, eid in ((leaver, "live-leaver-1"), (removed, "live-removed-1")):
        events.append(msgspec.json.encode({
            "event_id": eid, "ts": when, "user_id": member["user_id"], "terminal_id": "T-LIVE",
            "system": "PNC", "action": "search", "query": "live check"}))
    kcat_produce(s.servers[0], s.topic_events, [(event_key(e), e) for e in events])
    wanted = {("AW-011", leaver["user_id"]), ("AW-013", removed["user_id"])}

    def published() -> bool:
        got = {(a["rule_id"], a["user_id"])
               for a in map(msgspec.json.decode, (r.value for r in read_topic(s, s.topic_alerts)))}
        return wanted <= got

    wait_until(published, 30, "alerts for the leaver and the removed account", every=0.2)
    assert w.proc.poll() is None, "the worker is still running"


def test_report_throughput(run: Run) -> None:
    # Not a target here (issue 5 sets those); recorded so a regression is visible.
    assert run.events_per_second > 500


def test_events_took_the_configured_path(run: Run) -> None:
    assert run.worker is not None
    log = run.worker.log.read_text(errors="replace")
    fast = run.env["ACCESSWATCH_FAST_PATH"] == "true"
    expected = "(Kafka source)" if fast else "(Faust source)"
    assert expected in log, run.worker.tail()
    other = "(Faust source)" if fast else "(Kafka source)"
    assert other not in log
