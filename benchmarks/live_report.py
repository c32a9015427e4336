"""The live sections of ``docs/BENCHMARKS.md``, from ``results.json``'s ``live``."""

from __future__ import annotations

from typing import Any

from benchmarks.latency import report_latency
from benchmarks.memory import report_memory
from benchmarks.readback import agreement
from benchmarks.report import unavailable
from benchmarks.scale_out import report_scale_out


def report_live(live: dict[str, Any] | None) -> str:
    """Throughput, the model's cost live, two workers, latency and memory."""
    if not live or "error" in live:
        return unavailable("\n## Live throughput\n\n", live, "`--live-events 0`")
    out = _throughput(live) + _baseline(live) + _model(live)
    if "worker_model" in live:
        out += (report_scale_out(live.get("scale_out"))
                + report_latency(live.get("latency")) + report_memory(live.get("memory")))
    return out


def _runs(r: dict[str, Any]) -> str:
    return " / ".join(f"{n:,}" for n in r["runs"])


def _throughput(live: dict[str, Any]) -> str:
    raw, naive, naive_uv, w = (live["raw_aiokafka"], live["naive_faust_agent"],
                               live["naive_faust_agent_uvloop"], live["worker"])
    m = live.get("worker_model")

    def row(name: str, r: dict[str, Any], runs: str) -> str:
        per_s = r["events_per_s"]
        vs = "—" if r is w or not per_s else f"{w['events_per_s'] / per_s:.3g}"
        return (f"| {name} | {r['loop']} | {r['events_timed']:,} | {r['seconds']} | "
                f"**{r['events_per_s']:,}** | {runs} | {vs} |")

    model_row = ("\n" + row("accesswatch worker, rules + model, state changelogged", m, _runs(m))
                 if m else "")
    model_reader = ("""
- **accesswatch worker, rules + model**: the same, with `ACCESSWATCH_MODEL_PATH` set to a
  model trained on the force's days 1-7 by `accesswatch train … --days 7`; run right
  after each rules-only run, so each rules-only / rules + model pair shares the load.""" if m
                    else "")
    ratio = live["worker_to_naive"]
    met = ("too few events to tell" if not ratio or not w["events_per_s"]
           else "met" if ratio >= 1 else "**not met**")
    turns = "the naive agent and the workers take turns" if m else "the naive agent and the \
worker alternate"
    return f"""
## Live throughput

Method: a fresh {live['broker']} broker (Kafka protocol only, a fresh data dir,
stopped afterwards) on this machine; topics made by `accesswatch topics create`; `access.events`
({live['partitions']} partitions) pre-loaded with the first {live['events']:,} events of the
force above (event times {' to '.join(live['event_time_span'])}) by
`accesswatch replay --rate 0` ({live['preload']['events_per_s']:,} events/s); reference data
by `accesswatch load-ref`. Then each reader drains the whole topic from the start,
one after another; {turns} {len(w['runs'])} times, best of
each shown:

- **raw aiokafka consumer**: manual assignment, no group, `getmany(max_records=10000)`,
  nothing done with the records; the client's ceiling (best of 3).
- **naive Faust agent** (`benchmarks/naive_agent.py`): `async for event in stream: pass`,
  Faust's default settings, its own consumer group; counted by Faust's monitor every 0.1 s.
  Also once with `--loop uvloop`, the event loop the worker uses: Faust's own
  per-event cost on that loop.
- **accesswatch worker**: `accesswatch worker --web-host 127.0.0.1 --web-port …`, rules
  only, per-user state on a compacted changelog (each changed member written once per
  checkpoint), at-least-once, its own consumer group; counted from
  `accesswatch_events_processed_total` on its `/metrics`.{model_reader}

For the raw consumer and the naive agent a rate is the events counted between the
first and the last progress sample over the time between them. A worker's counter
moves a batch at a time (up to `BATCH_SIZE` events), so a worker's rate is a drain:
the events it processed from its `/healthz` first answering 200 (reference data loaded,
group joined; it holds events until then), polled every 0.05 s, to the `/metrics`
sample, every 0.2 s, in which it has read them all. Either way start-up, reference
loading and the group join are left out.

| reader | loop | events timed | seconds | events/s | runs | worker ÷ reader |
|---|---|---:|---:|---:|---|---:|
{row("raw aiokafka consumer (client ceiling)", raw, "best of 3")}
{row("naive Faust agent, default settings", naive, _runs(naive))}
{row("naive Faust agent, uvloop (for scale)", naive_uv, "1")}
{row("accesswatch worker, rules only, state changelogged", w, _runs(w))}{model_row}

Worker ÷ naive agent, best runs: **{live['worker_to_naive']}** (issue 3 asks for at least
1: {met}); run by run, each worker run over the naive run just before it:
{" / ".join(str(x) for x in live.get("worker_to_naive_pairs", []))}. Worker ÷ raw consumer:
{live['worker_to_raw']}.

The best worker run: {w['batches']:,} batches of {w['mean_batch_size']:,} events on average,
{w['batch_seconds']} s of its {w['seconds']} s in batch handling (decode, every rule,
folding, publishing); {w['changelog_records']:,} state changelog records for
{live['events']:,} events; {w['alerts']:,} alerts, the same set as the backtest's on the
same events: {agreement(w)}
({live['backtest_alerts']:,} in the backtest).

To see where a worker's time goes, run it under py-spy (`pip install py-spy`):
`py-spy record -o worker.txt -f raw --threads -- python -m accesswatch.cli worker …`.
"""


