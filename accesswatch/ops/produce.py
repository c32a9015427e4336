"""Putting data on the topics: reference files (``load-ref``) and event replays (``replay``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
from kafka import KafkaProducer
from tqdm import tqdm

from accesswatch.contract.reference import KEY_FIELDS, decode_reference
from accesswatch.errors import InvalidRecord
from accesswatch.reference import FILES
from streams.connect import kafka_python_options
from streams.settings import Settings


@dataclass
class Sent:
    records: int = 0
    refused: int = 0
    failed: int = 0
    seconds: float = 0.0


def producer(s: Settings, **extra: object) -> KafkaProducer:
    return KafkaProducer(**kafka_python_options(s), **extra)


def load_reference(s: Settings, directory: Path) -> dict[str, Sent]:
    """Publish each reference JSONL file to its compacted topic, keyed by its key field.

    Lines that break their schema are reported (file:line and why) and not sent.
    """
    out: dict[str, Sent] = {}
    prod = producer(s, acks="all", linger_ms=20)
    try:
        for kind, name in FILES.items():
            path = directory / name
            sent = out[kind] = Sent()
            if not path.exists():
                print(f"{name}: not found, nothing sent", file=sys.stderr)
                continue
            topic, key_field = s.ref_topics[kind], KEY_FIELDS[kind]
            started = time.perf_counter()
            for n, raw in _numbered_lines(path):
                try:
                    record = decode_reference(kind, raw)
                except InvalidRecord as e:
                    print(f"{name}:{n}: {e.reason} (not sent)", file=sys.stderr)
                    sent.refused += 1
                    continue
                except msgspec.DecodeError:  # truncated JSON can escape the decoder
                    print(f"{name}:{n}: not valid JSON (not sent)", file=sys.stderr)
                    sent.refused += 1
                    continue
                future = prod.send(topic, key=getattr(record, key_field).encode(), value=raw)
                future.add_errback(lambda _, sent=sent: setattr(sent, "failed", sent.failed + 1))
                sent.records += 1
            prod.flush()
            sent.seconds = time.perf_counter() - started
    finally:
        prod.close()
    return out


def _numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for the non-blank lines of ``path``, newline removed."""
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                yield n, line.rstrip(b"\r\n")


def _lines(path: Path) -> Iterator[bytes]:
    return (line for _, line in _numbered_lines(path))


class _Keyed(msgspec.Struct):
    user_id: str


_key_decoder = msgspec.json.Decoder(_Keyed)


def event_key(raw: bytes) -> bytes | None:
    """The ``user_id`` of a wire event, as its message key; None when unreadable."""
    try:
        return _key_decoder.decode(raw).user_id.encode()
    except (msgspec.DecodeError, UnicodeError):
        return None


def replay(s: Settings, path: Path, rate: float, *, limit: int | None = None,
           progress: bool = True) -> Sent:
    """Produce each line of ``path`` as one event keyed by its user_id, ``rate`` a second.

    ``rate`` 0 sends as fast as the client can; lines are sent as they are,
    invalid ones included, so the worker's dead-letter path sees them too.
    """
    total = sum(1 for _ in _lines(path))
    if limit is not None:
        total = min(total, limit)
    sent = Sent()
    prod = producer(s, acks=1, linger_ms=5, batch_size=256 * 1024)

    def failed(_: Exception) -> None:
        sent.failed += 1

    bar = tqdm(total=total, unit="ev", desc="replay", disable=not progress, file=sys.stderr,
               smoothing=0.1)
    started = time.perf_counter()
    try:
        for i, raw in enumerate(_lines(path)):
            if i >= total:
                break
            if rate > 0:
                ahead = started + i / rate - time.perf_counter()
                if ahead > 0.002:
                    time.sleep(ahead)  # pacing the replay, not waiting on anything
            prod.send(s.topic_events, key=event_key(raw), value=raw).add_errback(failed)
            sent.records += 1
            if i % 100 == 0:
                bar.update(sent.records - bar.n)
        prod.flush()
        bar.update(sent.records - bar.n)
    finally:
        bar.close()
        prod.close()
    sent.seconds = time.perf_counter() - started
    return sent
