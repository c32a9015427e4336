"""Reference data at national scale: one worker with 50,000 staff and 5,000,000 subjects.

The reference data is the cached 2,000-staff force's four files with a national
padding after them: ``accesswatch generate --reference-only`` writes the staff,
subjects, cases and duties that bring the totals to ``--national-staff`` and
``--national-subjects`` (ids under a prefix of their own, so none is the
force's), and the two sets of files are concatenated into one directory, cached
under the sizes, the seed and the force's name (which changes with the
generator's code).  The events are the force's first 24 hours: the padding is
held, looked up and never accessed, as most of a national directory would be.

On a fresh noida-db broker: topics from ``accesswatch topics create``; the
reference records on their compacted topics, each keyed by its key field
(``accesswatch load-ref``, or the same records validated the same way and
produced by ``kcat``: see ``publish``), timed; a model trained on the force's
days 1-7 by ``accesswatch train``.  Then:

1. Cold start: one ``accesswatch worker`` (rules + model) in an empty data dir;
   seconds from its start to ``/healthz`` ok (reference data caught up) and all
   4 event partitions owned; VmRSS and VmHWM (peak) then.  ``accesswatch replay
   --rate 0`` feeds the day; once the worker has read it all, VmRSS and VmHWM
   again, and events/s (replay start to the last event read, and the worker's
   own batch time).  The worker is stopped by SIGTERM.
2. Restart: the same worker (same app id, topics and data dir); seconds to
   healthy, whether it started from a reference snapshot (its log says so), the
   snapshot's size on disk, memory.  The same day is replayed again: the worker
   skips events it has done, so the alerts must not change (no new versions).

The alerts on the alerts topic (each id's highest version) are compared with
``accesswatch backtest``'s on the same events with the same reference directory
and model, by id and by content (every field but the publish times and the
version number, which count publications, not evidence).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from accesswatch.contract.reference import KEY_FIELDS, decode_reference
from accesswatch.errors import InvalidRecord
from accesswatch.reference import FILES
from benchmarks import readback
from benchmarks.broker import LiveBenchError, Processes, noida_version, session
from benchmarks.memory import first_day
from benchmarks.report import unavailable
from benchmarks.workers import TreePeak, Worker, cli

TARGET_RSS_MB = 1536  # 1.5 GB
TARGET_COLD_S = 60
TARGET_SNAPSHOT_S = 10
NAME = "national"
REF_PARTITIONS = 8  # partitions of each ref.* topic: a cold read takes them one at a time
PREFIX = "N"  # the padding's ids: none of them the force's
# How the padding is made; a test or a development stand-in may point it elsewhere.
GENERATE = [sys.executable, "-m", "accesswatch.cli", "generate", "--reference-only"]
# Fields that say when and how often an alert was published, not what it found.
PUBLISH_FIELDS = ("created_at", "updated_at", "version")


def reference(force: Path, staff: int, subjects: int, seed: int, cache: Path) -> Path:
    """The force's reference files plus a padding to ``staff`` and ``subjects`` in all,
    made once and cached (the force's name changes with the generator's code)."""
    out = cache / f"national-{staff}x{subjects}-s{seed}-{force.name}"
    if (out / "counts.json").exists():
        return out
    have = {kind: lines(force / name) for kind, name in FILES.items()}
    pad_staff, pad_subjects = staff - have["staff"], subjects - have["subject"]
    if pad_staff < 1 or pad_subjects < 1:
        raise LiveBenchError(f"national scale: {staff:,} staff and {subjects:,} subjects are "
                             f"not more than the force's {have['staff']:,} and "
                             f"{have['subject']:,}")
    partial = cache / (out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    padding = partial / "padding"
    started = time.perf_counter()
    done = subprocess.run([*GENERATE, "--out", str(padding), "--staff", str(pad_staff),
                           "--subjects", str(pad_subjects), "--id-prefix", PREFIX,
                           "--seed", str(seed)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LiveBenchError(f"generate --reference-only failed:\n{done.stderr[-3000:]}")
    generate_seconds = time.perf_counter() - started
    counts = merge([force, padding], partial)
    shutil.rmtree(padding)
    (partial / "counts.json").write_text(json.dumps(
        {**counts, "padding_staff": pad_staff, "padding_subjects": pad_subjects,
         "generate_seconds": round(generate_seconds, 1)}))
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return out


def merge(sources: Iterable[Path], dest: Path) -> dict[str, int]:
    """Each reference file of ``sources``, one after another, into ``dest``: records by kind.

    A source's file without a final newline still ends its last line; blank lines go.
    """
    dest.mkdir(parents=True, exist_ok=True)
    sources = list(sources)
    counts = {}
    for kind, name in FILES.items():
        n = 0
        with (dest / name).open("wb") as out:
            for source in sources:
                path = source / name
                if not path.exists():
                    continue
                with path.open("rb") as f:
                    for line in f:
                        if line.strip():
                            out.write(line if line.endswith(b"\n") else line + b"\n")
                            n += 1
        counts[kind] = n
    return counts


def lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def publish(environ: dict[str, str], work: Path, ref: Path, method: str) -> float:
    """Put ``ref``'s records on the reference topics; the seconds it took.

    ``load-ref`` is the command an operator runs.  ``kcat`` sends the same records,
    checked by the same ``decode_reference`` and keyed by the same field, through
    librdkafka with Kafka's own key hashing (murmur2, as the Java and kafka-python
    clients hash): what load-ref would write, several times faster at this size.
    """
    started = time.perf_counter()
    if method == "load-ref":
        cli(environ, work, "load-ref", str(ref), timeout=3600)
        return time.perf_counter() - started
    address = environ["ACCESSWATCH_BOOTSTRAP_SERVERS"]
    topics = {"staff": "ref_staff", "subject": "ref_subjects", "case": "ref_cases",
              "duty": "ref_duties"}
    for kind, name in FILES.items():
        topic = environ[f"ACCESSWATCH_TOPIC_{topics[kind].upper()}"]
        log = work / f"kcat-{kind}.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                ["kcat", "-P", "-b", address, "-t", topic, "-K", "\t",
                 "-X", "partitioner=murmur2_random", "-X", "linger.ms=20",
                 "-X", "queue.buffering.max.kbytes=262144"],
                stdin=subprocess.PIPE, stderr=err)
            assert proc.stdin is not None
            try:
                with (ref / name).open("rb") as f:
                    for chunk in _keyed(kind, f):
                        proc.stdin.write(chunk)
            except BrokenPipeError:
                pass  # kcat stopped: its exit code and log say why
            finally:
                proc.stdin.close()
                code = proc.wait()
        said = log.read_text(errors="replace")
        if code != 0 or "ERROR" in said:
            raise LiveBenchError(f"kcat to {topic} exited with {code}:\n{said[-2000:]}")
    return time.perf_counter() - started


def _keyed(kind: str, f: Iterable[bytes], every: int = 20_000) -> Iterable[bytes]:
    """``key<TAB>record`` lines of a reference file, in chunks; an invalid record stops it."""
    field = KEY_FIELDS[kind]
    batch: list[bytes] = []
    for n, line in enumerate(f, 1):
        raw = line.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            key = getattr(decode_reference(kind, raw), field).encode()
        except InvalidRecord as e:
            raise LiveBenchError(f"{kind} line {n}: {e.reason}") from None
        if b"\t" in key or b"\n" in key:
            raise LiveBenchError(f"{kind} line {n}: a key kcat cannot carry")
        batch.append(key + b"\t" + raw + b"\n")
        if len(batch) >= every:
            yield b"".join(batch)
            batch.clear()
    if batch:
        yield b"".join(batch)


def bench_national(force: Path, cache: Path, staff: int, subjects: int, seed: int = 7,
                   load: str = "kcat") -> dict[str, Any]:
    """The figures for ``results.json``'s ``national`` (see the module docstring)."""
    started = time.perf_counter()
    ref = reference(force, staff, subjects, seed, cache)
    counts = json.loads((ref / "counts.json").read_text())
    with session(cache, NAME) as (work, procs, address):
        out = _run(force, ref, work, procs, address, load, sum(counts[k] for k in FILES))
    return {"broker": noida_version(), "staff": counts["staff"],
            "subjects": counts["subject"], "cases": counts["case"], "duties": counts["duty"],
            "reference_records": sum(counts[k] for k in FILES),
            "padding_staff": counts["padding_staff"],
            "padding_subjects": counts["padding_subjects"],
            "generate_seconds": counts.get("generate_seconds"), "seed": seed, **out,
            "wall_seconds": round(time.perf_counter() - started, 1)}


