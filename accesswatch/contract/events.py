"""Access events: decode and validate fast, reject with a reason."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from accesswatch.contract.explain import explain
from accesswatch.contract.schemas import schema
from accesswatch.contract.timestamps import parse_ts
from accesswatch.errors import InvalidRecord

Action = Literal["search", "view", "print", "export", "update"]
SubjectType = Literal["person", "vehicle", "address", "incident", "other"]

# Kafka's own default message limit; an event is a few hundred bytes.
MAX_EVENT_BYTES = 1_048_576


class AccessEvent(msgspec.Struct, gc=False):
    """One query or record access (``access_event.schema.json``).

    ``t`` is ``ts`` as POSIX seconds, filled in by the decoder: the rules work
    on numbers, never on strings.
    """

    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    ts: str
    user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    terminal_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    system: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    action: Action
    subject_type: SubjectType | None = None
    subject_id: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    query: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    case_ref: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    result_count: Annotated[int, msgspec.Meta(ge=0)] | None = None
    # Not a wire field: the odd name keeps it out of any real feed's way.
    t: float = msgspec.field(default=0.0, name="__accesswatch_posix_time__")


_decoder = msgspec.json.Decoder(AccessEvent)
_any = msgspec.json.Decoder()


def decode_event(raw: bytes, max_bytes: int = MAX_EVENT_BYTES) -> AccessEvent:
    """Decode one wire event or raise ``InvalidRecord`` saying why.

    >>> decode_event(b'{"event_id":"e1","ts":"2026-03-02T08:00:00Z","user_id":"u1",'
    ...              b'"terminal_id":"T1","system":"PNC","action":"view"}').t
    1772438400.0
    """
    if len(raw) > max_bytes:
        raise InvalidRecord(
            f"message of {len(raw)} bytes exceeds the {max_bytes}-byte limit", "too_large"
        )
    try:
        try:
            event = _decoder.decode(raw)
        except msgspec.ValidationError:
            # The typed decoder stops at the first wrong type, before it reaches a
            # syntax error further on: the slow path may still find one.
            event = _slow_path(raw)
    except msgspec.DecodeError as e:
        raise _malformed(raw, e) from None
    except UnicodeDecodeError:
        raise InvalidRecord("not valid UTF-8", "invalid_utf8") from None
    except RecursionError:
        raise InvalidRecord("JSON nested too deeply", "too_deep") from None
    event.t = parse_ts(event.ts)
    return event


def _slow_path(raw: bytes) -> AccessEvent:
    """Say why msgspec refused, or accept what it was stricter about (``3.0``)."""
    value: Any = _any.decode(raw)
    problem = explain(value, schema("access_event"))
    if problem is not None:
        raise problem
    return msgspec.convert(value, AccessEvent, strict=False)


def _malformed(raw: bytes, e: msgspec.DecodeError) -> InvalidRecord:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidRecord("not valid UTF-8", "invalid_utf8")
    if not raw.strip():
        return InvalidRecord("empty message", "invalid_json")
    # msgspec's message names a byte offset, never the content: safe to keep.
    return InvalidRecord(f"not valid JSON: {e}", "invalid_json")
