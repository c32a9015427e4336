"""The consultation log: who read what personal data through the console, when, from
where and why (Data Protection Act 2018, s.62).

Every read of personal data (``READS``, keyed by route template) appends exactly one
``Consultation`` to the topic ``console.consultations`` (kept for ever) before the
answer leaves the console; when the log cannot be written the read fails with 503, so
nothing is read unrecorded.  A read answered with an error (400, 403, 404) read
nothing and is not recorded.

Why: the request's ``X-Accesswatch-Purpose`` header (percent-encoded UTF-8; a download
link, which cannot send a header, gives ``?purpose=``): a case id, an alert id or
free text.  Reading an alert or a case is its own purpose when none is given; a
member's timeline, a subject's page or an export with none is answered 428, and the
page asks the analyst for a reason.

The live stream (``/api/stream``) is recorded once, when it connects: the rows it
sends later are the feed of new and changed alerts, each also readable only through
the recorded routes.

Each record names at most ``IDS_MAX`` ids of each kind; ``counts`` says how many
there were.  A lead reads the log in the console (``/api/consultations``) from the
last ``console_consultations_held`` records, folded in memory from the topic; the
whole log is exported by ``accesswatch console consultations``.

With ``console_audit_as_events`` on, opening a member's timeline or a subject's
page is also produced to the access-event topic as an access on system
``ACCESSWATCH`` by the analyst's staff id, so the detection core judges analysts as
it judges everyone else.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import unquote

import msgspec
from aiohttp import web

log = logging.getLogger("accesswatch.console.consultations")

PURPOSE_HEADER = "X-Accesswatch-Purpose"
PURPOSE_MAX = 500
IDS_MAX = 10_000
ID_KINDS = ("alert", "case", "member", "subject", "event")
Kind = Literal["alert", "alerts", "case", "cases", "timeline", "subject", "watchlist",
               "export", "evidence_pack", "consultations"]
KINDS: tuple[str, ...] = get_args(Kind)  # the metrics' ``kind`` label: never an id


class What(msgspec.Struct, forbid_unknown_fields=False):
    kind: str
    ids: dict[str, list[str]]  # alert, case, member, subject, event: the ids shown
    counts: dict[str, int]  # how many of each there were (the ids stop at IDS_MAX)


class Purpose(msgspec.Struct, forbid_unknown_fields=False):
    case_id: str | None = None  # a console case being worked
    alert_id: str | None = None  # an alert being worked
    text: str | None = None  # a reason the analyst gave


class Consultation(msgspec.Struct, forbid_unknown_fields=False):
    at: str  # ISO 8601, UTC, "Z"
    user: str  # console username
    role: str
    address: str  # the client's address
    route: str  # the route template read
    what: What
    purpose: Purpose
    staff_id: str | None = None  # the analyst's staff id, when the users file gives one
    id: str = ""  # unique: a consultation's own id


ConsultationRecorder = Callable[[Consultation], Awaitable[None]]
RECORDER = web.AppKey("consultation_recorder", object)
LOG = web.AppKey("consultation_log", object)
encode = msgspec.json.Encoder().encode
decode = msgspec.json.Decoder(Consultation).decode


def client_address(request: web.Request) -> str:
    """The client's address, proxy-aware (``console.client_address``: a trusted proxy's
    forwarded header, else the peer).  The one place this module asks."""
    from console.client_address import client_address as address

    return address(request)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- what each read shows ----------------------------------------------------------
class Ids:
    """The ids a read showed, by kind, each once, in order."""

    def __init__(self) -> None:
        self.by_kind: dict[str, dict[str, None]] = {k: {} for k in ID_KINDS}

    def add(self, kind: str, *values: object) -> Ids:
        held = self.by_kind[kind]
        for v in values:
            if isinstance(v, str) and v:
                held[v] = None
        return self

    def extend(self, kind: str, values: Iterable[object]) -> Ids:
        return self.add(kind, *values)

    def what(self, kind: str) -> What:
        return What(kind, {k: list(v)[:IDS_MAX] for k, v in self.by_kind.items()},
                    {k: len(v) for k, v in self.by_kind.items()})


Extract = Callable[[web.Request, Any], Ids]


@dataclass(frozen=True)
class Read:
    kind: str
    extract: Extract  # (request, the JSON answered or None) -> the ids shown
    before: bool = False  # streamed: recorded before the answer starts
    purpose_required: bool = False
    implicit: str | None = None  # the route's own id serves as the purpose: case_id|alert_id


def _state(request: web.Request) -> Any:
    from console.web import STATE

    return request.app[STATE]


def _alerts(request: web.Request, alert_ids: Iterable[str], *, deep: bool = True) -> Ids:
    """Alerts shown, with their members (and, ``deep``, their subjects and evidence)."""
    state, ids = _state(request), Ids()
    for alert_id in alert_ids:
        ids.add("alert", alert_id)
        a = state.alerts.get(alert_id)
        if a is None:
            continue
        ids.add("member", a.user_id)
        if deep:
            ids.extend("subject", a.subject_ids or [])
            ids.extend("event", a.event_ids)
    return ids


def _rows(body: Any, key: str) -> list[dict[str, Any]]:
    rows = body.get(key) if isinstance(body, dict) else None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _listing(request: web.Request, body: Any) -> Ids:
    rows = _rows(body, "alerts")
    return Ids().extend("alert", (r.get("alert_id") for r in rows)).extend(
        "member", (r.get("user_id") for r in rows))


def _alert_detail(request: web.Request, body: Any) -> Ids:
    ids = _alerts(request, [request.match_info["alert_id"]])
    ids.extend("alert", (r.get("alert_id") for r in _rows(body, "history")))
    evidence = _rows(body, "evidence")
    ids.extend("event", (r.get("event_id") for r in evidence))
    return ids.extend("subject", (r.get("subject_id") for r in evidence))


def _alert_ecs(request: web.Request, body: Any) -> Ids:
    return _alerts(request, [request.match_info["alert_id"]])


def _export_query(request: web.Request, body: Any) -> Ids:
    from console.api import alert_query

    rows = _state(request).index.alert_rows(alert_query(request))  # QueryError: no read
    return _alerts(request, [r["alert_id"] for r in rows])


def _ecs_all(request: web.Request, body: Any) -> Ids:
    return _alerts(request, list(_state(request).alerts.alerts))


def _false_positives(request: web.Request, body: Any) -> Ids:
    from console.triage import false_positives

    state = _state(request)
    rows = false_positives(state.triage, state.alerts.alerts)
    return _alerts(request, [str(r.get("alert_id")) for r in rows], deep=False)


def _cases(request: web.Request, body: Any) -> Ids:
    rows = _rows(body, "cases")
    return Ids().extend("case", (r.get("case_id") for r in rows)).extend(
        "member", (r.get("user_id") for r in rows))


def _case_detail(request: web.Request, body: Any) -> Ids:
    case = body.get("case") if isinstance(body, dict) else None
    ids = Ids().add("case", request.match_info["case_id"])
    if isinstance(case, dict):
        ids.add("member", case.get("user_id"))
    ids.extend("case", (r.get("case_id") for r in _rows(body, "member_cases")))
    return ids.extend("alert", (r.get("alert_id") for r in _rows(body, "alerts")))


def _evidence_pack(request: web.Request, body: Any) -> Ids:
    view = _state(request).case_views.get(request.match_info["case_id"])
    alert_ids = list(view.alert_ids) if view is not None else []
    return _alerts(request, alert_ids).add("case", request.match_info["case_id"]).add(
        "member", view.user_id if view is not None else None)


def _accesses(ids: Ids, rows: list[dict[str, Any]]) -> Ids:
    ids.extend("event", (r.get("event_id") for r in rows))
    ids.extend("member", (r.get("user_id") for r in rows))
    ids.extend("subject", (r.get("subject_id") for r in rows))
    for r in rows:
        ids.extend("alert", r.get("alert_ids") or [])
        ids.extend("case", r.get("case_ids") or [])
    return ids


def _timeline(request: web.Request, body: Any) -> Ids:
    ids = Ids().add("member", request.match_info["user_id"])
    _accesses(ids, _rows(body, "events"))
    ids.extend("alert", (r.get("alert_id") for r in _rows(body, "alerts")))
    return ids.extend("case", (r.get("case_id") for r in _rows(body, "cases")))


def _subject(request: web.Request, body: Any) -> Ids:
    ids = Ids().add("subject", request.match_info["subject_id"])
    _accesses(ids, _rows(body, "accesses"))
    return ids.extend("alert", (r.get("alert_id") for r in _rows(body, "alerts")))


def _watchlist(request: web.Request, body: Any) -> Ids:
    ids = Ids().extend("subject", (r.get("subject_id") for r in _rows(body, "subjects")))
    return _accesses(ids, _rows(body, "opens"))


def _nothing(request: web.Request, body: Any) -> Ids:
    return Ids()


def _log_rows(request: web.Request, body: Any) -> Ids:
    return Ids().extend("member", (r.get("staff_id") for r in _rows(body, "consultations")))


# Every route that reads personal data, by template.  tests/console/test_consultations.py
# walks the route table: a GET route neither here nor in ``NOT_PERSONAL`` fails it.
READS: dict[str, Read] = {
    "/api/alerts": Read("alerts", _listing),
    "/api/alerts/{alert_id}": Read("alert", _alert_detail, implicit="alert_id"),
    "/api/alerts/{alert_id}/ecs": Read("alert", _alert_ecs, implicit="alert_id"),
    "/api/alerts.csv": Read("export", _export_query, before=True, purpose_required=True),
    "/api/alerts.ndjson": Read("export", _export_query, before=True, purpose_required=True),
    "/api/ecs": Read("export", _ecs_all, before=True, purpose_required=True),
    "/api/false-positives.csv": Read("export", _false_positives, purpose_required=True),
    "/api/false-positives.json": Read("export", _false_positives, purpose_required=True),
    "/api/cases": Read("cases", _cases),
    "/api/cases/{case_id}": Read("case", _case_detail, implicit="case_id"),
    "/api/cases/{case_id}/evidence.zip": Read("evidence_pack", _evidence_pack,
                                              implicit="case_id"),
    "/api/members/{user_id}/timeline": Read("timeline", _timeline, purpose_required=True),
    "/api/subjects/{subject_id}": Read("subject", _subject, purpose_required=True),
    "/api/watchlist": Read("watchlist", _watchlist),
    "/api/stream": Read("alerts", _nothing, before=True),
    "/api/consultations": Read("consultations", _log_rows),
}
# GET routes that show no personal data: the page, its files, who is signed in.
NOT_PERSONAL = frozenset({"/", "/static/{name}", "/login", "/healthz", "/api/me", "/metrics",
                          "/login/oidc", "/oidc/callback"})


# --- why ------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def purpose_of(request: web.Request, read: Read) -> Purpose | None:
    """The purpose a request gives, or its route's own id; ``None``: none given."""
    raw = request.headers.get(PURPOSE_HEADER) or request.query.get("purpose") or ""
    text = _CONTROL.sub(" ", unquote(raw)).strip()[:PURPOSE_MAX]
    if text:
        state = _state(request)
        state.settle()
        if text in state.case_views:
            return Purpose(case_id=text)
        if state.alerts.get(text) is not None:
            return Purpose(alert_id=text)
        return Purpose(text=text)
    if read.implicit == "case_id":
        return Purpose(case_id=request.match_info["case_id"])
    if read.implicit == "alert_id":
        return Purpose(alert_id=request.match_info["alert_id"])
    return None if read.purpose_required else Purpose()