def _run(force: Path, ref: Path, work: Path, procs: Processes, address: str,
         load: str, records: int) -> dict[str, Any]:
    from benchmarks.live import pipeline_env

    day = work / "day.jsonl"
    events = first_day(force / "events.jsonl", day)
    model = work / "model.skops"
    environ = pipeline_env(address, NAME, model, events=f"bench.{NAME}.events",
                           ref_staff=f"bench.{NAME}.ref.staff",
                           ref_subjects=f"bench.{NAME}.ref.subjects",
                           ref_cases=f"bench.{NAME}.ref.cases",
                           ref_duties=f"bench.{NAME}.ref.duties")
    # National reference topics get more partitions (docs/scaling.md): a cold read takes
    # them one at a time, so no fetch answer holds a whole 5-million-record topic.
    environ["ACCESSWATCH_REF_PARTITIONS"] = str(REF_PARTITIONS)
    cli(environ, work, "topics", "create")
    load_seconds = publish(environ, work, ref, load)
    on_topics = sum(asyncio.run(readback.record_count(address, environ[f"ACCESSWATCH_TOPIC_{k}"]))
                    for k in ("REF_STAFF", "REF_SUBJECTS", "REF_CASES", "REF_DUTIES"))
    if on_topics != records:
        raise LiveBenchError(f"{records:,} reference records sent, {on_topics:,} on the topics")
    started = time.perf_counter()
    cli(environ, work, "train", str(force / "events.jsonl"), "--ref", str(force), "--out",
        str(model), "--days", "7")
    train_seconds = time.perf_counter() - started
    expected, backtest_seconds = backtest(environ, day, ref, model, work)
    alerts_topic = environ["ACCESSWATCH_TOPIC_ALERTS"]
    data = work / f"{NAME}-data"
    worker, cold = _start(procs, f"{NAME}-cold", environ, work, data)
    cold.update(_feed(procs, worker, environ, day, events))
    first = asyncio.run(latest_alerts(address, alerts_topic))
    snapshot = data / "reference-snapshot"
    snapshot_mb = round(du(snapshot) / 1e6, 1) if snapshot.exists() else None
    committed = _committed(address, f"bench-{NAME}", environ["ACCESSWATCH_TOPIC_EVENTS"])
    worker, warm = _start(procs, f"{NAME}-restart", environ, work, data)
    # The topic now holds the day twice over: the restarted worker reads past what the
    # first one committed, the rest of the first replay (if any) and the whole second.
    warm.update(_feed(procs, worker, environ, day, 2 * events - committed))
    second = asyncio.run(latest_alerts(address, alerts_topic))
    return {
        "events": events, "load": load, "load_seconds": round(load_seconds, 1),
        "load_records_per_s": round(on_topics / load_seconds) if load_seconds else 0,
        "records_on_topics": on_topics, "train_seconds": round(train_seconds, 1),
        "backtest_seconds": round(backtest_seconds, 1), "backtest_alerts": len(expected),
        "cold": cold, "snapshot_mb": snapshot_mb, "restart": warm,
        "committed_before_restart": committed,
        "alerts_cold": {**compare_alerts(first[0], expected), "records": first[1]},
        "alerts_restart": {**compare_alerts(second[0], expected), "records": second[1],
                           "republished": second[1] - first[1]},
    }


