"""The console at scale: 2,000,000 access events and 100,000 alerts on a fresh broker.

Issue 19's acceptance figures.  On a fresh noida-db broker (``benchmarks/broker.py``):
the pipeline's and the console's topics, then made-up but valid data, sent as
pre-encoded record batches (``aiokafka`` ``send_batch``, each record keyed by
``user_id`` and placed by Kafka's default murmur2 partitioner):

- ``access.events``: N events (default 2,000,000) of 2,000 members over 14 days,
  a member's activity log-normal (sigma 0.45: the busiest about 4 times the median),
  most opens of records nobody else opens but 1 % of them on 20 "hot" person records
  and 5 % on 2,000 "warm" ones, so some subjects are opened by hundreds of members;
- ``access.alerts``: M alerts (default 100,000) on rules AW-001..AW-015, spread over
  members in proportion to their activity, every ``event_ids`` entry a real event of
  that member, ``first_seen``/``last_seen`` those events' times;
- ``ref.staff`` (every member), ``ref.cases`` (1,000 cases, four members each, the
  cases many events cite) and ``ref.subjects`` (flags on some popular subjects).

Then ``accesswatch console`` in a subprocess, reading everything (history kept for
ever, events from the start), timed to ``/healthz`` 200 and to its access history
holding every event (``/api/me`` ``history.rows``).  Then, 20 tries each, p95 and
median, once over plain HTTP (aiohttp, a signed-in session: the server's share) and
once in headless Chromium (Playwright, ``/usr/bin/chromium``: server + page):

1. the first page of alerts (``/`` until ``#feed[data-state=ready]`` with rows);
2. a filter change (severity, then rule, alternately), a text search (a member or a
   subject id, then Enter) and a page change (``#more``);
3. a member's 14-day timeline (``#/member/{id}``; the 20 busiest members);
4. a subject's accesses (``#/subject/{id}``; the 20 most opened subjects).

Browser times are taken in the page: ``performance.now()`` before the action and
when the view's ``data-state`` turns ``ready`` (after a forced layout) — for the
first page, from navigation start (``performance.now()`` is relative to it).
Every process is stopped by pid and the broker removed afterwards.

``python -m benchmarks.console_scale --events 200000 --alerts 10000`` for a quick run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from benchmarks.broker import LiveBenchError, Processes, free_port, noida_version, session, wait
from benchmarks.bulk import send_records
from benchmarks.report import unavailable
from benchmarks.workers import env, get, memory_mb

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
PARTITIONS = 4
START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)  # the events' first day (00:00 UTC)
LEAD, LEAD_PASSWORD = "lena", "lead-password-for-the-bench-1"
SECRET = "a-console-secret-for-the-benchmark-only-0123456789"
TARGETS_MS = {"first_page": 1000, "filter": 300, "search": 300, "page": 300, "timeline": 500,
              "subject": 300}
LABELS = {"first_page": "first page of alerts", "filter": "filter change (severity, rule)",
          "search": "text search (member or subject id)", "page": "page change (next 100)",
          "timeline": "member's 14-day timeline", "subject": "subject's accesses"}
SURNAMES = ["SMITH", "JONES", "TAYLOR", "BROWN", "WILLIAMS", "WILSON", "JOHNSON", "DAVIES",
            "ROBINSON", "WRIGHT", "THOMPSON", "EVANS", "WALKER", "WHITE", "ROBERTS", "GREEN",
            "HALL", "WOOD", "JACKSON", "CLARKE", "PATEL", "KHAN", "LEWIS", "JAMES"]
AREAS = ["North", "South", "East", "West", "Riverside", "Moorland", "HQ", "Central"]
ROLES = [("constable", "Response"), ("constable", "Neighbourhood"), ("sergeant", "Response"),
         ("detective_constable", "CID"), ("analyst", "Intelligence"),
         ("call_handler", "Control Room"), ("police_staff", "Criminal Justice")]
SYSTEMS = (["PNC", "PND", "NICHE", "ATHENA"], [0.25, 0.10, 0.45, 0.20])
ACTIONS = (["search", "view", "print", "update", "export"], [0.15, 0.72, 0.06, 0.05, 0.02])
SEVERITIES = (["low", "medium", "high", "critical"], [0.30, 0.35, 0.25, 0.10])
SCORE_RANGE = {"low": (15, 40), "medium": (40, 65), "high": (65, 90), "critical": (90, 100)}
HOT, WARM, COLD = 20, 2000, 400_000  # person records opened by many, by some, by few
CASES = 1000


@dataclass
class ScaleOptions:
    events: int = 2_000_000
    alerts: int = 100_000
    members: int = 2000
    days: int = 14
    tries: int = 20
    seed: int = 19
    browser: bool = True
    keep: bool = False  # leave the console running for a look (until Enter)


# ---------------------------------------------------------------------------------------
# Data


PURPOSE = "benchmark: the console at scale"


@dataclass
class Data:
    """The made-up data, pre-encoded: (key, value) records per topic, and what to ask for."""

    events: list[tuple[bytes, bytes]]
    alerts: list[tuple[bytes, bytes]]
    staff: list[tuple[bytes, bytes]]
    cases: list[tuple[bytes, bytes]]
    subjects: list[tuple[bytes, bytes]]
    busiest: list[str]  # members with the most events, busiest first
    popular: list[str]  # subjects opened most, most opened first
    seconds: float = 0.0


def member_ids(n: int) -> list[str]:
    return [f"{'E' if i % 3 else 'S'}{10000 + i:05d}" for i in range(n)]


def make_data(opts: ScaleOptions) -> Data:
    """Events, alerts and reference records for ``opts`` (deterministic in ``opts.seed``)."""
    started = time.perf_counter()
    rng = np.random.default_rng(opts.seed)
    n, m = opts.events, opts.members
    users = member_ids(m)
    weight = rng.lognormal(0.0, 0.45, m)
    who = rng.choice(m, size=n, p=weight / weight.sum())
    # Event time: a day, then mostly the working day (around 13:00), some at any hour.
    day = rng.integers(0, opts.days, n)
    daytime = np.where(rng.random(n) < 0.85, rng.normal(13 * 3600, 3.5 * 3600, n),
                       rng.uniform(0, 86400, n))
    t = day * 86400 + np.clip(daytime, 0, 86399).astype(np.int64)
    order = np.argsort(t, kind="stable")
    who, t = who[order], t[order]  # event i is the i-th in event time: ev id from i
    action = rng.choice(len(ACTIONS[0]), size=n, p=ACTIONS[1])
    system = rng.choice(len(SYSTEMS[0]), size=n, p=SYSTEMS[1])
    tier = rng.random(n)
    hot = rng.integers(0, HOT, n)
    warm = rng.integers(HOT, HOT + WARM, n)
    cold = rng.integers(0, COLD, n)
    kind = rng.choice(4, size=n, p=[0.70, 0.10, 0.12, 0.08])  # person vehicle address incident
    cited = rng.random(n)
    other_case = rng.integers(0, CASES, n)
    own = rng.integers(0, 2, n)
    terminal = rng.integers(0, 12, n)
    results = rng.integers(0, 25, n)
    day_str = [(START + dt.timedelta(days=d)).strftime("%Y-%m-%dT") for d in range(opts.days)]
    type_names = ["person", "vehicle", "address", "incident"]
    prefixes = ["PER-", "VEH-", "ADR-", "INC-"]
    names, acts = SYSTEMS[0], ACTIONS[0]
    events: list[tuple[bytes, bytes]] = []
    user_keys = [u.encode() for u in users]
    subject_of: list[str | None] = [None] * n
    opens: dict[str, int] = {}
    for i, (u, ti, a, sy, tr, h, w, c, k, ci, oc, ow, te, rc) in enumerate(zip(
            who.tolist(), t.tolist(), action.tolist(), system.tolist(), tier.tolist(),
            hot.tolist(), warm.tolist(), cold.tolist(), kind.tolist(), cited.tolist(),
            other_case.tolist(), own.tolist(), terminal.tolist(), results.tolist(),
            strict=True)):
        d, s = divmod(ti, 86400)
        ts = f"{day_str[d]}{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z"
        head = (f'{{"event_id":"ev-{i:08d}","ts":"{ts}","user_id":"{users[u]}",'
                f'"terminal_id":"T{u % 40:02d}-{te:02d}","system":"{names[sy]}",'
                f'"action":"{acts[a]}"')
        if a == 0:  # a search: query text (personal data) and how many it found
            body = (f',"query":"{SURNAMES[(i * 7) % len(SURNAMES)]} {chr(65 + i % 26)}",'
                    f'"result_count":{rc}}}')
        else:
            if tr < 0.01:
                k, sid = 0, f"PER-{h:07d}"
            elif tr < 0.06:
                k, sid = 0, f"PER-{w:07d}"
            else:
                sid = f"{prefixes[k]}{HOT + WARM + c:07d}"
            subject_of[i] = sid
            if k == 0 and tr < 0.06:
                opens[sid] = opens.get(sid, 0) + 1
            if ci < 0.45:  # one of the member's own cases
                ref = f',"case_ref":"CASE-{member_cases(u)[ow]:05d}"'
            elif ci < 0.55:  # some other case
                ref = f',"case_ref":"CASE-{oc:05d}"'
            else:
                ref = ""
            body = f',"subject_type":"{type_names[k]}","subject_id":"{sid}"{ref}}}'
        events.append((user_keys[u], (head + body).encode()))
    by_member = np.argsort(who, kind="stable")  # each member's events, in event time
    counts = np.bincount(who, minlength=m)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    alerts = make_alerts(opts, rng, users, counts, starts, by_member, t, subject_of)
    busiest = [users[i] for i in np.argsort(-counts, kind="stable")[: opts.tries]]
    popular = sorted(opens, key=lambda s: -opens[s])[: opts.tries]
    return Data(events=events, alerts=alerts, staff=staff_records(users, rng),
                cases=case_records(users), subjects=subject_records(),
                busiest=busiest, popular=popular, seconds=time.perf_counter() - started)


def member_cases(u: int) -> tuple[int, int]:
    """The two cases member ``u`` (an index) is assigned to."""
    return u % CASES, (u * 7 + 3) % CASES


def iso(seconds: int) -> str:
    return (START + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_alerts(opts: ScaleOptions, rng: np.random.Generator, users: list[str],
                counts: np.ndarray, starts: np.ndarray, by_member: np.ndarray, t: np.ndarray,
                subject_of: list[str | None]) -> list[tuple[bytes, bytes]]:
    from accesswatch.rules import load_rules

    titles = {r.id: r.title for r in load_rules().rules}
    rules = [f"AW-{k:03d}" for k in range(1, 16)]
    m = len(users)
    owner = rng.choice(m, size=opts.alerts, p=counts / counts.sum())
    rule = rng.integers(0, len(rules), opts.alerts)
    severity = rng.choice(4, size=opts.alerts, p=SEVERITIES[1])
    size = rng.integers(1, 9, opts.alerts)
    where = rng.random(opts.alerts)
    delay = rng.integers(2, 180, opts.alerts)
    out = []
    for i, (u, r, sv, k, w, de) in enumerate(zip(owner.tolist(), rule.tolist(),
                                                 severity.tolist(), size.tolist(),
                                                 where.tolist(), delay.tolist(), strict=True)):
        k = min(k, int(counts[u]))
        first = int(starts[u]) + int(w * (int(counts[u]) - k + 1))
        idx = by_member[first: first + k].tolist()
        rule_id, sev = rules[r], SEVERITIES[0][sv]
        low, high = SCORE_RANGE[sev]
        subjects = sorted({s for j in idx if (s := subject_of[j])})
        t0, t1 = int(t[idx[0]]), int(t[idx[-1]])
        alert = {
            "alert_id": "aw-" + hashlib.blake2b(f"{rule_id}|{users[u]}|{i}".encode(),
                                                digest_size=10).hexdigest(),
            "created_at": iso(t1 + de), "user_id": users[u], "rule_id": rule_id,
            "title": titles.get(rule_id, rule_id), "severity": sev,
            "score": round(low + (high - low) * ((i * 37) % 100) / 100, 1),
            "event_ids": [f"ev-{j:08d}" for j in idx], "subject_ids": subjects,
            "reasons": [f"{k} access{'es' if k > 1 else ''} between {iso(t0)} and {iso(t1)} "
                        f"matched {rule_id} ({len(subjects)} distinct records)"],
            "first_seen": iso(t0), "last_seen": iso(t1), "count": k,
        }
        out.append((users[u].encode(), json.dumps(alert, separators=(",", ":")).encode()))
    return out


def staff_records(users: list[str], rng: np.random.Generator) -> list[tuple[bytes, bytes]]:
    out = []
    for i, u in enumerate(users):
        role, unit = ROLES[i % len(ROLES)]
        rec = {"user_id": u, "surname": SURNAMES[(i * 5) % len(SURNAMES)],
               "forenames": "Alex", "role": role, "unit": unit,
               "area": AREAS[i % len(AREAS)], "home_postcode": f"AB{i % 90 + 1} {i % 9}CD",
               "person_id": None, "status": "active"}
        out.append((u.encode(), json.dumps(rec).encode()))
    return out


def case_records(users: list[str]) -> list[tuple[bytes, bytes]]:
    assigned: dict[int, list[str]] = {c: [] for c in range(CASES)}
    for i, u in enumerate(users):
        for c in member_cases(i):
            assigned[c].append(u)
    out = []
    for c, who in assigned.items():
        ref = f"CASE-{c:05d}"
        rec = {"case_ref": ref, "status": "open", "area": AREAS[c % len(AREAS)],
               "assigned_users": sorted(set(who)),
               "subject_ids": [f"PER-{HOT + (c * 2) % WARM:07d}", f"PER-{c % HOT:07d}"],
               "opened_at": iso(-86400 * (30 + c % 60)), "closed_at": None}
        out.append((ref.encode(), json.dumps(rec).encode()))
    return out


def subject_records() -> list[tuple[bytes, bytes]]:
    """The hot records (VIPs, victims) and some warm ones flagged: the watch-list's."""
    out = []
    for i in range(HOT + 200):
        sid = f"PER-{i:07d}"
        flags = (["vip"] if i < 5 else ["victim"] if i < HOT else
                 ["protected"] if i % 2 else ["restricted"])
        rec = {"subject_id": sid, "subject_type": "person", "flags": flags,
               "area": AREAS[i % len(AREAS)]}
        out.append((sid.encode(), json.dumps(rec).encode()))
    return out