def consultation(request: web.Request, read: Read, purpose: Purpose, ids: Ids) -> Consultation:
    from console.web import current_user, template_of

    user = current_user(request)
    return Consultation(at=now_iso(), user=user.username, role=user.role,
                        address=client_address(request), route=template_of(request),
                        what=ids.what(read.kind), purpose=purpose,
                        staff_id=getattr(user, "staff_id", None), id=uuid.uuid4().hex)


def _json_error(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)


NOT_RECORDED = {"error": "the read could not be recorded in the consultation log (broker "
                         "unavailable); nothing was shown"}
SAY_WHY = {"error": "say why you are looking: the case or alert you are working, or a "
                    "reason", "purpose_required": True}


async def _record(request: web.Request, c: Consultation) -> bool:
    from console.metrics import METRICS

    recorder, metrics = request.app.get(RECORDER), request.app.get(METRICS)
    recorded = False
    if recorder is not None:
        try:
            await recorder(c)  # type: ignore[operator]
            recorded = True
        except Exception:  # the broker did not confirm: nothing is shown
            log.warning("a consultation could not be recorded (route %s)", c.route)
    if metrics is not None:
        metrics.consultation(c.what.kind, recorded)
    return recorded


@web.middleware
async def record_reads(request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                       ) -> web.StreamResponse:
    """Runs after ``authenticate``: one consultation for each read of personal data."""
    from console.web import template_of

    read = READS.get(template_of(request)) if request.method == "GET" else None
    if read is None:
        return await handler(request)
    purpose = purpose_of(request, read)
    if purpose is None:
        return _json_error(428, SAY_WHY)
    if read.before:  # streamed: the answer cannot be withdrawn once it has begun
        try:
            ids = read.extract(request, None)
        except Exception:  # a bad query: the handler says what is wrong, and reads nothing
            return await handler(request)
        if not await _record(request, consultation(request, read, purpose, ids)):
            return _json_error(503, NOT_RECORDED)
        return await handler(request)
    response = await handler(request)
    if not 200 <= response.status < 300:
        return response
    body = None
    if isinstance(response, web.Response) and response.content_type == "application/json":
        raw = response.body
        body = msgspec.json.decode(raw) if isinstance(raw, bytes | bytearray) else None
    if not await _record(request, consultation(request, read, purpose,
                                               read.extract(request, body))):
        return _json_error(503, NOT_RECORDED)
    return response


