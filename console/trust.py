"""Trust what the console reads: alerts checked against the contract, and triage
decisions and case records signed by the console that wrote them.

Anyone who can write to a topic can write anything to it.  So an alert is checked
against ``alert.schema.json`` before it is held, and a decision or case record is
applied only with a valid signature: HMAC-SHA256, under a key only consoles hold,
over the record's canonical JSON (keys sorted, no spaces, without ``sig``) bound to
its topic and Kafka key.  The signature is a ``sig`` field of the record itself, not
a Kafka header, so a copy of the value (a topic dump, a backup) can still be checked.
A record refused is quarantined: counted, logged by topic, partition and offset
(never its content) and listed for a lead; it never reaches the state.

>>> from console.triage import decide
>>> signer = RecordSigner(b"k" * 32)
>>> d = decide(None, "aw-1", "acknowledge", by="ana", at="2026-03-02T09:00:00Z")
>>> raw = signer.encode("triage", "aw-1", d)
>>> signer.verify("triage", b"aw-1", raw)["by"]
'ana'
>>> signer.verify("triage", b"aw-2", raw)
Traceback (most recent call last):
...
accesswatch.errors.InvalidRecord: the signature does not match the record
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections import deque
from typing import Any

import msgspec
from aiohttp import web

from accesswatch.contract.explain import explain
from accesswatch.contract.schemas import schema
from accesswatch.contract.timestamps import format_ts, parse_ts
from accesswatch.core import Alert
from accesswatch.errors import InvalidRecord
from console.cases import seconds
from console.metrics import METRICS, ConsoleMetrics, serve_metrics

log = logging.getLogger("accesswatch.console.trust")
SIG = "sig"
_DOMAIN = b"accesswatch-console-record/v1"
_DERIVE = b"accesswatch console record signing key v1"
_alert = msgspec.json.Decoder(Alert)
_any = msgspec.json.Decoder()
_ALERT_FIELDS = frozenset(schema("alert")["properties"])
_TIMES = ("created_at", "first_seen", "last_seen")


# --- alerts ------------------------------------------------------------------------
def check_alert(raw: bytes) -> Alert:
    """The alert in ``raw``, or ``InvalidRecord`` saying which contract rule it breaks.

    The typed decoder checks fields and types; the rest of ``alert.schema.json``
    (non-empty ``reasons`` and ``event_ids``, readable times, ranges) is checked here,
    so nothing the views read can fail later on this alert.
    """
    try:
        a = _alert.decode(raw)
    except msgspec.ValidationError:
        raise _why(raw) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise InvalidRecord("not valid JSON", "invalid_json") from None
    if not a.reasons:
        raise InvalidRecord("reasons: must not be empty", "empty_list")
    if not a.event_ids:
        raise InvalidRecord("event_ids: must not be empty", "empty_list")
    for name in (*_TIMES, *(("updated_at",) if a.updated_at is not None else ())):
        value = getattr(a, name)
        try:
            parse_ts(value, name)
            seconds(value)  # what cases and timelines read it with
        except (InvalidRecord, ValueError):
            raise InvalidRecord(f"{name}: not an RFC 3339 timestamp", "bad_timestamp") from None
    if not (math.isfinite(a.score) and 0 <= a.score <= 100):
        raise InvalidRecord("score: must be 0 to 100", "out_of_range")
    if a.count < 1 or a.version < 1:
        raise InvalidRecord("count, version: must be at least 1", "out_of_range")
    return a


def _why(raw: bytes) -> InvalidRecord:
    try:
        value: Any = _any.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return InvalidRecord("not valid JSON", "invalid_json")
    return explain(value, schema("alert")) or InvalidRecord(
        "not an alert as alert.schema.json says", "wrong_type")


def field_of(e: InvalidRecord) -> str:
    """The contract field a refusal names, if any: safe to show, unlike its value."""
    name = e.reason.split(":", 1)[0].split("[", 1)[0]
    return name if name in _ALERT_FIELDS or name == SIG else ""


# --- signatures --------------------------------------------------------------------
class RecordSigner:
    """Signs and checks the console's own records (decisions, case records)."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self.key_id = hashlib.sha256(b"key-id\x1f" + key).hexdigest()[:8]

    def _mac(self, kind: str, key: bytes, payload: dict[str, Any]) -> str:
        body = msgspec.json.encode(payload, order="sorted")
        msg = b"\x1f".join((_DOMAIN, kind.encode(), key, body))
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def encode(self, kind: str, key: str, record: msgspec.Struct) -> bytes:
        """``record`` as JSON with its ``sig``, to write under ``key`` to ``kind``'s topic."""
        payload: dict[str, Any] = msgspec.to_builtins(record)
        sig = f"{self.key_id}.{self._mac(kind, key.encode(), payload)}"
        return msgspec.json.encode({**payload, SIG: sig})

    def verify(self, kind: str, key: bytes | None, raw: bytes) -> dict[str, Any]:
        """The record's fields when a console's key signed them under this topic and key;
        else ``InvalidRecord`` (``unsigned``, ``bad_signature``, ``invalid_json``)."""
        try:
            value = _any.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            raise InvalidRecord("not valid JSON", "invalid_json") from None
        if not isinstance(value, dict):
            raise InvalidRecord("not a JSON object", "not_object")
        sig = value.pop(SIG, None)
        if not isinstance(sig, str) or "." not in sig:
            raise InvalidRecord("no console signed it", "unsigned")
        key_id, _, mac = sig.partition(".")
        if not hmac.compare_digest(mac, self._mac(kind, key or b"", value)):
            raise InvalidRecord("signed with another key" if key_id != self.key_id else
                                "the signature does not match the record", "bad_signature")
        return value