def _baseline(live: dict[str, Any]) -> str:
    """This worker against an earlier revision's, in the same run (``--baseline``)."""
    b = live.get("baseline")
    if not b:
        return ""
    w = live["worker"]
    ratio = live["worker_to_baseline"]
    met = "met" if ratio and ratio >= 1 else "**not met**"
    pairs = " / ".join(str(x) for x in live["worker_to_baseline_pairs"])
    return f"""
## Against an earlier worker

The worker of revision `{b['revision']}` (its tree unpacked by `git archive`, first on
`PYTHONPATH`, its own CLI and worker; the same broker, events, reference data and
settings) took turns with this one, rules only, in this run (`--baseline {b['revision']}`).

| worker | events/s (best) | runs | CPU µs an event (each run) | changelog records |
|---|---:|---|---|---:|
| this revision | **{w['events_per_s']:,}** | {_runs(w)} | \
{" / ".join(str(x) for x in live['worker_cpu_us_per_event'])} | {w['changelog_records']:,} |
| `{b['revision']}` | **{b['events_per_s']:,}** | {_runs(b)} | \
{" / ".join(str(x) for x in b['cpu_us_per_event'])} | {b['changelog_records']:,} |

This revision ÷ `{b['revision']}`, best runs: **{ratio}** (a change must not make the worker
slower: at least 1, {met}); turn by turn: {pairs}.
{_side_by_side(live, b['revision'])}"""


HEADER_SIDE = ("| turn | this revision, events/s | `{revision}`, events/s | ratio "
               "| this revision, CPU µs an event | `{revision}`, CPU µs an event | ratio |\n"
               "|---:|---:|---:|---:|---:|---:|---:|")


def _side_by_side(live: dict[str, Any], revision: str) -> str:
    """The two workers draining the same events at the same time (absent from older results)."""
    s = live.get("side_by_side")
    if not s:
        return ""
    rows = "\n".join(
        f"| {i + 1} | {t['worker']['events_per_s']:,} | {t['baseline']['events_per_s']:,} | "
        f"{t['events_per_s_ratio']} | {t['worker']['cpu_us_per_event']} | "
        f"{t['baseline']['cpu_us_per_event']} | {t['cpu_ratio']} |"
        for i, t in enumerate(s["turns"]))
    met = "met" if s["median_events_per_s"] >= 1 else "**not met**"
    return f"""
Taking turns, each worker meets the host as it is at its turn, and on this shared
2-core machine the same worker's drain moves by ±20% from one turn to the next. So
the two are also started together and drain the same pre-loaded events at the same
moment, each in its own consumer group, {len(s['turns'])} times: whatever the host does,
it does to both. Each is timed from its `/healthz` first answering to the `/metrics`
sample in which it has read every event; CPU is each one's own over that span.

{HEADER_SIDE.format(revision=revision)}
{rows}

Side by side, this revision ÷ `{revision}`, median turn: **{s['median_events_per_s']}** in
events/s ({met}), **{s['median_cpu']}** in CPU an event (the baseline's over this one's:
above 1, this one does less work an event).
"""


