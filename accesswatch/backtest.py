"""Run the detection core over a JSONL file of events: the offline driver.

With ``jobs`` above 1 the members are split across processes by a stable hash
of ``user_id``, as the live pipeline partitions events by user key: each
process reads the whole file, keeps its members' events and runs the core over
them, and the parent merges their books.  The core is per member, so the
output is the same file either way; and since each member's events are judged
in event time, the same whatever order the file delivers them in.

``read_events`` decodes a file once for tools that judge the same history
with one pack after another (``whatif``, ``budget``): ``run_backtest`` takes
its result in place of the path.
"""

from __future__ import annotations

import base64
import gc
import multiprocessing
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import msgspec
from tqdm import tqdm

from accesswatch.contract.events import AccessEvent, decode_event
from accesswatch.core.alerts import Alert
from accesswatch.core.detector import Detector, Model, Outcome
from accesswatch.core.state import Member
from accesswatch.errors import AccessWatchError, InvalidRecord
from accesswatch.reference import ReferenceData, load_reference_dir
from accesswatch.rules.loader import RulePack

BATCH = 20000  # events judged at a time: lateness within a batch costs no rewind
Bad = tuple[int, bytes, InvalidRecord]


@dataclass
class BacktestResult:
    events: int = 0  # valid events read, repeats and the too late included
    rejected: int = 0  # lines refused: invalid, or too late
    seconds: float = 0.0
    alerts: dict[str, Alert] = field(default_factory=dict)
    updates: int = 0  # times an alert's content changed after its first report
    reference_problems: list[str] = field(default_factory=list)
    jobs: int = 1
    too_late: int = 0
    repeats: int = 0
    rewound: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class AlertBook:
    """The newest content of each alert: what the backtest writes, once each."""

    def __init__(self) -> None:
        self.alerts: dict[str, Alert] = {}
        self.updates = 0
        self.too_late = 0
        self.repeats = 0
        self.rewound = 0

    def add(self, outcome: Outcome) -> None:
        alerts = self.alerts
        for alert in outcome.changed:
            if alert.alert_id in alerts:
                self.updates += 1
            alerts[alert.alert_id] = alert
        for aid in outcome.withdrawn:
            alerts.pop(aid, None)
        self.too_late += len(outcome.too_late)
        self.repeats += len(outcome.repeats)
        self.rewound += outcome.rewound

    def final(self) -> list[Alert]:
        """Every alert once, in an order of their content alone (first evidence, then id)."""
        return sorted(self.alerts.values(), key=_alert_order)


def _alert_order(alert: Alert) -> tuple[str, str]:
    return (alert.first_seen, alert.alert_id)


class Share:
    """One process's members: those whose ``user_id`` hashes to ``part`` of ``jobs``."""

    def __init__(self, part: int, jobs: int) -> None:
        self.part, self.jobs = part, jobs
        self._parts: dict[str, int] = {}

    def of(self, user_id: str) -> int:
        part = self._parts.get(user_id)
        if part is None:
            part = self._parts[user_id] = zlib.crc32(user_id.encode()) % self.jobs
        return part

    def owner(self, raw: bytes) -> int | None:
        """The part a line belongs to, read without decoding the event; None
        when only decoding it can tell (then every process decodes it)."""
        try:
            user_id = _user_key.decode(raw).user_id
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return None
        return None if user_id is None else self.of(user_id)


class _UserKey(msgspec.Struct):
    user_id: str | None = None


# The same JSON reader as the event decoder, so the same user_id, duplicate
# keys and escapes included.
_user_key = msgspec.json.Decoder(_UserKey)


@dataclass
class ParsedEvents:
    """An events file decoded once: its valid events in file order, and the lines refused."""

    path: Path
    events: list[AccessEvent]
    rejected: int
    _parts: dict[int, list[list[AccessEvent]]] = field(default_factory=dict, repr=False)

    def of(self, share: Share | None) -> list[AccessEvent]:
        """The events of one share of the members (split once per number of shares)."""
        if share is None:
            return self.events
        parts = self._parts.get(share.jobs)
        if parts is None:
            parts = self._parts[share.jobs] = [[] for _ in range(share.jobs)]
            for event in self.events:
                parts[share.of(event.user_id)].append(event)
        return parts[share.part]


def read_events(path: Path, *, progress: bool = False) -> ParsedEvents:
    """Decode ``path`` once; lines that break the contract are counted, not kept."""
    events: list[AccessEvent] = []
    rejected = 0
    for batch, _, _, bad in _batches(path, progress, desc="read"):
        events.extend(batch)
        rejected += len(bad)
    return ParsedEvents(path, events, rejected)


