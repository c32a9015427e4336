"""What the model costs a worker's batch handling, without the broker or Faust around it.

Two workers' batch handling side by side in one process: rules only, and rules +
model (trained on the force's days 1-7).  Each takes the same batches of the
force's first N events, as the live worker does: ``run_batch`` (decode, rules,
features, scoring), then ``StateStore.put`` (the changed members noted) and,
every 100 batches, a checkpoint's ``take_changed`` and ``encoded`` (each changed
member encoded once; the changelog send itself is not measured).  The two take turns batch by
batch, each turn in a different order, so the machine's slow and fast moments
fall on both alike: on a shared host the live drains swing by half between runs,
and this ratio moves by a few hundredths.

    python -m benchmarks.model_cost                 # 200,000 events, twice over
    python -m benchmarks.model_cost --events 400000 --repeats 3

The live ratio is higher than this one: Faust's own per-event cost is the same for
both workers and dilutes the difference (``make bench`` measures that).
"""

from __future__ import annotations

import argparse
import collections
import gc
import itertools
import os
import time
from pathlib import Path

from accesswatch.core import Detector
from accesswatch.reference import load_reference_dir
from accesswatch.rules import load_rules
from benchmarks.model import train
from benchmarks.run import force
from streams.batch import run_batch
from streams.store import StateStore, encoded

BATCH = 1000
PARTITIONS = 4


class _Message:
    """A consumed record, as ``run_batch`` reads it."""

    __slots__ = ("key", "offset", "partition", "topic", "value")

    def __init__(self, value: bytes, partition: int, offset: int) -> None:
        self.key, self.value, self.topic = None, value, "access.events"
        self.partition, self.offset = partition, offset


def _store(partitions: int) -> StateStore:
    """A store holding every partition, recovered empty: the broker is not measured."""
    store = StateStore()
    for p in range(partitions):
        store.restore(p, {}, 0)
    return store


def measure(data: Path, events: int, repeats: int) -> dict[str, float]:
    """Microseconds an event for each worker, and rules only ÷ rules + model."""
    ref, _ = load_reference_dir(data)
    model, _ = train(data, ref)
    with (data / "events.jsonl").open("rb") as f:
        lines = list(itertools.islice(f, events))
    messages = [_Message(line, i % PARTITIONS, i // PARTITIONS)
                for i, line in enumerate(lines)]
    rules = load_rules()
    gc.collect()
    gc.freeze()  # as the worker does once reference data is loaded
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    names = ("rules only", "rules + model")
    spent = dict.fromkeys(names, 0.0)
    for _ in range(repeats):
        runs = {
            name: (Detector(rules, ref, model=model if name == "rules + model" else None),
                   _store(PARTITIONS))
            for name in names
        }
        for k, start in enumerate(range(0, len(messages), BATCH)):
            batch = messages[start:start + BATCH]
            for name in names if k % 2 == 0 else reversed(names):
                detector, states = runs[name]
                began = time.perf_counter()
                out = run_batch(detector, batch, states.load)  # as a worker's batch
                states.put(out.states, out.applied)
                if k % 100 == 0:  # a checkpoint: each changed member encoded
                    for records in states.take_changed().values():
                        collections.deque(encoded(records), maxlen=0)
                spent[name] += time.perf_counter() - began
    n = len(messages) * repeats
    rules_us, model_us = (spent[name] / n * 1e6 for name in names)
    return {"events": len(messages), "repeats": repeats, "rules_us": round(rules_us, 2),
            "model_us": round(model_us, 2), "model_extra_us": round(model_us - rules_us, 2),
            "ratio": round(rules_us / model_us, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("TMPDIR", "/tmp")) / "accesswatch-bench")
    args = parser.parse_args()
    r = measure(force(2000, 14, 7, args.cache), args.events, args.repeats)
    print(f"{r['events']:,} events × {r['repeats']}, batches of {BATCH:,}, turns alternated:")
    print(f"  rules only      {r['rules_us']:6.2f} µs an event")
    print(f"  rules + model   {r['model_us']:6.2f} µs an event (+{r['model_extra_us']:.2f})")
    print(f"  rules only ÷ rules + model: {r['ratio']:.3f}")


if __name__ == "__main__":
    main()