# --- the analysts as access events -------------------------------------------------
SYSTEM = "ACCESSWATCH"


def access_event(c: Consultation) -> dict[str, Any] | None:
    """The access event a consultation makes, per the contract: opening a subject's
    page or a member's timeline; ``None`` for any other read, or with no staff id."""
    if c.staff_id is None:
        return None
    if c.what.kind == "subject":
        subject_type, subject_id = "person", c.what.ids["subject"][0]
    elif c.what.kind == "timeline":
        subject_type, subject_id = "other", c.what.ids["member"][0]
    else:
        return None
    ref = c.purpose.case_id
    return {"event_id": f"aw-console-{c.id}", "ts": c.at.replace(".000Z", "Z"),
            "user_id": c.staff_id, "terminal_id": f"console:{c.address or 'unknown'}"[:128],
            "system": SYSTEM, "action": "view", "subject_type": subject_type,
            "subject_id": subject_id[:128], "query": None,
            "case_ref": ref[:128] if ref else None, "result_count": 1}


def opens_something(c: Consultation) -> bool:
    return c.what.kind in ("subject", "timeline")


# --- the lead's view: the last records, held in memory -------------------------------
class ConsultationLog:
    """The newest ``limit`` consultations, in topic order."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.records: collections.deque[Consultation] = collections.deque(maxlen=limit)
        self.seen = 0
        self.skipped = 0

    def apply_record(self, value: bytes | None) -> None:
        try:
            self.records.append(decode(value or b""))
            self.seen += 1
        except msgspec.DecodeError:
            self.skipped += 1

    @property
    def dropped(self) -> int:
        return self.seen - len(self.records)


def matches(c: Consultation, *, start: str | None = None, end: str | None = None,
            user: str | None = None, subject: str | None = None) -> bool:
    """``start`` <= at < ``end`` (ISO, UTC); ``subject``: a subject or member id shown."""
    at = _ms(c.at)
    if start is not None and at < _ms(start):
        return False
    if end is not None and at >= _ms(end):
        return False
    if user is not None and c.user != user and c.staff_id != user:
        return False
    return subject is None or subject in c.what.ids.get("subject", []) or \
        subject in c.what.ids.get("member", [])


def _ms(iso: str) -> int:
    when = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def parse_time(text: str, name: str) -> str:
    """``text`` as an ISO time, UTC; ``ValueError`` saying what is wrong."""
    try:
        _ms(text)
    except ValueError:
        raise ValueError(f"{name} is a date and time such as 2026-03-02T09:00:00Z") from None
    return text


async def api_consultations(request: web.Request) -> web.Response:
    """``GET /api/consultations?from&to&user&subject``: a lead's view of the log."""
    from console.web import current_user

    if current_user(request).role != "lead":
        return _json_error(403, {"error": "only a lead may read the consultation log"})
    held: ConsultationLog | None = request.app.get(LOG)  # type: ignore[assignment]
    if held is None:
        return _json_error(503, {"error": "this console holds no consultation log"})
    q = request.query
    try:
        start = parse_time(q["from"], "from") if q.get("from") else None
        end = parse_time(q["to"], "to") if q.get("to") else None
    except ValueError as e:
        return _json_error(400, {"error": str(e)})
    limit = min(int(q["limit"]) if q.get("limit", "").isdigit() else 1000, 5000)
    found = [c for c in reversed(held.records)
             if matches(c, start=start, end=end, user=q.get("user") or None,
                        subject=q.get("subject") or None)]
    return web.json_response({
        "consultations": [msgspec.to_builtins(c) for c in found[:limit]],
        "total": len(found), "truncated": len(found) > limit, "held": len(held.records),
        "limit": held.limit, "dropped": held.dropped})


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/api/consultations", api_consultations)