def _start(procs: Processes, name: str, environ: dict[str, str], work: Path,
           data: Path) -> tuple[Worker, dict[str, Any]]:
    """A worker started in ``data`` and left running: seconds to healthy, memory then."""
    had_snapshot = (data / "reference-snapshot").exists()
    started = time.perf_counter()
    worker = Worker(procs, name, environ, work, data_dir=data)
    together = TreePeak(worker.proc.pid)
    try:
        worker.wait_healthy(timeout=1800)
        healthy = time.perf_counter() - started
        worker.wait_owning(4, timeout=600)
        owning = time.perf_counter() - started
        memory = worker.memory()
        held = worker.metrics().get("accesswatch_reference_records", 0)
    except BaseException:
        worker.stop()
        raise
    finally:
        with_children = together.stop()
    log = procs.tail(name, 100_000).splitlines()
    said = [ln for ln in log if "snapshot" in ln.lower()]
    second = [float(m.group(1)) for ln in log
              if (m := re.search(r"second reader after .*its peak RSS (\d+) MB", ln))]
    return worker, {"healthy_seconds": round(healthy, 1), "owning_seconds": round(owning, 1),
                    "at_healthy": memory, "reference_records_held": int(held),
                    # the cold read's second process (streams/reference_part.py), if any,
                    # and the most the two held at once (sampled every 0.1 s)
                    "second_reader_peak_mb": second[-1] if second else None,
                    "peak_with_children_mb": with_children,
                    "snapshot_before": had_snapshot,
                    "snapshot_used": snapshot_used(had_snapshot, said),
                    "snapshot_log": said[-3:]}


