"""The console as a process against the test broker, and data to seed its topics."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from console.config import ConsoleSettings
from tests.console.helpers import QUERY_TEXT
from tests.streams.conftest import free_port, wait_until

SECRET_ENV = {"ACCESSWATCH_CONSOLE_SECRET": "a-console-secret-for-tests-only-0123456789"}


class ConsoleProcess:
    """``accesswatch console`` in a subprocess, its log in a file."""

    def __init__(self, env: dict[str, str], cwd: Path, users: Path, *extra: str,
                 name: str = "console", port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"{name}.log"
        self._log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "accesswatch.cli", "console", "--host", "127.0.0.1",
             "--port", str(self.port), "--users", str(users), *extra],
            cwd=cwd, env={**os.environ, **SECRET_ENV, **env}, stdout=self._log,
            stderr=subprocess.STDOUT)

    def health(self) -> int:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return 0

    def status(self, method: str, path: str) -> int:
        """The status of a request with no session, redirects not followed."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(method, path)
            return conn.getresponse().status
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"console exited {self.proc.returncode}:\n{self.tail()}")
            return self.health() == 200

        wait_until(ready, timeout, "the console's /healthz")

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode

    def tail(self, n: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def producer(s: ConsoleSettings) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=s.servers, acks="all")


def send(p: KafkaProducer, topic: str, key: str, value: dict[str, Any] | None) -> None:
    p.send(topic, key=key.encode(),
           value=None if value is None else json.dumps(value).encode()).get(timeout=30)


STAFF = [
    ("E17806", "constable", "Response", "East"),
    ("S45932", "police_staff", "Criminal Justice", "Moorland"),
    ("E55634", "sergeant", "Neighbourhood", "North"), ("S26246", "analyst", "Intelligence", "HQ"),
    ("E63042", "constable", "CID", "Riverside"), ("S78660", "call_handler", "Control Room", "HQ"),
]


def event(event_id: str, user_id: str, ts: dt.datetime, action: str, subject: str | None,
          case_ref: str | None, system: str = "NICHE") -> dict[str, Any]:
    return {"event_id": event_id, "ts": iso(ts), "user_id": user_id, "terminal_id": "EST-ST02-T16",
            "system": system, "action": action, "subject_type": "person" if subject else None,
            "subject_id": subject, "query": QUERY_TEXT, "case_ref": case_ref,
            "result_count": None if subject else 6}


def alert(alert_id: str, user_id: str, rule_id: str, title: str, severity: str, score: float,
          created: dt.datetime, event_ids: list[str], reasons: list[str],
          model: dict[str, Any] | None = None,
          first_seen: dt.datetime | None = None) -> dict[str, Any]:
    out = {"alert_id": alert_id, "created_at": iso(created), "user_id": user_id,
           "rule_id": rule_id, "title": title, "severity": severity, "score": score,
           "event_ids": event_ids, "reasons": reasons, "first_seen": iso(first_seen or created),
           "last_seen": iso(created), "count": len(event_ids), "subject_ids": []}
    if model is not None:
        out["model"] = model
    return out


def version(a: dict[str, Any], n: int, updated: dt.datetime | None = None) -> dict[str, Any]:
    """``a`` as re-published with ``n`` - 1 more events: version ``n`` (contract v1.1),
    published at ``updated`` (default: ``n`` minutes after ``a``)."""
    if n == 1:
        return a
    more = [f"{a['alert_id']}-v{k}" for k in range(2, n + 1)]
    updated = updated or dt.datetime.fromisoformat(a["created_at"]) + dt.timedelta(minutes=n)
    return {**a, "version": n, "updated_at": iso(updated),
            "event_ids": [*a["event_ids"], *more], "count": a["count"] + len(more)}


def background_alerts(now: dt.datetime, tag: str) -> list[dict[str, Any]]:
    """A believable shift's worth of earlier alerts (their evidence is not in the feed)."""
    m = dt.timedelta(minutes=1)
    rows = [
        ("E55634", "AW-011", "Access from a suspended or leaver account", "critical", 95.4, 190,
         "account E55634 is marked leaver in the staff directory but made an access on NICHE"),
        ("S26246", "AW-008", "Opened many times their usual number of records, mostly unjustified",
         "high", 93.5, 170, "opened 46 records in 54 minutes; their usual is 11 an hour"),
        ("S45932", "AW-009", "Opened many distinct records in a few minutes", "high", 90.6, 150,
         "20 distinct records in 3 minutes"),
        ("E63042", "AW-006", "Opened a victim's record without being assigned to their case",
         "high", 70.0, 130, "opened record PER-3851656, flagged victim, without being assigned "
         "to an open case that lists them (no case was given)"),
        ("S78660", "AW-010", "Access outside rostered duty", "medium", 50.0, 110,
         "accessed NICHE 3 h 10 min after their last rostered duty ended"),
        ("E17806", "AW-090", "Many weak signals together", "high", 72.0, 95,
         "risk score 61 crossed 50: 4 unjustified opens in 2 hours"),
        ("E17806", "AW-002", "Opened the record of someone sharing their surname and home postcode",
         "high", 70.0, 60, "opened the person record PER-3849822 of someone sharing their "
         "surname and home postcode; no case justified it"),
        ("S45932", "AW-013", "Opened records from another area", "low", 30.0, 40,
         "opened 6 person records living in Riverside within 2 hours; none justified"),
    ]
    return [alert(f"aw-{tag}-bg{i:02d}", u, r, t, sev, sc, now - k * m, [f"{tag}-old-{i}"], [why])
            for i, (u, r, t, sev, sc, k, why) in enumerate(rows)]


class Session:
    """A signed-in user of a running console, over plain HTTP (urllib), with its cookie."""

    def __init__(self, url: str, username: str, password: str) -> None:
        import http.cookiejar
        import re

        self.url = url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        page = self.opener.open(f"{url}/login", timeout=10).read().decode()
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token, page
        form = urllib.parse.urlencode({"username": username, "password": password,
                                       "csrf": token.group(1)}).encode()
        self.opener.open(urllib.request.Request(f"{url}/login", data=form), timeout=10).read()
        self.csrf = self.get("/api/me")["csrf_token"]

    def get(self, path: str, purpose: str = "a test") -> Any:
        """GET ``path`` as JSON; ``purpose`` goes in X-Accesswatch-Purpose, as the page sends
        it (a timeline, a subject page or an export is refused without one)."""
        req = urllib.request.Request(f"{self.url}{path}",
                                     headers={"X-Accesswatch-Purpose": purpose})
        with self.opener.open(req, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        req = urllib.request.Request(f"{self.url}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "X-CSRF-Token": self.csrf})
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