async def produce(address: str, topic: str, records: list[tuple[bytes, bytes]],
                  partitions: int) -> float:
    """Send ``records`` to ``topic`` in whole record batches; the seconds it took."""
    _, seconds = await send_records(address, topic, records, partitions)
    return seconds


# ---------------------------------------------------------------------------------------
# The console


class Console:
    """``accesswatch console`` on the bench broker, its data dir in the work dir."""

    def __init__(self, procs: Processes, address: str, work: Path) -> None:
        from console.auth import hash_password

        self.procs, self.port = procs, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        users = work / "users.yaml"
        users.write_text("session_minutes: 240\nusers:\n"
                         f'  {LEAD}: {{role: lead, password: "'
                         f'{hash_password(LEAD_PASSWORD, n=2**10)}"}}\n')
        environ = {**env(address, "bench-console"),
                   "ACCESSWATCH_CONSOLE_SECRET": SECRET,
                   "ACCESSWATCH_CONSOLE_DATA_DIR": str(work / "console-data"),
                   "ACCESSWATCH_CONSOLE_HISTORY_DAYS": "0"}
        self.started = time.perf_counter()
        self.proc = procs.start("console", [
            sys.executable, "-m", "accesswatch.cli", "console", "--host", "127.0.0.1",
            "--port", str(self.port), "--users", str(users)], environ)

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise LiveBenchError(f"the console exited with {self.proc.returncode}:\n"
                                 f"{self.procs.tail('console')}")

    def wait_healthy(self, timeout: float) -> float:
        def healthy() -> bool:
            self.check()
            return get(self.port, "/healthz")[0] == 200

        wait(healthy, timeout, "the console's /healthz", every=0.1)
        return time.perf_counter() - self.started

    def memory(self) -> dict[str, float]:
        return memory_mb(self.proc.pid)

    def stop(self) -> None:
        self.procs.stop(self.proc)