def signing_key(configured: str | None, session_secret: bytes,
                secret_configured: bool) -> tuple[bytes, str]:
    """The key records are signed with, and one line saying where it came from."""
    if configured:
        return configured.encode(), ("console: signing decisions with "
                                     "ACCESSWATCH_CONSOLE_SIGNING_KEY")
    key = hmac.new(session_secret, _DERIVE, hashlib.sha256).digest()
    if secret_configured:
        return key, ("console: no ACCESSWATCH_CONSOLE_SIGNING_KEY set: signing decisions with a "
                     "key derived from ACCESSWATCH_CONSOLE_SECRET")
    return key, ("console: neither ACCESSWATCH_CONSOLE_SIGNING_KEY nor _SECRET set: decisions "
                 "and cases written by earlier runs cannot be verified and are ignored")


# --- the quarantine ----------------------------------------------------------------
class Quarantined(msgspec.Struct):
    """Where a refused record is and why; never what it holds."""

    topic: str
    partition: int
    offset: int
    feed: str
    reason_class: str
    field: str
    at: str


class Quarantine:
    """The last ``limit`` records refused on read, with their counts."""

    def __init__(self, metrics: ConsoleMetrics | None = None, limit: int = 1000) -> None:
        self.metrics = metrics if metrics is not None else ConsoleMetrics()
        self.held: deque[Quarantined] = deque(maxlen=limit)
        self.total = 0

    def refuse(self, feed: str, topic: str, partition: int, offset: int,
               e: InvalidRecord) -> None:
        field = field_of(e)
        self.total += 1
        self.held.append(Quarantined(topic, partition, offset, feed, e.reason_class, field,
                                     format_ts(time.time())))
        self.metrics.refused(feed, e.reason_class)
        # Say where, never what: the value may hold personal data.
        log.warning("%s: quarantined %s[%d]@%d: %s%s", feed, topic, partition, offset,
                    e.reason_class, f" ({field})" if field else "")


QUARANTINE = web.AppKey("quarantine", Quarantine)


async def quarantine_view(request: web.Request) -> web.Response:
    """GET /api/quarantine (leads only): the records refused on read, newest first."""
    from console.web import current_user

    if current_user(request).role != "lead":
        return web.json_response({"error": "only a lead may see the quarantine"}, status=403)
    q = request.app[QUARANTINE]
    return web.json_response({"total": q.total, "held": len(q.held),
                              "records": [msgspec.to_builtins(r) for r in reversed(q.held)]})


def install(app: web.Application, quarantine: Quarantine) -> None:
    """Add ``/metrics`` (public, as a worker's) and ``/api/quarantine`` to ``app``."""
    app[QUARANTINE], app[METRICS] = quarantine, quarantine.metrics
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/api/quarantine", quarantine_view)
