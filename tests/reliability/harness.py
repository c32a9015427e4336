"""What the fault tests share: a force and its backtest, a pipeline's topics, and accounting.

Every fault test reports the same figures (events sent, processed,
dead-lettered, lost; alert versions published twice), collected in a
``Ledger`` and printed at the end of the session; the reliability table in docs/live-pipeline.md
quotes them.  Alerts are living records (contract v1.1): the topic holds each
alert's versions, and the newest version of each must equal the backtest's
alert in every field but the publish fields (``created_at``, ``updated_at``,
``version``).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from accesswatch.backtest import run_backtest
from accesswatch.contract.timestamps import format_ts
from accesswatch.errors import InvalidRecord
from accesswatch.generate import generate_force
from accesswatch.ops.produce import event_key
from accesswatch.reference import load_reference_dir
from accesswatch.rules import load_rules
from benchmarks.delivery import deliver
from streams.batch import decode
from streams.settings import Settings
from streams.topics import create_topics
from tests.streams.conftest import unique_env, wait_until
from tests.streams.live import WorkerProcess, aw, kcat_produce, read_topic, total

# Lines a worker must dead-letter, mixed into the generated feed (besides its own 8).
EXTRA_INVALID = [
    b"\xff\xfe not utf-8 at all",
    b'{"event_id": "bad-types", "ts": "2026-03-03T10:00:00Z", "user_id": 42, '
    b'"terminal_id": "T", "system": "PNC", "action": "view"}',
    b'{"event_id": "bad-zone", "ts": "2026-03-03T10:00:00", "user_id": "E1", '
    b'"terminal_id": "T", "system": "PNC", "action": "view"}',
    b'{"event_id": "no-user", "ts": "2026-03-03T10:00:00Z"}',
]


@dataclass
class Force:
    """A generated force: its files, the feed as lines, and what the backtest makes of it."""

    dir: Path
    lines: list[bytes]
    invalid: list[bytes]  # what a worker must dead-letter: the invalid, and the too late
    expected: set[str]  # alert ids the backtest raises on ``lines``
    alerts: dict[str, dict] = field(default_factory=dict)  # ... and their content

    @property
    def valid(self) -> int:
        return len(self.lines) - len(self.invalid)

    def keyed(self, lines: list[bytes] | None = None) -> list[tuple[bytes | None, bytes]]:
        return [(event_key(ln), ln) for ln in (self.lines if lines is None else lines)]


def is_invalid(line: bytes) -> bool:
    try:
        decode(line)
    except InvalidRecord:
        return True
    return False


def make_force(work: Path, staff: int = 150, days: int = 3, seed: int = 11) -> Force:
    """A generated force delivered as real feeds deliver (contract v1.1): per-source lag,
    extracts, an outage backlog and repeated lines (``benchmarks/delivery.py``), with
    hostile lines mixed in and, at the end, events too late to judge."""
    d = work / "force"
    generate_force(d, staff=staff, days=days, seed=seed, invalid_lines=8)
    deliver(d / "events.jsonl", work / "delivered.jsonl", seed=seed)
    lines = [ln for ln in (work / "delivered.jsonl").read_bytes().split(b"\n") if ln.strip()]
    step = len(lines) // (len(EXTRA_INVALID) + 1)
    for n, bad in enumerate(EXTRA_INVALID, 1):
        lines.insert(n * step, bad)
    late = too_late(lines)
    lines += late
    (work / "feed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    ref, problems = load_reference_dir(d)
    assert not problems, problems
    expected = run_backtest(work / "feed.jsonl", ref, load_rules())
    assert expected.alerts, "the force should raise alerts"
    refused = [ln for ln in lines if is_invalid(ln)] + late
    # The backtest refuses what a worker must dead-letter, no more, no less.
    assert (expected.rejected, expected.too_late) == (len(refused), len(late))
    assert expected.repeats > 0, "the delivery should repeat some lines"
    return Force(d, lines, refused, set(expected.alerts),
                 {aid: content(msgspec.to_builtins(a)) for aid, a in expected.alerts.items()})


def too_late(lines: list[bytes], n: int = 3) -> list[bytes]:
    """New events two days behind their member's newest: sent last, they are refused."""
    out = []
    for line in lines[:: max(1, len(lines) // n)][:n]:
        try:
            event = decode(line)
        except InvalidRecord:
            continue
        doc = msgspec.json.decode(line)
        doc["event_id"] = f"too-late-{len(out)}"
        doc["ts"] = format_ts(event.t - 2 * 86400)
        out.append(msgspec.json.encode(doc))
    return out


PUBLISH_FIELDS = ("created_at", "updated_at", "version")


def content(alert: dict) -> dict:
    """An alert without its publish fields: what live and backtest must agree on."""
    return {k: v for k, v in alert.items() if k not in PUBLISH_FIELDS}


def pipeline_env(broker: str, work: Path, **settings: str) -> dict[str, str]:
    """A fresh app id and topics on ``broker``; ``settings`` as ``name=value`` (no prefix)."""
    env = unique_env(broker)
    env["ACCESSWATCH_DATA_DIR"] = str(work / f"faust-{env['ACCESSWATCH_APP_ID']}")
    # Alert versions at most a second apart: the newest is out soon after the last event.
    env["ACCESSWATCH_ALERT_UPDATE_INTERVAL"] = "1"
    env.update({f"ACCESSWATCH_{k.upper()}": v for k, v in settings.items()})
    return env


def settings_of(env: dict[str, str]) -> Settings:
    return Settings.model_validate({k.removeprefix("ACCESSWATCH_").lower(): v
                                    for k, v in env.items()})


def prepare(env: dict[str, str], force: Force, work: Path) -> Settings:
    """Create every topic and load the force's reference data."""
    s = settings_of(env)
    create_topics(s)
    loaded = aw(env, "load-ref", str(force.dir), cwd=work)
    assert loaded.returncode == 0, loaded.stderr
    return s


def produce(s: Settings, force: Force, lines: list[bytes]) -> None:
    kcat_produce(s.servers[0], s.topic_events, force.keyed(lines))


def end_offsets(s: Settings, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=s.servers, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def committed_offsets(s: Settings) -> dict[int, int]:
    """The worker group's committed offsets on the events topic (0 where none yet)."""
    client = KafkaAdminClient(bootstrap_servers=s.servers)
    try:
        got = client.list_group_offsets(s.app_id).get(s.app_id, {})
    finally:
        client.close()
    out = dict.fromkeys(range(s.partitions), 0)
    for tp, meta in got.items():
        if tp.topic == s.topic_events and meta.offset >= 0:
            out[tp.partition] = meta.offset
    return out


def wait_committed_to_end(s: Settings, timeout: float = 120) -> dict[int, int]:
    """Until the group has committed every events partition to its end."""
    ends = end_offsets(s, s.topic_events)
    seen: list[dict[int, int]] = [{}]

    def done() -> bool:
        seen[0] = committed_offsets(s)
        return seen[0] == ends

    try:
        wait_until(done, timeout, f"the group to commit to the end offsets {ends}", every=0.2)
    except AssertionError as e:
        raise AssertionError(f"{e}; last committed {seen[0]}") from None
    return ends


def published(s: Settings) -> list[dict]:
    """Every alert version on the alert topic, as a committed-only reader sees it."""
    return [msgspec.json.decode(r.value)
            for r in read_topic(s, s.topic_alerts, isolation_level="read_committed")]


def alert_ids(s: Settings) -> list[str]:
    """The alert id of every version on the alert topic (an alert's id once per version)."""
    return [a["alert_id"] for a in published(s)]


def newest(records: list[dict]) -> dict[str, dict]:
    """What a reader keeps: the highest version of each alert (absent means 1)."""
    out: dict[str, dict] = {}
    for a in records:
        held = out.get(a["alert_id"])
        if held is None or a.get("version", 1) > held.get("version", 1):
            out[a["alert_id"]] = a
    return out


def alerts_settled(s: Settings, force: Force) -> bool:
    """True once the newest version of every alert equals the backtest's."""
    got = newest(published(s))
    return {aid: content(a) for aid, a in got.items()} == force.alerts


def differences(records: list[dict], force: Force) -> str:
    """Which alerts' newest versions differ from the backtest's, and how, for a failure message."""
    got = newest(records)
    differ = _differing(got, force)
    if not differ:
        return "every alert equal to the backtest's"
    first = differ[0]
    ours, theirs = content(got[first]), force.alerts[first]
    fields = {k: (ours.get(k), theirs.get(k)) for k in ours.keys() | theirs.keys()
              if ours.get(k) != theirs.get(k)}
    return f"{len(differ)} of {len(got)} differ; {first} (live, backtest): {fields}"


def _differing(got: dict[str, dict], force: Force) -> list[str]:
    """Ids of the alerts in both whose newest version differs from the backtest's."""
    return sorted(aid for aid in got.keys() & force.alerts.keys()
                  if content(got[aid]) != force.alerts[aid])


def dead_letters(s: Settings) -> list[tuple[int, int, bytes]]:
    """(source partition, source offset, original bytes) of every dead letter."""
    out = []
    for r in read_topic(s, s.topic_dlq, isolation_level="read_committed"):
        h = dict(r.headers)
        out.append((int(h["accesswatch-source-partition"]), int(h["accesswatch-source-offset"]),
                    r.value))
    return out


def assert_every_output_once(records: list[dict], dlq: list[tuple[int, int, bytes]],
                             force: Force) -> None:
    """The alert topic holds the backtest's alerts, each version once, the newest equal to
    the backtest's in content; the DLQ each invalid line, each once."""
    got = newest(records)
    assert set(got) == force.expected
    assert duplicates(records) == 0, Counter(_versions(records)).most_common(3)
    assert not _differing(got, force), differences(records, force)
    assert len(dlq) == len({(p, o) for p, o, _ in dlq}) == len(force.invalid)


def quietly(wait: Callable[[], object]) -> bool:
    """Run a ``wait_until``; False instead of the assertion when it times out."""
    try:
        wait()
    except AssertionError:
        return False
    return True


def kill9(w: WorkerProcess) -> None:
    """SIGKILL: no commit, no flush, no goodbye."""
    os.kill(w.proc.pid, signal.SIGKILL)
    w.proc.wait(10)
    w.stop()  # closes the log


def consumed(w: WorkerProcess) -> float:
    return total(w.metrics(), "accesswatch_events_consumed_total")


@dataclass
class Figures:
    """One fault test's accounting, as README's table shows it."""

    test: str
    sent: int
    processed: int
    dead_lettered: int
    lost: int
    duplicate_alerts: int
    alerts: int
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        extra = f"  ({'; '.join(self.notes)})" if self.notes else ""
        return (f"{self.test:<34} sent {self.sent:>6,}  processed {self.processed:>6,}  "
                f"dead-lettered {self.dead_lettered:>4,}  lost {self.lost}  "
                f"alerts {self.alerts:>4}  versions twice {self.duplicate_alerts}{extra}")


def duplicates(records: list[dict]) -> int:
    """Alert versions published more than once."""
    return sum(n - 1 for n in Counter(_versions(records)).values() if n > 1)


def _versions(records: list[dict]) -> list[tuple[str, int]]:
    return [(a["alert_id"], a.get("version", 1)) for a in records]


class Ledger:
    """Figures of every fault test in the session."""

    def __init__(self) -> None:
        self.figures: list[Figures] = []

    def add(self, f: Figures) -> Figures:
        self.figures.append(f)
        print(f"\n{f.line()}")
        return f


LEDGER = Ledger()


def run(*args: str, env: dict[str, str], cwd: Path, timeout: float = 120
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=timeout)
