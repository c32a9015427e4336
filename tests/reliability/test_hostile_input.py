"""Item 5: hostile input never stops the pipeline, and never slips through.

The decoder, fuzzed at the byte level (tests/contract checks it field by
field against the schema): whatever the bytes, ``decode_event`` returns an
event or raises ``InvalidRecord``, never anything else; and when the bytes are
JSON a strict parser reads, it accepts exactly what the JSON Schema accepts.

The worker, fed a hostile feed through the real broker: invalid JSON,
truncated lines, wrong types, missing fields, empty and oversized strings,
NaN, zone-less timestamps, unknown enum values, invalid UTF-8, deep nesting,
control characters, injection text, duplicate keys and messages of several
megabytes, mixed with valid events (some of them hostile but valid).  Every
invalid message must reach the DLQ with its reason, every valid one be
processed, the worker keep running and its memory stay bounded.  An event for
a user_id not in the staff directory is processed and raises "unknown
account" (AW-013).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from accesswatch.contract.events import MAX_EVENT_BYTES, decode_event
from accesswatch.contract.schemas import schema
from accesswatch.errors import InvalidRecord
from streams.batch import decode
from tests.reliability.harness import (
    Figures,
    Force,
    Ledger,
    pipeline_env,
    prepare,
    published,
    wait_committed_to_end,
)
from tests.streams.conftest import wait_until
from tests.streams.live import WorkerProcess, read_topic, total

VALIDATOR = Draft202012Validator(schema("access_event"), format_checker=FormatChecker())
VALID: dict[str, Any] = {
    "event_id": "e-1", "ts": "2026-03-02T08:15:00Z", "user_id": "E10073",
    "terminal_id": "NTH-T1", "system": "PNC", "action": "view", "subject_type": "person",
    "subject_id": "P-1", "query": "smith ls1", "case_ref": "C-1", "result_count": 3,
}
INJECTION = ["'; DROP TABLE staff; --", "${jndi:ldap://x.example/a}", "<script>alert(1)</script>",
             "\n[2026-03-02 08:00:00,000] ERROR accesswatch.worker: forged line",
             "{{7*7}}", "../../etc/passwd", "\u202eevil\u202c", "\x1b[31mred\x1b[0m"]


# ---- the decoder, fuzzed -------------------------------------------------------------

def outcome(raw: bytes) -> bool:
    """True when accepted; fails the test on any exception but ``InvalidRecord``."""
    try:
        decode_event(raw)
    except InvalidRecord as e:
        assert e.reason and e.reason_class, raw[:80]
        return False
    return True


def schema_says(raw: bytes) -> bool | None:
    """The schema's verdict when a strict JSON parser reads ``raw``; None when it cannot.

    None too for a whole-valued float past 2**53 (``9007199254740994.0``): JSON Schema
    calls it an integer, but it cannot be an exact one, and the decoder refuses it for
    an integer field on purpose.
    """
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constants,
                           parse_float=_exact_float)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return VALIDATOR.is_valid(value)


def _exact_float(text: str) -> float:
    number = float(text)
    if number.is_integer() and abs(number) >= 2**53:
        raise ValueError("a whole number too large to be exact")
    return number


def _no_constants(name: str) -> Any:
    raise ValueError(name)  # NaN and Infinity are not JSON


wire = st.builds(lambda e: json.dumps(e, ensure_ascii=False).encode(), st.just(VALID))


@st.composite
def hostile_bytes(draw: st.DrawFn) -> bytes:
    base = json.dumps({**VALID, **draw(st.dictionaries(
        st.sampled_from(sorted(VALID)) | st.text(max_size=8),
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
        | st.text(max_size=40) | st.sampled_from(INJECTION), max_size=3))},
        ensure_ascii=draw(st.booleans())).encode()
    how = draw(st.sampled_from(["as is", "truncate", "splice", "nan", "dup", "nest", "ctrl"]))
    if how == "truncate":
        return base[: draw(st.integers(0, len(base)))]
    if how == "splice":
        at = draw(st.integers(0, len(base)))
        return base[:at] + draw(st.binary(min_size=1, max_size=8)) + base[at:]
    if how == "nan":
        return base.replace(b'"result_count": 3', b'"result_count": NaN', 1)
    if how == "dup":
        return base[:-1] + b', "user_id": ' + json.dumps(draw(st.text(max_size=70))).encode() + b"}"
    if how == "nest":
        depth = draw(st.integers(1, 3000))
        return base[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"
    if how == "ctrl":
        return base.replace(b"smith", bytes([draw(st.integers(0, 31))]), 1)
    return base


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | hostile_bytes())
def test_decoder_raises_only_invalid_record_and_agrees_with_the_schema(raw: bytes) -> None:
    accepted = outcome(raw)
    verdict = schema_says(raw)
    if verdict is not None and b'"x": [' not in raw:  # deep nesting is refused on purpose
        assert accepted == verdict, raw[:200]


def test_decoder_refuses_what_is_too_big_or_too_deep() -> None:
    big = json.dumps({**VALID, "query": "x" * MAX_EVENT_BYTES}).encode()
    with pytest.raises(InvalidRecord) as too_big:
        decode_event(big)
    assert too_big.value.reason_class == "too_large"
    with pytest.raises(InvalidRecord) as too_deep:
        decode_event(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert too_deep.value.reason_class == "too_deep"


# ---- the worker, fed a hostile feed ---------------------------------------------------

def event(i: int, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"hostile-{i}", "ts": f"2026-03-03T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "user_id": "E10073", "terminal_id": "T-FUZZ", "system": "PNC", "action": "search",
            "query": "fuzz", **fields}


def hostile_feed(staff_id: str, seed: int = 6) -> list[bytes]:
    """A fixed, varied feed: every kind of hostile message, and valid ones between."""
    rnd = random.Random(seed)
    out: list[bytes] = []
    enc = msgspec.json.encode
    for i in range(400):
        base = event(i, user_id=staff_id)
        kind = i % 20
        if kind == 0:
            out.append(enc(base)[: rnd.randint(0, 60)])  # truncated
        elif kind == 1:
            out.append(b"{not json at all " + bytes(rnd.randbytes(8)))
        elif kind == 2:
            out.append(enc({**base, "user_id": rnd.choice([42, None, [], {}, True])}))
        elif kind == 3:
            out.append(enc({k: v for k, v in base.items() if k != rnd.choice(
                ["event_id", "ts", "user_id", "terminal_id", "system", "action"])}))
        elif kind == 4:
            out.append(enc({**base, "system": ""}))  # empty where one is required
        elif kind == 5:
            out.append(enc({**base, "query": "q" * 5000}))  # longer than the 1,024 allowed
        elif kind == 6:
            out.append(enc(base).replace(b'"query":"fuzz"', b'"result_count":NaN'))
        elif kind == 7:
            out.append(enc({**base, "ts": "2026-03-03T10:00:00"}))  # no zone
        elif kind == 8:
            out.append(enc({**base, "action": rnd.choice(["delete", "VIEW", "", "drop"])}))
        elif kind == 9:
            out.append(enc(base).replace(b"fuzz", b"fu\xff\xfezz"))  # invalid UTF-8
        elif kind == 10:
            out.append(enc(base)[:-1] + b',"x":' + b"[" * 5000 + b"]" * 5000 + b"}")
        elif kind == 11:
            out.append(enc({**base, "query": rnd.choice(INJECTION)}))  # valid, hostile text
        elif kind == 12:
            out.append(enc({**base, "query": "line\nbreak\ttab\x00nul\x07bell"}))  # valid
        elif kind == 13:
            out.append(enc(base)[:-1] + b',"user_id":"SOMEONE-ELSE"}')  # duplicate key: valid
        elif kind == 14:
            out.append(b"")  # empty message
        elif kind == 15:
            out.append(enc({**base, "event_id": "e" * 129}))  # too long an id
        else:
            out.append(enc(base))  # plain valid
    unknown = event(9999, user_id="NOT-IN-DIRECTORY-1")
    out.append(msgspec.json.encode(unknown))
    for mb in (2, 3, 5):  # several megabytes each: refused as too large
        out.append(msgspec.json.encode(event(9000 + mb, query="M" * (mb * 1_000_000))))
    return out


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.broker
def test_worker_dead_letters_every_hostile_message_and_keeps_going(
        broker: str, force: Force, ledger: Ledger, tmp_path: Path) -> None:
    env = pipeline_env(broker, tmp_path)
    from tests.reliability.harness import settings_of

    s = settings_of(env)
    # A broker that takes messages of several megabytes, as some forces' do: the worker
    # must refuse them itself, and its dead letters must still fit the default limit.
    admin = KafkaAdminClient(bootstrap_servers=s.servers)
    try:
        admin.create_topics([NewTopic(s.topic_events, s.partitions, 1,
                                      topic_configs={"max.message.bytes": str(16 << 20)})])
    finally:
        admin.close()
    prepare(env, force, tmp_path)
    staff_id = msgspec.json.decode((force.dir / "staff.jsonl").read_bytes().splitlines()[0])[
        "user_id"]
    feed = hostile_feed(staff_id)
    expected_class = {}
    for raw in feed:
        try:
            decode(raw)
        except InvalidRecord as e:
            expected_class[raw] = e.reason_class
    valid = [raw for raw in feed if raw not in expected_class]
    assert len(expected_class) > 100 and len(valid) > 100

    w = WorkerProcess(env, tmp_path, "hostile-worker")
    try:
        w.wait_ready()
        before = rss_kib(w.proc.pid)
        producer = KafkaProducer(bootstrap_servers=s.servers, max_request_size=16 << 20,
                                 acks="all")
        where: dict[tuple[int, int], bytes] = {}
        try:
            for raw in feed * 3:  # three rounds: memory must not grow with the volume
                # Keyed by user_id, as the contract says (the worker refuses anything else
                # as key_mismatch: tests/streams/test_source_live.py); junk by a fixed key.
                key = b"E-FUZZ" if raw in expected_class else decode(raw).user_id.encode()
                meta = producer.send(s.topic_events, key=key, value=raw).get(timeout=60)
                where[(meta.partition, meta.offset)] = raw
        finally:
            producer.close()
        wait_committed_to_end(s, timeout=120)
        assert w.proc.poll() is None, "the worker kept running"
        after = rss_kib(w.proc.pid)
        m = w.metrics()
        unknown = ("AW-013", "NOT-IN-DIRECTORY-1")
        wait_until(lambda: unknown in {(a["rule_id"], a["user_id"]) for a in published(s)}, 30,
                   "the unknown-account alert")
        dlq = read_topic(s, s.topic_dlq)
    finally:
        w.stop()

    invalid_sent = sum(1 for raw in where.values() if raw in expected_class)
    valid_sent = len(where) - invalid_sent
    ledger.add(Figures(
        "hostile feed, three rounds", sent=len(where),
        processed=int(total(m, "accesswatch_events_processed_total")),
        dead_lettered=len(dlq),
        lost=len(where) - int(total(m, "accesswatch_events_consumed_total")),
        duplicate_alerts=0, alerts=0,
        notes=[f"RSS {before // 1024} MiB before, {after // 1024} MiB after"]))
    assert total(m, "accesswatch_events_consumed_total") == len(where)
    assert total(m, "accesswatch_events_processed_total") == valid_sent
    assert len(dlq) == invalid_sent
    for r in dlq:
        h = dict(r.headers)
        original = where[(int(h["accesswatch-source-partition"]),
                          int(h["accesswatch-source-offset"]))]
        assert h["accesswatch-reason"], original[:80]
        assert h["accesswatch-reason-class"].decode() == expected_class[original]
        if len(original) > s.dlq_max_bytes:  # kept its head, says how big it was
            assert int(h["accesswatch-original-bytes"]) == len(original)
            assert r.value == original[: s.dlq_max_bytes]
        else:
            assert r.value == original
    assert after - before < 200 * 1024, f"RSS grew from {before} to {after} KiB"