def snapshot_used(existed: bool, said: list[str]) -> bool:
    """Whether a worker started from its snapshot: one was there and its log says it loaded
    it (not that it refused, rebuilt or found none)."""
    refused = ("refus", "rebuil", "corrupt", "foreign", "no snapshot", "ignor", "not found",
               "writ", "wrote", "saved")
    return existed and any("snapshot" in ln.lower() and not any(w in ln.lower() for w in refused)
                           for ln in said)


def _feed(procs: Processes, worker: Worker, environ: dict[str, str], day: Path,
          total: int) -> dict[str, Any]:
    """Replay the day to the running ``worker``, wait for ``total`` events read, stop it
    (SIGTERM): memory after, events/s, and whether it stopped cleanly."""
    name = worker.name
    try:
        before = worker.metrics().get("accesswatch_batch_seconds_sum", 0.0)
        started = time.perf_counter()
        replay = procs.start(f"{name}-replay", [
            sys.executable, "-m", "accesswatch.cli", "replay", str(day), "--rate", "0",
            "--no-progress"], environ)
        if worker.wait_for(replay, 900, "the replay of the day's events") != 0:
            raise LiveBenchError(f"replay for {name} failed:\n{procs.tail(name + '-replay')}")
        final, done = worker.wait_consumed(total)
        seconds = done - started
        after = worker.memory()
    finally:
        worker.stop()
    batch = final.get("accesswatch_batch_seconds_sum", 0.0) - before
    return {"events_read": int(final.get("accesswatch_events_consumed_total", 0)),
            "processed": int(final.get("accesswatch_events_processed_total", 0)),
            "duplicates": int(final.get("accesswatch_events_duplicate_total", 0)),
            "feed_seconds": round(seconds, 2),
            "events_per_s": round(total / seconds) if seconds > 0 else 0,
            "batch_seconds": round(batch, 2),
            "events_per_batch_s": round(total / batch) if batch > 0 else 0,
            "after_events": after, "exit_code": worker.proc.returncode}


def _committed(address: str, group: str, topic: str) -> int:
    """Offsets ``group`` has committed on ``topic``, summed over its partitions."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=address, group_id=group,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(topic) or set()
            offsets = [await consumer.committed(TopicPartition(topic, p)) for p in parts]
            return sum(o for o in offsets if o is not None and o > 0)
        finally:
            await consumer.stop()

    return asyncio.run(read())


def du(path: Path) -> int:
    """Bytes on disk under ``path`` (files' sizes)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def backtest(environ: dict[str, str], events: Path, ref: Path, model: Path,
             work: Path) -> tuple[dict[str, dict], float]:
    """``accesswatch backtest``'s alerts on ``events`` (id → alert), in a process of its
    own (the reference data at this size is not this run's memory), and its seconds."""
    out = work / "backtest.alerts.jsonl"
    started = time.perf_counter()
    cli(environ, work, "backtest", str(events), "--ref", str(ref),
        "--out", str(out), "--model", str(model), "--jobs", "1", "--no-progress",
        timeout=3600)
    seconds = time.perf_counter() - started
    alerts: dict[str, dict] = {}
    with out.open("rb") as f:
        for line in f:
            if line.strip():
                keep(alerts, json.loads(line))
    return alerts, seconds


def keep(alerts: dict[str, dict], alert: dict) -> None:
    """Add ``alert`` to ``alerts`` unless a higher version of it is there already."""
    have = alerts.get(alert["alert_id"])
    if have is None or have.get("version", 1) <= alert.get("version", 1):
        alerts[alert["alert_id"]] = alert