async def sign_in(http: Any, url: str) -> str:
    """Sign ``http`` (an aiohttp session with a cookie jar) in as the lead; the CSRF token."""
    async with http.get(f"{url}/login") as r:
        token = re.search(r'name="csrf" value="([^"]+)"', await r.text())
    if token is None:
        raise LiveBenchError("no sign-in form at /login")
    async with http.post(f"{url}/login", data={"csrf": token.group(1), "username": LEAD,
                                               "password": LEAD_PASSWORD},
                         allow_redirects=False) as r:
        if r.status != 303:
            raise LiveBenchError(f"sign-in answered {r.status}")
    async with http.get(f"{url}/api/me") as r:
        me = await r.json()
    return str(me.get("csrf_token", ""))


async def wait_history(url: str, rows: int, timeout: float,
                       console: Console) -> tuple[float, dict[str, Any]]:
    """Until ``/api/me``'s history holds ``rows`` events: (seconds since start, history)."""
    import aiohttp

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await sign_in(http, url)
        deadline = time.monotonic() + timeout
        while True:
            console.check()
            async with http.get(f"{url}/api/me") as r:
                history = (await r.json()).get("history") or {}
            if int(history.get("rows", 0)) >= rows:
                return time.perf_counter() - console.started, history
            if time.monotonic() > deadline:
                raise LiveBenchError(f"the console's history held {history.get('rows', 0):,} "
                                     f"of {rows:,} events after {timeout:.0f} s")
            await asyncio.sleep(0.5)