# --- the topic: written, and followed into the lead's view --------------------------
class ConsultationTopic:
    """Writes consultations (and, when on, the access events they make) and follows the
    topic into a ``ConsultationLog``."""

    def __init__(self, s: Any, held: ConsultationLog, metrics: Any = None) -> None:
        self.s, self.held, self.metrics = s, held, metrics  # console.metrics.ConsoleMetrics
        self.without_staff_id = 0
        self._producer: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        from streams.connect import aiokafka_options

        self._producer = AIOKafkaProducer(**aiokafka_options(self.s), acks="all",
                                          linger_ms=0, max_request_size=4 * 1024 * 1024)
        await self._producer.start()
        self._task = asyncio.create_task(self._follow(), name="feed-consultations")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._producer is not None:
            await self._producer.stop()

    async def __call__(self, c: Consultation) -> None:
        assert self._producer is not None, "consultation topic not started"
        await self._producer.send_and_wait(self.s.consultations_topic, encode(c),
                                           key=c.user.encode())
        if not (self.s.console_audit_as_events and opens_something(c)):
            return
        event = access_event(c)
        if event is None:
            self.without_staff_id += 1
            if self.metrics is not None:
                self.metrics.consultations_no_staff_id.inc()
            return
        await self._producer.send_and_wait(self.s.topic_events, encode(event),
                                           key=event["user_id"].encode())

    async def _follow(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from streams.connect import aiokafka_options

        consumer = AIOKafkaConsumer(**aiokafka_options(self.s), group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            await consumer.topics()  # metadata, so the partitions are known
            parts = consumer.partitions_for_topic(self.s.consultations_topic) or {0}
            tps = [TopicPartition(self.s.consultations_topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
                for records in batches.values():
                    for record in records:
                        self.held.apply_record(record.value)
        finally:
            await consumer.stop()


# --- the export ---------------------------------------------------------------------
COLUMNS = ("at", "user", "staff_id", "role", "address", "route", "kind", "purpose_case_id",
           "purpose_alert_id", "purpose_text", "alert_ids", "case_ids", "member_ids",
           "subject_ids", "event_ids", "id")


def flat(c: Consultation) -> dict[str, Any]:
    ids = c.what.ids
    return {"at": c.at, "user": c.user, "staff_id": c.staff_id, "role": c.role,
            "address": c.address, "route": c.route, "kind": c.what.kind,
            "purpose_case_id": c.purpose.case_id, "purpose_alert_id": c.purpose.alert_id,
            "purpose_text": c.purpose.text, "id": c.id,
            **{f"{k}_ids": ids.get(k, []) for k in ID_KINDS}}


def export_lines(records: Iterable[Consultation], fmt: str) -> Iterator[str]:
    """CSV (a header, CRLF, every cell formula-safe) or JSON lines."""
    from console.exports import table_csv

    if fmt == "csv":
        yield from table_csv((flat(c) for c in records), COLUMNS)
    else:
        for c in records:
            yield encode(c).decode() + "\n"


def read_consultations(values: Iterable[bytes | None], *, start: str | None = None,
                       end: str | None = None, user: str | None = None,
                       subject: str | None = None) -> tuple[list[Consultation], int]:
    """The consultations among ``values`` that match, and how many did not decode."""
    out, bad = [], 0
    for value in values:
        try:
            c = decode(value or b"")
        except msgspec.DecodeError:
            bad += 1
            continue
        if matches(c, start=start, end=end, user=user, subject=subject):
            out.append(c)
    return out, bad