def run_backtest(
    events_path: Path | ParsedEvents,
    ref: ReferenceData,
    rules: RulePack | None = None,
    *,
    rejects_path: Path | None = None,
    progress: bool = False,
    detector: Detector | None = None,
    model: Model | None = None,
    jobs: int = 1,
) -> BacktestResult:
    """Run the core over ``events_path`` (or events read before); ``jobs`` processes split
    the members.  Rejects are written only from a path: parsed events keep no lines."""
    if isinstance(events_path, ParsedEvents) and rejects_path is not None:
        raise ValueError("rejects are written from the events file, not parsed events")
    detector = detector or Detector(rules, ref, model=model)
    jobs = jobs if jobs > 1 and "fork" in multiprocessing.get_all_start_methods() else 1
    started = time.perf_counter()
    with _few_collections():
        if jobs == 1:
            result = _run_alone(events_path, detector, rejects_path, progress)
        else:
            result = _run_shares(events_path, detector, jobs, rejects_path, progress)
    if isinstance(events_path, ParsedEvents):
        result.rejected += events_path.rejected
    result.seconds = time.perf_counter() - started
    return result


Source = Path | ParsedEvents


def _run_alone(
    path: Source, detector: Detector, rejects_path: Path | None, progress: bool
) -> BacktestResult:
    rejects = rejects_path.open("wb") if rejects_path is not None else None
    try:
        book, events, rejected = _run_share(
            path,
            detector,
            None,
            progress,
            None if rejects is None else lambda n, line: rejects.write(line),
        )
    finally:
        if rejects is not None:
            rejects.close()
    return _result(book, events, rejected)


def _result(book: AlertBook, events: int, rejected: int, jobs: int = 1) -> BacktestResult:
    return BacktestResult(
        events,
        rejected,
        alerts={a.alert_id: a for a in book.final()},
        updates=book.updates,
        jobs=jobs,
        too_late=book.too_late,
        repeats=book.repeats,
        rewound=book.rewound,
    )


def _run_share(
    path: Source,
    detector: Detector,
    share: Share | None,
    progress: bool,
    reject: Callable[[int, bytes], object] | None,
) -> tuple[AlertBook, int, int]:
    """The core over one share of the members (all of them when ``share`` is None)."""
    members: dict[str, Member] = {}
    book = AlertBook()
    events = rejected = 0
    if isinstance(path, Path):
        batches = _batches(path, progress, share)
    else:  # no lines to reject: they were counted when the file was read
        batches, reject = _parsed_batches(path.of(share), progress), None
    for batch, lines, raws, bad in batches:
        events += len(batch)
        rejected += len(bad)
        if reject is not None:
            for n, raw, err in bad:
                reject(n, _reject_line(n, raw, err))
        outcome = detector.process_batch(batch, members)
        book.add(outcome)
        rejected += len(outcome.too_late)
        if reject is not None:
            for i in outcome.too_late:
                reject(lines[i], _reject_line(lines[i], raws[i], _too_late(detector)))
    return book, events, rejected


def _too_late(detector: Detector) -> InvalidRecord:
    return InvalidRecord(
        f"more than {detector.pack.settings.horizon} behind the member's newest event",
        "too_late",
    )


@dataclass
class _ShareOutcome:
    events: int
    rejected: int
    book: AlertBook
    rejects: list[tuple[int, bytes]]


def _run_shares(
    path: Source, detector: Detector, jobs: int, rejects_path: Path | None, progress: bool
) -> BacktestResult:
    # fork: the children start with the reference data, rules and model loaded (and
    # parsed events already split, once, here).
    if isinstance(path, ParsedEvents):
        path.of(Share(0, jobs))
    context = multiprocessing.get_context("fork")
    receivers, processes = [], []
    for part in range(jobs):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=_share_main,
            args=(path, detector, Share(part, jobs), progress and part == 0, send),
            name=f"backtest-{part}",
            daemon=True,
        )
        process.start()
        send.close()
        receivers.append(receive)
        processes.append(process)
    try:
        outcomes = [_receive(r, p) for r, p in zip(receivers, processes, strict=True)]
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    book = AlertBook()
    for o in outcomes:  # a member is one share's: no alert is in two books
        book.alerts.update(o.book.alerts)
        book.updates += o.book.updates
        book.too_late += o.book.too_late
        book.repeats += o.book.repeats
        book.rewound += o.book.rewound
    if rejects_path is not None:
        with rejects_path.open("wb") as f:
            for _, line in sorted((r for o in outcomes for r in o.rejects), key=lambda r: r[0]):
                f.write(line)
    return _result(
        book, sum(o.events for o in outcomes), sum(o.rejected for o in outcomes), jobs
    )


