"""Run the detection core over a JSONL file of events: the offline driver."""

from __future__ import annotations

import base64
import gc
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from tqdm import tqdm

from accesswatch.contract.events import AccessEvent, decode_event
from accesswatch.core.alerts import Alert, merge
from accesswatch.core.detector import Detector, Model
from accesswatch.core.state import UserState
from accesswatch.errors import InvalidRecord
from accesswatch.reference import ReferenceData, load_reference_dir
from accesswatch.rules.loader import RulePack

BATCH = 2000


@dataclass
class BacktestResult:
    events: int = 0
    rejected: int = 0
    seconds: float = 0.0
    alerts: dict[str, Alert] = field(default_factory=dict)
    folded: int = 0
    reference_problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class AlertBook:
    """Alerts by id, with folded firings merged in: what the backtest writes."""

    def __init__(self) -> None:
        self.alerts: dict[str, Alert] = {}
        self.folded = 0

    def add(self, fired: list) -> None:  # list[Fired]
        for f in fired:
            if f.folded and f.alert.alert_id in self.alerts:
                merge(self.alerts[f.alert.alert_id], f.alert)
                self.folded += 1
            else:
                self.alerts.setdefault(f.alert.alert_id, f.alert)


def run_backtest(
    events_path: Path,
    ref: ReferenceData,
    rules: RulePack | None = None,
    *,
    rejects_path: Path | None = None,
    progress: bool = False,
    detector: Detector | None = None,
    model: Model | None = None,
) -> BacktestResult:
    detector = detector or Detector(rules, ref, model=model)
    states: dict[str, UserState] = {}
    book, result = AlertBook(), BacktestResult()
    rejects = rejects_path.open("wb") if rejects_path is not None else None
    started = time.perf_counter()
    with _few_collections():
        try:
            for batch, bad in _batches(events_path, progress):
                result.events += len(batch)
                result.rejected += len(bad)
                if rejects is not None:
                    for n, raw, err in bad:
                        rejects.write(_reject_line(n, raw, err))
                book.add(detector.process_batch(batch, states))
        finally:
            if rejects is not None:
                rejects.close()
    result.seconds = time.perf_counter() - started
    result.alerts, result.folded = book.alerts, book.folded
    return result


@contextmanager
def _few_collections() -> Iterator[None]:
    """Keep the cyclic garbage collector out of the way while the core runs.

    A backtest makes millions of small acyclic objects (events, contexts,
    window entries) and keeps the reference data and every member's state
    alive: left alone, the collector rescans them all, over a tenth of the run
    with the model.  The reference data is frozen out of its scans and young
    objects collected less often; both are restored after.
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 50_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _batches(
    path: Path, progress: bool
) -> Iterator[tuple[list[AccessEvent], list[tuple[int, bytes, InvalidRecord]]]]:
    size = path.stat().st_size
    bar = tqdm(
        total=size,
        unit="B",
        unit_scale=True,
        disable=not progress,
        file=sys.stderr,
        desc="backtest",
    )
    batch: list[AccessEvent] = []
    bad: list[tuple[int, bytes, InvalidRecord]] = []
    done = 0
    with path.open("rb") as f, bar:
        for n, line in enumerate(f, 1):
            done += len(line)
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                batch.append(decode_event(raw))
            except InvalidRecord as e:
                bad.append((n, raw, e))
            if len(batch) >= BATCH:
                yield batch, bad
                batch, bad = [], []
                bar.update(done)
                done = 0
        yield batch, bad
        bar.update(done)


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
    with path.open("wb") as f:
        for alert in alerts.values():
            f.write(_encoder.encode(alert) + b"\n")


def load_reference(ref_dir: Path) -> tuple[ReferenceData, list[str]]:
    return load_reference_dir(ref_dir)