async def latest_alerts(address: str, topic: str) -> tuple[dict[str, dict], int]:
    """Each alert id's highest version on ``topic``, and how many records it holds."""
    alerts: dict[str, dict] = {}
    records = 0
    async for r in readback._records(address, topic):
        keep(alerts, json.loads(r.value))
        records += 1
    return alerts, records


def content(alert: dict) -> bytes:
    """What an alert found, as comparable bytes: every field but the publish fields, the
    contract's defaults filled in (an encoder may leave them out)."""
    from accesswatch.core.alerts import Alert

    a = msgspec.convert(alert, Alert)
    return msgspec.json.encode({k: v for k, v in msgspec.to_builtins(a).items()
                                if k not in PUBLISH_FIELDS} | {"subject_ids": a.subject_ids,
                                                               "model": a.model})


def compare_alerts(live: dict[str, dict], expected: dict[str, dict]) -> dict[str, Any]:
    """The worker's alerts against the backtest's: same ids?  Same content?  What differed
    (counted by rule id, and by field for alerts in both)."""
    both = live.keys() & expected.keys()
    differ = [i for i in sorted(both) if content(live[i]) != content(expected[i])]
    fields: Counter[str] = Counter()
    for i in differ:
        a, b = (msgspec.json.decode(content(x[i])) for x in (live, expected))
        fields.update(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    out: dict[str, Any] = {
        "alerts": len(live), "ids_equal": live.keys() == expected.keys(),
        "content_equal": live.keys() == expected.keys() and not differ,
    }
    if live.keys() != expected.keys() or differ:
        out.update({
            "only_live_by_rule": dict(Counter(live[i]["rule_id"] for i in live.keys() - both)),
            "only_backtest_by_rule": dict(Counter(expected[i]["rule_id"]
                                                  for i in expected.keys() - both)),
            "different_content": len(differ),
            "different_by_rule": dict(Counter(live[i]["rule_id"] for i in differ)),
            "different_fields": dict(fields),
        })
    return out


def failure(r: dict[str, Any] | None) -> str | None:
    """Why the national section failed, if it did (its report shows the details)."""
    if r and "error" in r:
        return f"national scale failed: {r['error'].splitlines()[0]}"
    return None


def _mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _alerts(c: dict[str, Any]) -> str:
    if c["content_equal"]:
        return "ids equal, content equal"
    parts = [f"ids {'equal' if c['ids_equal'] else '**differ**'}"]
    if not c["ids_equal"]:
        parts.append(f"only published: {_by_rule(c['only_live_by_rule'])}; only in the "
                     f"backtest: {_by_rule(c['only_backtest_by_rule'])}")
    if c.get("different_content"):
        parts.append(f"**{c['different_content']:,} differ in content** "
                     f"({_by_rule(c['different_by_rule'])}; fields: "
                     f"{', '.join(sorted(c['different_fields']))})")
    return "; ".join(parts)


def _by_rule(counts: dict[str, int]) -> str:
    return ", ".join(f"{rule} ×{n}" for rule, n in sorted(counts.items())) or "none"


def report_national(r: dict[str, Any] | None) -> str:
    """The national-scale section of ``docs/BENCHMARKS.md``."""
    title = "\n## Reference data at national scale\n\n"
    if not r or "error" in r:
        return unavailable(title, r, "`--no-national` or `--live-events 0`")
    c, w = r["cold"], r["restart"]
    snap = w["snapshot_used"]
    restart = ("from its snapshot" if snap else "**no snapshot used** (" + (
        "none written" if not w["snapshot_before"] else "the worker did not load it")
        + "): a second cold start")
    ok = {"cold": c["owning_seconds"] <= TARGET_COLD_S,
          "rss_cold": _within(c), "rss_restart": _within(w),
          "snapshot": snap and w["owning_seconds"] <= TARGET_SNAPSHOT_S,
          "alerts_cold": r["alerts_cold"]["content_equal"],
          "alerts_restart": r["alerts_restart"]["content_equal"]
          and r["alerts_restart"]["republished"] == 0}
    snapshot_mb = "none" if r["snapshot_mb"] is None else f"{r['snapshot_mb']:,} MB"
    return title + f"""Method (`benchmarks/national.py`): the 2,000-staff force's reference data,
and after it a padding from `accesswatch generate --reference-only --staff {r['padding_staff']}
--subjects {r['padding_subjects']} --id-prefix {PREFIX} --seed {r['seed']}`: {r['staff']:,} \
staff and
{r['subjects']:,} subjects in all. The events are the force's first 24 hours ({r['events']:,}),
so the padding is held and looked up, never accessed. On a fresh broker the
{r['reference_records']:,} records go on the reference topics by {_load_words(r['load'])}.
One worker (rules + model) starts in an empty data dir: seconds to `/healthz` ok and its 4
partitions owned, then VmRSS and VmHWM (peak); `accesswatch replay --rate 0` feeds the day,
and once the worker has read it all VmRSS and VmHWM again. It is stopped (SIGTERM) and
started again in the same data dir, and the same day replayed again (it skips events it has
done). The alerts read back (each id's highest version) are compared with `accesswatch
backtest`'s on the same events, reference directory and model, by id and by content (every
field but `created_at`, `updated_at` and `version`). RSS targets are for the steady figure
and the peak alike.

| | figure | target |
|---|---:|---|
| staff / subjects | {r['staff']:,} / {r['subjects']:,} | 50,000 / 5,000,000 |
| cases / duty periods | {r['cases']:,} / {r['duties']:,} | |
| reference records (on the topics) | {r['reference_records']:,} ({r['records_on_topics']:,}) | |
| seconds to put them on the topics | {r['load_seconds']:,} ({r['load_records_per_s']:,} \
records/s, {r['load']}) | |
| cold start: seconds to healthy / owning its partitions | {c['healthy_seconds']} / \
**{c['owning_seconds']}** | ≤ {TARGET_COLD_S} s: {_mark(ok['cold'])} |
| cold start: RSS / peak at healthy, MB | {_mb(c['at_healthy'])} | |
| cold start: peak RSS of the second reader of the subjects, MB | {_second(c)} | |
| cold start: peak RSS of the worker and the second reader together, MB (sampled every \
0.1 s) | **{c.get('peak_with_children_mb', 0):,.0f}** | ≤ {TARGET_RSS_MB:,}: \
{_mark(ok['rss_cold'])} |
| cold start: RSS / peak after the day's events, MB | {_mb(c['after_events'])} | \
≤ {TARGET_RSS_MB:,}: {_mark(ok['rss_cold'])} |
| events/s, replay start to all read (the worker's batch time alone) | \
{c['events_per_s']:,} ({c['events_per_batch_s']:,}) | |
| restart, {restart}: seconds to healthy / owning | {w['healthy_seconds']} / \
**{w['owning_seconds']}** | ≤ {TARGET_SNAPSHOT_S} s from its snapshot: {_mark(ok['snapshot'])} |
| reference snapshot on disk | {snapshot_mb} | |
| restart: RSS / peak at healthy, MB | {_mb(w['at_healthy'])} | |
| restart: RSS / peak after the day again, MB | {_mb(w['after_events'])} | \
≤ {TARGET_RSS_MB:,}: {_mark(ok['rss_restart'])} |
| alerts, backtest | {r['backtest_alerts']:,} | |
| alerts after the cold start's day | {_alerts(r['alerts_cold'])} | identical: \
{_mark(ok['alerts_cold'])} |
| alerts after the restart and the day again | {_alerts(r['alerts_restart'])}; \
{r['alerts_restart']['republished']:,} records republished | identical, none republished: \
{_mark(ok['alerts_restart'])} |
"""


def _within(run: dict[str, Any]) -> bool:
    """Steady and peak RSS within the target; the peak of the worker alone, and of it
    and its second reader together while both ran."""
    m = run["after_events"]
    return bool(m["rss_mb"] <= TARGET_RSS_MB and m["peak_rss_mb"] <= TARGET_RSS_MB
                and run.get("peak_with_children_mb", 0) <= TARGET_RSS_MB)


def _second(run: dict[str, Any]) -> str:
    peak = run.get("second_reader_peak_mb")
    return "none" if peak is None else f"{peak:,.0f}"


def _mb(m: dict[str, float]) -> str:
    return f"{m['rss_mb']:,.0f} / **{m['peak_rss_mb']:,.0f}**"


def _load_words(method: str) -> str:
    if method == "load-ref":
        return "`accesswatch load-ref`"
    return ("`kcat`, each checked as\n`accesswatch load-ref` checks it and keyed by its key "
            "field (Kafka's murmur2 partitioner, as\nload-ref's client)")