def _share_main(
    path: Source, detector: Detector, share: Share, progress: bool, send: Connection
) -> None:
    try:
        rejects: list[tuple[int, bytes]] = []
        book, events, rejected = _run_share(
            path, detector, share, progress, lambda n, line: rejects.append((n, line))
        )
        send.send(("ok", _ShareOutcome(events, rejected, book, rejects)))
    except BaseException as e:  # the parent reports it; a child must not hang it
        send.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        send.close()


def _receive(receive: Connection, process: multiprocessing.process.BaseProcess) -> _ShareOutcome:
    try:
        status, payload = receive.recv()
    except EOFError:
        raise AccessWatchError(
            f"backtest process {process.name} died (exit code {process.exitcode})"
        ) from None
    if status != "ok":
        raise AccessWatchError(f"backtest process {process.name} failed: {payload}")
    return payload  # type: ignore[no-any-return]


@contextmanager
def _few_collections() -> Iterator[None]:
    """Keep the cyclic garbage collector out of the way while the core runs.

    A backtest makes millions of small acyclic objects (events, contexts,
    window entries) and keeps the reference data and every member's state
    alive: left alone, the collector rescans them all, over a tenth of the run
    with the model.  The reference data is frozen out of its scans (which also
    spares forked processes copying its pages) and young objects are collected
    less often; both are restored after.
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 50_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


Batch = tuple[list[AccessEvent], list[int], list[bytes], list[Bad]]


def _batches(
    path: Path, progress: bool, share: Share | None = None, desc: str = "backtest"
) -> Iterator[Batch]:
    """Events in batches, with their file lines and bytes, and the lines refused.

    With a ``share``, only its members' events; a line no member can be read
    from is refused by part 0 alone.
    """
    size = path.stat().st_size
    bar = tqdm(
        total=size,
        unit="B",
        unit_scale=True,
        disable=not progress,
        file=sys.stderr,
        desc=desc,
    )
    batch: list[AccessEvent] = []
    lines: list[int] = []
    raws: list[bytes] = []
    bad: list[Bad] = []
    done = 0
    with path.open("rb") as f, bar:
        for n, line in enumerate(f, 1):
            done += len(line)
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            owner = None
            if share is not None:
                owner = share.owner(raw)
                if owner is not None and owner != share.part:
                    continue
            try:
                event = decode_event(raw)
            except InvalidRecord as e:
                if share is None or owner is not None or share.part == 0:
                    bad.append((n, raw, e))
                continue
            if owner is None and share is not None and share.of(event.user_id) != share.part:
                continue
            batch.append(event)
            lines.append(n)
            raws.append(raw)
            if len(batch) >= BATCH:
                yield batch, lines, raws, bad
                batch, lines, raws, bad = [], [], [], []
                bar.update(done)
                done = 0
        yield batch, lines, raws, bad
        bar.update(done)


def _parsed_batches(events: list[AccessEvent], progress: bool) -> Iterator[Batch]:
    """Parsed events in batches, as ``_batches`` gives them, without lines or bytes."""
    with tqdm(total=len(events), unit="ev", unit_scale=True, disable=not progress,
              file=sys.stderr, desc="backtest") as bar:
        for start in range(0, len(events), BATCH):
            batch = events[start : start + BATCH]
            yield batch, [], [], []
            bar.update(len(batch))


_encoder = msgspec.json.Encoder()


def _reject_line(n: int, raw: bytes, err: InvalidRecord) -> bytes:
    try:
        original: dict[str, str] = {"raw": raw.decode("utf-8")}
    except UnicodeDecodeError:
        original = {"raw_base64": base64.b64encode(raw).decode("ascii")}
    return (
        _encoder.encode(
            {"line": n, "reason": err.reason, "reason_class": err.reason_class, **original}
        )
        + b"\n"
    )


def write_alerts(alerts: dict[str, Alert], path: Path) -> None:
    """One line per alert, its final content (a file holds no versions: contract v1.1)."""
    with path.open("wb") as f:
        for alert in sorted(alerts.values(), key=_alert_order):
            f.write(_encoder.encode(alert) + b"\n")


def load_reference(ref_dir: Path) -> tuple[ReferenceData, list[str]]:
    return load_reference_dir(ref_dir)