def summary(ms: list[float]) -> dict[str, Any]:
    """p95 (nearest rank), median and max of ``ms``, and the tries themselves."""
    ranked = sorted(ms)
    p95 = ranked[max(0, -(-95 * len(ranked) // 100) - 1)]
    return {"p95_ms": round(p95, 1), "median_ms": round(statistics.median(ranked), 1),
            "max_ms": round(ranked[-1], 1), "tries": len(ms),
            "all_ms": [round(x, 1) for x in ms]}


def split(tries: list[tuple[float, float]]) -> dict[str, Any]:
    """``summary`` of the browser's times, with that of their wait on the API within."""
    api = summary([a for _, a in tries])
    return {**summary([t for t, _ in tries]), "api_p95_ms": api["p95_ms"],
            "api_median_ms": api["median_ms"], "api_all_ms": api["all_ms"]}


# ---------------------------------------------------------------------------------------
# Over HTTP: the server's share


FILTERS = [("severity", "high"), ("rule", "AW-005"), ("severity", "critical"),
           ("rule", "AW-011"), ("severity", "low")]


def search_terms(data: Data, tries: int) -> list[str]:
    """Member ids and subject ids, alternately: what an analyst types in the search box."""
    return [data.busiest[i // 2 % len(data.busiest)] if i % 2 == 0
            else data.popular[i // 2 % len(data.popular)] for i in range(tries)]


async def bench_http(url: str, data: Data, tries: int) -> dict[str, Any]:
    """Each view's API request, ``tries`` times: time to the whole body, in ms."""
    import aiohttp

    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await sign_in(http, url)

        async def timed(path: str) -> tuple[float, Any, int]:
            t0 = time.perf_counter()
            # Why the lead looks, as the page sends it (a timeline or subject page without
            # one is refused; console/consultations.py).
            async with http.get(url + path, headers={"X-Accesswatch-Purpose": PURPOSE}) as r:
                body = await r.read()
                if r.status != 200:
                    raise LiveBenchError(f"GET {path.split('?')[0]} answered {r.status}: "
                                         f"{body[:300]!r}")
            ms = (time.perf_counter() - t0) * 1000
            return ms, json.loads(body), len(body)

        first: list[float] = []
        page: dict[str, Any] = {}
        for _ in range(tries):
            ms, page, size = await timed("/api/alerts?limit=100")
            first.append(ms)
        out["first_page"] = {**summary(first), "bytes": size, "total": page.get("total"),
                             "held": page.get("held"), "dropped": page.get("dropped")}
        filt, paged, cursors = [], [], []
        chosen: dict[str, str] = {}
        for i in range(tries):  # one select changed at a time: they add up, as on the page
            name, value = FILTERS[i % len(FILTERS)]
            chosen[name] = value
            extra = "".join(f"&{k}={v}" for k, v in chosen.items())
            ms, page, _ = await timed(f"/api/alerts?limit=100{extra}")
            filt.append(ms)
            if page.get("next_cursor"):
                cursors.append((extra, page["next_cursor"]))
        out["filter"] = summary(filt)
        found, matched = [], []
        for term in search_terms(data, tries):
            ms, page, _ = await timed(f"/api/alerts?limit=100&q={quote(term)}")
            found.append(ms)
            matched.append(int(page.get("total") or 0))
        out["search"] = {**summary(found), "matched_min": min(matched),
                         "matched_max": max(matched)}

        for i in range(tries):
            # the next page: of the first page's listing, then of each filter's
            if i % 2 == 0 or not cursors:
                _, page, _ = await timed("/api/alerts?limit=100")
                extra, cursor = "", page.get("next_cursor")
            else:
                extra, cursor = cursors[i % len(cursors)]
            if not cursor:
                raise LiveBenchError("/api/alerts gave no next_cursor: nothing to page to")
            ms, _, _ = await timed(f"/api/alerts?limit=100{extra}&cursor={quote(cursor)}")
            paged.append(ms)
        out["page"] = summary(paged)
        timeline, events = [], []
        for u in (data.busiest * tries)[:tries]:
            ms, body, size = await timed(f"/api/members/{u}/timeline")
            timeline.append(ms)
            events.append(len(body.get("events", [])))
        out["timeline"] = {**summary(timeline), "events_min": min(events),
                           "events_max": max(events)}
        subject, accesses = [], []
        for sid in (data.popular * tries)[:tries]:
            ms, body, size = await timed(f"/api/subjects/{sid}")
            subject.append(ms)
            accesses.append(len(body.get("accesses", [])))
        out["subject"] = {**summary(subject), "accesses_min": min(accesses),
                          "accesses_max": max(accesses)}
    return out


# ---------------------------------------------------------------------------------------
# In Chromium: server + page

# Installed in every document: a promise of the time (ms since navigation start) at which
# the alerts table was first ready with rows.
FIRST_READY = """
(() => {
  window.__awApiWait = (t0) => {
    const ends = performance.getEntriesByType('resource')
      .filter((e) => e.startTime >= t0 && e.name.includes('/api/')
                     && !e.name.includes('/api/stream'))
      .map((e) => e.responseEnd);
    return ends.length ? Math.max(...ends) - t0 : 0;
  };
  performance.setResourceTimingBufferSize(2000);
  let resolve;
  window.__awFirstReady = new Promise((r) => { resolve = r; });
  const done = () => {
    const feed = document.querySelector('#feed[data-state=ready]');
    if (feed && document.querySelector('tr[data-alert-id]')) {
      void document.body.offsetHeight;  // the rows laid out
      resolve(performance.now());
      return true;
    }
    return false;
  };
  const start = () => {
    if (done()) return;
    const mo = new MutationObserver(() => { if (done()) mo.disconnect(); });
    mo.observe(document.documentElement, {subtree: true, childList: true, attributes: true,
                                          attributeFilter: ['data-state']});
  };
  if (document.documentElement) start();
  else document.addEventListener('DOMContentLoaded', start);
})();
"""

# (Not ``wait_for_function``: its string predicate is eval'd, which the page's CSP refuses.)
FIRST_WAIT = """
async () => {
  const ready = await Promise.race([window.__awFirstReady, new Promise((_, reject) => setTimeout(
    () => reject(new Error('the first page of alerts was not ready in 60 s')), 60000))]);
  return [ready, window.__awApiWait(0)];
}
"""

# One in-page action, timed: performance.now() before it and once the view (``sel``) is
# ready again — re-rendered (new element, or its data-state changed after the action) with
# at least ``minRows`` rows matching ``rows`` — after a forced layout.
TIMED = """
async ([kind, arg, sel, rows, minRows]) => {
  const apiWait = window.__awApiWait;
  const before = document.querySelector(sel);
  let touched = false;
  const watch = new MutationObserver(recs => {
    for (const r of recs) if (r.target instanceof Element && r.target.matches(sel)) touched = true;
  });
  watch.observe(document.documentElement, {subtree: true, attributes: true,
                                           attributeFilter: ['data-state']});
  performance.clearResourceTimings();
  const t0 = performance.now();
  if (kind === 'hash') {
    location.hash = arg;
  } else if (kind === 'select') {
    const [id, value] = arg;
    const el = document.querySelector(id);
    el.value = value;
    el.dispatchEvent(new Event('input', {bubbles: true}));
    el.dispatchEvent(new Event('change', {bubbles: true}));
  } else if (kind === 'search') {  // typed, then Enter: the form submits (no debounce)
    const [id, value] = arg;
    const el = document.querySelector(id);
    el.value = value;
    el.form.requestSubmit();
  } else if (kind === 'click') {
    document.querySelector(arg).click();
  }
  try {
    await new Promise((resolve, reject) => {
      const check = () => {
        const el = document.querySelector(sel + '[data-state=ready]');
        if (el && (el !== before || touched)
            && document.querySelectorAll(rows).length >= minRows) {
          void document.body.offsetHeight;
          obs.disconnect(); clearTimeout(timer); resolve();
        }
      };
      const obs = new MutationObserver(check);
      obs.observe(document.documentElement, {subtree: true, childList: true, attributes: true});
      const timer = setTimeout(() => { obs.disconnect(); reject(new Error(
        'not ready in 30 s: ' + sel + ' state ' +
        (document.querySelector(sel) || {dataset: {}}).dataset.state)); }, 30000);
      check();
    });
  } finally {
    watch.disconnect();
  }
  const total = performance.now() - t0;
  return [total, apiWait(t0)];
}
"""



def bench_browser(url: str, data: Data, tries: int) -> dict[str, Any]:
    """The four views in headless Chromium, ``tries`` times each (see the module doc)."""
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.add_init_script(FIRST_READY)
            page.goto(f"{url}/login")
            page.fill("#username", LEAD)
            page.fill("#password", LEAD_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{url}/")

            def timed(kind: str, arg: Any, sel: str, rows: str,
                      min_rows: int = 1) -> tuple[float, float]:
                ms, api = page.evaluate(TIMED, [kind, arg, sel, rows, min_rows])
                return float(ms), float(api)

            first, wall = [], []
            for _ in range(tries):
                page.goto("about:blank")
                t0 = time.perf_counter()
                page.goto(f"{url}/", wait_until="commit")
                ready, api = page.evaluate(FIRST_WAIT)
                wall.append((time.perf_counter() - t0) * 1000)
                first.append((float(ready), float(api)))
            out["first_page"] = {**split(first), "python_wall": summary(wall)}

            filt, paged = [], []
            for i in range(tries):
                name, value = FILTERS[i % len(FILTERS)]
                filt.append(timed("select", [f"#f-{name}", value], "#feed",
                                  "tr[data-alert-id]"))
            timed("select", ["#f-severity", ""], "#feed", "tr[data-alert-id]")
            timed("select", ["#f-rule", ""], "#feed", "tr[data-alert-id]")
            out["search"] = split([timed("search", ["#q", term], "#feed", "tr[data-alert-id]")
                                   for term in search_terms(data, tries)])
            timed("search", ["#q", ""], "#feed", "tr[data-alert-id]")
            for _ in range(tries):
                shown = page.locator("tr[data-alert-id]").count()
                paged.append(timed("click", "#more", "#feed", "tr[data-alert-id]", shown + 1))
            out["filter"], out["page"] = split(filt), split(paged)

            # As if working from an alert: the page sends it as the purpose, asking nothing.
            page.evaluate("why => { state.working = why; }", PURPOSE)
            out["timeline"] = split([
                timed("hash", f"#/member/{u}", "#timeline", "li[data-event-id]")
                for u in (data.busiest * tries)[:tries]])
            out["subject"] = split([
                timed("hash", f"#/subject/{sid}", "#subject", "tr[data-event-id]")
                for sid in (data.popular * tries)[:tries]])
            if errors:
                out["page_errors"] = errors[:5]
        finally:
            browser.close()
    return out


def browser_ready() -> bool:
    """Whether the page has the markers the browser runs wait for."""
    app = Path(__file__).resolve().parents[1] / "console" / "static" / "app.js"
    try:
        text = app.read_text()
    except OSError:
        return False
    return ("data-state" in text or "dataset.state" in text) and "#/member/" in text


# ---------------------------------------------------------------------------------------
# The run


def bench_console_scale(cache: Path, opts: ScaleOptions) -> dict[str, Any]:
    """The figures for ``results.json``'s ``console`` (see the module docstring)."""
    data = make_data(opts)
    with session(cache, "console") as (work, procs, address):
        return _run(opts, data, work, procs, address)


def _run(opts: ScaleOptions, data: Data, work: Path, procs: Processes,
         address: str) -> dict[str, Any]:
    from console.config import ConsoleSettings, console_topic_specs
    from streams.topics import create_topics, topic_specs

    # Defaults only, none of the caller's ACCESSWATCH_* (the console's env has none either).
    s = ConsoleSettings.model_construct(bootstrap_servers=address, partitions=PARTITIONS,
                                        app_id="bench-console")
    create_topics(s, topic_specs(s) + console_topic_specs(s))
    events_s = asyncio.run(produce(address, s.topic_events, data.events, PARTITIONS))
    alerts_s = asyncio.run(produce(address, s.topic_alerts, data.alerts, PARTITIONS))
    for topic, records in ((s.topic_ref_staff, data.staff), (s.topic_ref_cases, data.cases),
                           (s.topic_ref_subjects, data.subjects)):
        asyncio.run(produce(address, topic, records, s.ref_partitions))
    event_bytes = sum(len(v) for _, v in data.events)
    out: dict[str, Any] = {
        "broker": noida_version(), "events": len(data.events), "alerts": len(data.alerts),
        "members": opts.members, "days": opts.days, "tries": opts.tries,
        "data_seconds": round(data.seconds, 1),
        "produce": {"events_seconds": round(events_s, 1),
                    "events_per_s": round(len(data.events) / events_s),
                    "event_mb": round(event_bytes / 2**20),
                    "alerts_seconds": round(alerts_s, 1),
                    "alerts_per_s": round(len(data.alerts) / alerts_s)},
        "busiest_member_events": None, "targets_ms": TARGETS_MS,
    }
    events, alerts = data.events, data.alerts
    data.events, data.alerts = [], []  # the console's RSS, not ours, is what matters
    del events, alerts
    console = Console(procs, address, work)
    try:
        healthy = console.wait_healthy(timeout=max(300.0, opts.alerts / 200))
        history_s, history = asyncio.run(wait_history(
            console.url, out["events"], max(600.0, out["events"] / 1000), console))
        out["console"] = {"healthz_seconds": round(healthy, 1),
                          "history_seconds": round(history_s, 1),
                          "history_events_per_s": round(out["events"] / history_s),
                          "history": history, "memory_ready": console.memory(),
                          "history_file_mb": _size_mb(work / "console-data")}
        load = os.getloadavg()[0]
        out["http"] = asyncio.run(bench_http(console.url, data, opts.tries))
        out["busiest_member_events"] = out["http"]["timeline"].get("events_max")
        if opts.browser and browser_ready():
            out["browser"] = bench_browser(console.url, data, opts.tries)
        elif opts.browser:
            out["browser"] = {"error": "the page has no data-state markers yet"}
        out["console"]["memory_done"] = console.memory()
        # The machine may be shared: its load says how much the figures were squeezed.
        out["load_average"] = {"before": round(load, 2), "after": round(os.getloadavg()[0], 2),
                               "cpu_count": os.cpu_count()}
        if opts.keep:
            print(f"console at {console.url} (user {LEAD}, password {LEAD_PASSWORD}); "
                  "Enter stops it", file=sys.stderr)
            input()
    finally:
        console.stop()
    return out


def _size_mb(directory: Path) -> float:
    total = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) \
        if directory.exists() else 0
    return round(total / 2**20, 1)


# ---------------------------------------------------------------------------------------
# Report


TITLE = "\n## Console at scale\n\n"


def report_console(r: dict[str, Any] | None) -> str:
    if not r or "error" in r:
        return unavailable(TITLE, r, "`--console-events 0`")
    c, p, la = r["console"], r["produce"], r.get("load_average", {})
    lines = [
        TITLE.rstrip("\n"), "",
        f"{r['events']:,} access events ({r['members']:,} members over {r['days']} days) "
        f"and {r['alerts']:,} alerts on a fresh broker ({r['broker']}), sent as pre-encoded "
        f"record batches: events in {p['events_seconds']} s ({p['events_per_s']:,}/s, "
        f"{p['event_mb']:,} MB), alerts in {p['alerts_seconds']} s. Then `accesswatch "
        f"console` reading all of it (history kept for ever, events from the start): "
        f"`/healthz` 200 after {c['healthz_seconds']} s, its access history holding every "
        f"event after {c['history_seconds']} s ({c['history_events_per_s']:,} events/s, "
        f"{c['history_file_mb']:,} MB on disk). Console RSS when ready "
        f"{c['memory_ready'].get('rss_mb')} MB, after the runs "
        f"{c.get('memory_done', {}).get('rss_mb')} MB (peak "
        f"{c.get('memory_done', {}).get('peak_rss_mb')} MB). The peak comes while the "
        "history catches up: noida-db answers a fetch with everything a partition holds "
        "(`benchmarks/fetch_size.py`), so each of the events topic's partitions arrives "
        "whole; a Kafka broker keeps a fetch to the consumer's "
        "`max_partition_fetch_bytes`.", "",
        f"p95 and median of {r['tries']} tries each, in ms. HTTP: the API request alone "
        "(aiohttp, signed in, to the last byte of the body). Browser: headless Chromium via "
        "Playwright, timed in the page with `performance.now()` from the action (the first "
        "page: from navigation start) to the view's `data-state=ready` with its rows laid "
        "out; its API wait is from the action to the end of the last API response it "
        "asked for (Resource Timing), the rest is the page's own work. Timelines: the "
        "busiest members; subjects: the most opened records. Load average "
        f"{la.get('before', '?')} before the runs, {la.get('after', '?')} after, on "
        f"{la.get('cpu_count', '?')} cores (the console, Chromium and this benchmark share "
        "them).", "",
        "| view | target | HTTP p95 | HTTP median | browser p95 | browser median | "
        "browser: API wait, median |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    h, b = r.get("http", {}), r.get("browser") or {}
    for key, target in TARGETS_MS.items():
        hk, bk = h.get(key, {}), b.get(key, {})
        mark = "" if not bk else (" ✓" if bk["p95_ms"] <= target else " ✗")
        lines.append(f"| {LABELS[key]} | ≤ {target:,} | {hk.get('p95_ms', '–')} | "
                     f"{hk.get('median_ms', '–')} | {bk.get('p95_ms', '–')}{mark} | "
                     f"{bk.get('median_ms', '–')} | {bk.get('api_median_ms', '–')} |")
    fp = h.get("first_page", {})
    lines += ["", f"The listing said {fp.get('total', '?'):,} matching, "
              f"{fp.get('held', '?'):,} held, {fp.get('dropped', '?'):,} dropped; "
              f"timelines of {h.get('timeline', {}).get('events_min', '?'):,}–"
              f"{h.get('timeline', {}).get('events_max', '?'):,} events, subjects with "
              f"{h.get('subject', {}).get('accesses_min', '?'):,}–"
              f"{h.get('subject', {}).get('accesses_max', '?'):,} accesses."]
    if "error" in b:
        lines += ["", f"Browser runs: not run ({b['error']})."]
    elif b.get("page_errors"):
        lines += ["", "Page errors: " + "; ".join(b["page_errors"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--no-browser", action="store_true", help="HTTP figures only")
    parser.add_argument("--keep", action="store_true",
                        help="leave the console up after the runs, until Enter")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("TMPDIR", "/tmp")) / "accesswatch-bench")
    args = parser.parse_args()
    opts = ScaleOptions(events=args.events, alerts=args.alerts, members=args.members,
                        tries=args.tries, seed=args.seed, browser=not args.no_browser,
                        keep=args.keep)
    started = time.perf_counter()
    r = bench_console_scale(args.cache, opts)
    r["wall_seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    print(json.dumps({k: v for k, v in r.items() if k not in ("http", "browser")}, indent=2))
    print(report_console(r))
    print(f"wall: {r['wall_seconds']} s")


if __name__ == "__main__":
    main()
