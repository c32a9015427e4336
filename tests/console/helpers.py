"""Alerts, events, users and a console app for tests, with no broker."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from accesswatch.contract.events import decode_event
from accesswatch.core import Alert
from console.auth import User, Users, hash_password
from console.history import History, HistoryEvent
from console.sessions import SessionSigner
from console.state import ConsoleState
from console.store import AlertStore, StaffInfo
from console.triage import Decision, Step
from console.web import RUNNER_OPTIONS, build_app

T = TypeVar("T")
SECRET = b"test-secret-test-secret-test-secret"
PASSWORDS = {"lena": "lead-password-1", "ana": "analyst-password-1", "vic": "viewer-password-1"}
ROLE_OF = {"lena": "lead", "ana": "analyst", "vic": "viewer"}
QUERY_TEXT = "SMITH JOHN 12 ACACIA AVENUE"  # what a search typed: must never be served


def make_users(session_minutes: float = 60) -> Users:
    # n=2**10: fast in tests; the format and check are the same as production's.
    return Users({name: User(name, ROLE_OF[name], hash_password(pw, n=2**10))
                  for name, pw in PASSWORDS.items()}, session_minutes)


def users_yaml(path: Path) -> Path:
    lines = ["session_minutes: 60", "users:"]
    for name, pw in PASSWORDS.items():
        stored = hash_password(pw, n=2**10)
        lines.append(f'  {name}: {{role: {ROLE_OF[name]}, password: "{stored}"}}')
    path.write_text("\n".join(lines) + "\n")
    return path


def alert(alert_id: str = "aw-00000000000000000001", *, user_id: str = "E00412",
          rule_id: str = "AW-002", severity: str = "high", score: float = 70.0,
          created_at: str = "2026-03-02T09:14:03Z", event_ids: list[str] | None = None,
          model: dict[str, Any] | None = None, title: str = "Member opened a relative's record",
          reasons: list[str] | None = None, count: int = 2,
          last_seen: str = "2026-03-02T09:14:00Z", version: int = 1,
          updated_at: str | None = None) -> Alert:
    return Alert(alert_id=alert_id, created_at=created_at, user_id=user_id, rule_id=rule_id,
                 title=title, severity=severity,  # type: ignore[arg-type]
                 score=score, event_ids=event_ids or ["ev-1", "ev-2"],
                 reasons=reasons or ["opened the person record P-204 of someone sharing their "
                                     "surname and home postcode; no case justified it"],
                 first_seen="2026-03-02T09:10:00Z", last_seen=last_seen, count=count,
                 subject_ids=["P-204"], model=model, version=version, updated_at=updated_at)


def grown(a: Alert, version: int, *, more: list[str] | None = None) -> Alert:
    """``a`` re-published with more evidence, as the worker does (contract v1.1)."""
    extra = more or [f"ev-v{version}"]
    return msgspec.structs.replace(
        a, version=version, updated_at=f"2026-03-02T10:{version:02d}:00Z",
        event_ids=[*a.event_ids, *extra], count=a.count + len(extra),
        last_seen=f"2026-03-02T09:{20 + version:02d}:00Z",
        score=min(100.0, a.score + version), reasons=[*a.reasons, f"seen again (v{version})"])


def event_json(event_id: str, *, user_id: str = "E00412", ts: str = "2026-03-02T09:10:00Z",
               action: str = "view", subject_id: str | None = "P-204",
               case_ref: str | None = None) -> bytes:
    import json

    return json.dumps({"event_id": event_id, "ts": ts, "user_id": user_id, "terminal_id": "T-17",
                       "system": "PNC", "action": action, "subject_type": "person",
                       "subject_id": subject_id, "query": QUERY_TEXT, "case_ref": case_ref,
                       "result_count": 1}).encode()


def make_state() -> ConsoleState:
    # A history file of its own, holding the two alerts' evidence, gone with the state.
    directory = Path(tempfile.mkdtemp(prefix="aw-console-"))
    history = History(directory / "history.sqlite3", retention_days=0, commit_after_s=0)
    history.add([HistoryEvent.of(decode_event(event_json(eid, ts=ts)))
                 for eid, ts in (("ev-1", "2026-03-02T09:10:00Z"),
                                 ("ev-2", "2026-03-02T09:14:00Z"))], {0: 2})
    state = ConsoleState(AlertStore(1000), history=history)
    weakref.finalize(state, shutil.rmtree, directory, True)
    state.staff.upsert("E00412", StaffInfo("constable", "Response", "North", "active"))
    state.add_alert(alert())
    state.add_alert(alert("aw-00000000000000000002", severity="critical", score=85.0,
                          rule_id="AW-011", created_at="2026-03-02T10:00:00Z"))
    state.caught_up.update(alerts=True, triage=True, staff=True)
    return state


class FakeRecorder:
    """Stands in for the triage topics; ``fail`` makes the broker refuse."""

    def __init__(self) -> None:
        self.written: list[tuple[Decision, Step]] = []
        self.fail = False

    async def __call__(self, decision: Decision, step: Step) -> None:
        if self.fail:
            raise ConnectionError("broker unavailable")
        self.written.append((decision, step))


class ListRecorder:
    """Stands in for the cases or watch-list topic: keeps what was written."""

    def __init__(self) -> None:
        self.written: list[Any] = []
        self.fail = False

    async def __call__(self, *record: Any) -> None:
        if self.fail:
            raise ConnectionError("broker unavailable")
        self.written.append(record[0] if len(record) == 1 else record)


def make_app(state: ConsoleState | None = None, recorder: FakeRecorder | None = None,
             signer: SessionSigner | None = None, case_recorder: ListRecorder | None = None,
             watch_recorder: ListRecorder | None = None,
             consultation_recorder: ListRecorder | None = None) -> web.Application:
    return build_app(state=state or make_state(), users=make_users(),
                     signer=signer or SessionSigner(SECRET, 3600),
                     recorder=recorder or FakeRecorder(),
                     case_recorder=case_recorder or ListRecorder(),
                     watch_recorder=watch_recorder or ListRecorder(),
                     consultation_recorder=consultation_recorder or ListRecorder())


def run(app: web.Application, body: Callable[[TestClient[Any, Any]], Awaitable[T]]) -> T:
    """Serve ``app`` on a free port and run ``body`` with a client of it."""

    async def go() -> T:
        server = TestServer(app)
        await server.start_server(**RUNNER_OPTIONS)  # as served: no aiohttp access log
        # As the page does: every read says why (console.consultations); a test of the
        # 428 sends the header empty.
        async with TestClient(server, headers={"X-Accesswatch-Purpose": "a test"}) as client:
            return await body(client)

    return asyncio.run(go())


async def sign_in(client: TestClient[Any, Any], name: str = "lena") -> str:
    """Sign in as ``name``; returns the session's CSRF token."""
    page = await (await client.get("/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token, page
    resp = await client.post("/login", data={"username": name, "password": PASSWORDS[name],
                                              "csrf": token.group(1)}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    me = await (await client.get("/api/me")).json()
    return str(me["csrf_token"])