def _cpu(live: dict[str, Any]) -> str:
    """The same comparison in the workers' own CPU per event (absent from older results)."""
    cpu = live.get("cpu_us_per_event")
    if not cpu:
        return ""
    m, w = live["worker_model"], live["worker"]
    return f"""
The same in the workers' own CPU (user + system over the drain, from `/proc`). It leaves
out the time a worker waited on the broker or for a core, though not a core slowed by
its neighbours on a shared host, so it moves with the machine too:
rules only {min(cpu['rules'])} µs an event ({" / ".join(str(x) for x in cpu['rules'])}),
rules + model {min(cpu['model'])} µs ({" / ".join(str(x) for x in cpu['model'])}).
Rules only ÷ rules + model, least of each: **{live['model_to_rules_cpu']}**; pair by pair:
{" / ".join(str(x) for x in live['model_to_rules_cpu_pairs'])}. During the best runs the
whole machine was busy for {w['machine_cpu_seconds']} CPU s of the rules-only worker's
{w['seconds']} s ({w['cpu_seconds']} of them the worker's) and {m['machine_cpu_seconds']} CPU s
of the rules + model worker's {m['seconds']} s ({m['cpu_seconds']} the worker's).
"""


def _model(live: dict[str, Any]) -> str:
    m = live.get("worker_model")
    if not m:
        return ("\n## The model, live\n\nNot run (`--no-live-model`).\n"
                if "worker" in live else "")
    r = live["model_to_rules"]
    cost = 1 - r if r else None
    met = ("too few events to tell" if cost is None
           else "met" if cost <= 0.20 else "**not met**")
    return f"""
## The model, live

The rules + model worker against the rules-only worker, both from the table above
(model trained in {live['train_seconds']} s by `accesswatch train`, included in neither).

| | events/s (best) | runs |
|---|---:|---|
| rules only | {live['worker']['events_per_s']:,} | {_runs(live['worker'])} |
| rules + model | {m['events_per_s']:,} | {_runs(m)} |

Rules + model ÷ rules only, best runs: **{r}**, so the model costs
{f"{cost:.0%}" if cost is not None else "—"} of live throughput (issue 4 asks for at most
20 %: {met}); run by run, each model run over the rules-only run of its turn (the two
swap places every turn):
{" / ".join(str(x) for x in live["model_to_rules_pairs"])}. Rules + model ÷ naive agent:
{live['model_to_naive']}; ÷ raw consumer: {live['model_to_raw']}.
{_cpu(live)}
The best rules + model run: {m['batches']:,} batches of {m['mean_batch_size']:,} events on
average, {m['batch_seconds']} s of its {m['seconds']} s in batch handling; {m['alerts']:,}
alerts, the same set as `run_backtest(…, model=load_model(path))` on the same events:
{agreement(m)} ({live['backtest_model_alerts']:,}
in that backtest). Peak RSS of that worker: {m['memory_done'].get('peak_rss_mb', 0):,.0f} MB
(rules only: {live['worker']['memory_done'].get('peak_rss_mb', 0):,.0f} MB); once it had read
everything: {m['memory_done'].get('rss_mb', 0):,.0f} MB (rules only:
{live['worker']['memory_done'].get('rss_mb', 0):,.0f} MB). The drain peak is the broker's
answer size, not the worker's state: a fetch asks for at most 1 MiB a partition
(`max_partition_fetch_bytes`), which Apache Kafka honours, and noida-db answers with
everything the partition holds past the offset, so a backlog arrives whole. A bare aiokafka
consumer shows it with no accesswatch code: `python -m benchmarks.fetch_size` (200,000
records of 600 B, 64 KiB a partition asked) grew from 42 to 277 MB on its first fetch. A
worker keeping up with its feed holds far less (the memory table below).
"""
