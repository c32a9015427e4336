"""A time-ordered events file in the order a force's feeds would deliver it.

Contract v1.1 ("How feeds deliver"): some source systems send on line, some as
extracts every few minutes or every hour; one busy source is down for three
hours on one day and its backlog lands at once when it is back; upstream is
at-least-once, so 0.5 % of lines come a second time, byte for byte, minutes
to hours later.  No event arrives more than 24 h behind the newest event
already delivered for its member (checked, not just intended).

>>> stats = deliver(Path("force/events.jsonl"), Path("delivered.jsonl"), seed=1)  # doctest: +SKIP
>>> stats.summary()  # doctest: +SKIP
'9,273 lines + 46 repeats; 2,301 (24.8 %) behind their member's newest, at most 3.02 h; …'

Lines are copied as they are (never re-encoded); blank lines are dropped.  A
line without a readable ``ts`` (one a consumer dead-letters) goes on line at
the time of the line before it.  Memory: about 40 bytes a line, the lines
themselves stay in the file (read back through ``mmap``).
"""

from __future__ import annotations

import argparse
import math
import mmap
import time
from array import array
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec
import numpy as np

from accesswatch.contract.timestamps import format_ts, parse_ts
from accesswatch.errors import InvalidRecord

HOUR = 3600.0
DAY = 24 * HOUR
HORIZON = 24 * HOUR  # contract v1.1: the furthest an event may arrive behind its member's newest
REPEAT_SHARE = 0.005
# Log-uniform, so minutes are as common as hours; well inside the horizon even
# when added to an outage's three hours and an hourly extract.
REPEAT_DELAY = (60.0, 6 * HOUR)
OUTAGE = 3 * HOUR
OUTAGE_STARTS = (8 * 60, 14 * 60)  # minutes after midnight UTC: down in the working day


@dataclass(frozen=True)
class Feed:
    """How a source delivers: an extract every ``period`` s, or (period 0) on line
    with a delay of up to ``jitter`` s."""

    period: float = 0.0
    jitter: float = 5.0


# The national systems stream their audit; local systems export on a schedule.
FEEDS: dict[str, Feed] = {
    "PNC": Feed(jitter=5.0),
    "ANPR": Feed(jitter=5.0),
    "NICHE": Feed(period=5 * 60),
    "PND": Feed(period=15 * 60),
    "ATHENA": Feed(period=15 * 60),
    "STORM": Feed(period=HOUR),
    "CID": Feed(period=HOUR),
}
ON_LINE = Feed(jitter=5.0)  # a system not listed above


class DeliveryError(ValueError):
    """The schedule broke the contract it simulates (an event too far behind)."""


@dataclass(frozen=True)
class Outage:
    system: str
    start: float
    end: float
    backlog: int  # lines held back and delivered at ``end``


@dataclass
class Schedule:
    """When each line of a file is delivered, and in what order.

    Index ``i < lines`` in ``order`` is line ``i`` (its first delivery);
    ``lines + j`` is repeat ``j``, a second copy of line ``repeat_of[j]``.
    """

    starts: np.ndarray  # byte offset of each line, and where it ends
    ends: np.ndarray
    ts: np.ndarray  # event time, POSIX seconds
    user: np.ndarray  # member number, -1 when the line names none or has no readable ts
    system: np.ndarray  # index into ``systems``
    systems: list[str]
    at: np.ndarray  # first delivery time of each line
    repeat_of: np.ndarray
    repeat_at: np.ndarray
    order: np.ndarray
    phases: dict[str, float]  # an extract source's extracts fall at phase + k × period
    outage: Outage | None

    @property
    def lines(self) -> int:
        return len(self.ts)

    def line_of(self, i: int) -> int:
        return i if i < self.lines else int(self.repeat_of[i - self.lines])


@dataclass(frozen=True)
class DeliveryStats:
    lines: int
    repeats: int
    late: int  # first deliveries behind the newest event already delivered for their member
    max_lateness_s: float  # how far behind, at most (repeats included)
    max_delay_s: float  # delivery time − event time, at most (first deliveries)
    outage: Outage | None
    seconds: float = 0.0

    @property
    def late_share(self) -> float:
        return self.late / self.lines if self.lines else 0.0

    def summary(self) -> str:
        out = (
            f"{self.lines:,} lines + {self.repeats:,} repeats; {self.late:,} "
            f"({100 * self.late_share:.1f} %) behind their member's newest, at most "
            f"{self.max_lateness_s / HOUR:.2f} h; delay at most {self.max_delay_s / HOUR:.2f} h"
        )
        if self.outage is not None:
            o = self.outage
            out += (
                f"; {o.system} down {format_ts(o.start)} to {format_ts(o.end)} "
                f"({o.backlog:,} lines held)"
            )
        return out + f"; {self.seconds:.1f} s"


class _Head(msgspec.Struct):
    ts: str | None = None
    user_id: str | None = None
    system: str | None = None


_head = msgspec.json.Decoder(_Head)


def schedule(src: Path, *, seed: int = 1) -> Schedule:
    """Plan the delivery of ``src`` (time-ordered events JSONL); deterministic for a seed."""
    starts, ends, ts, user, system, systems = _read(src)
    rng = np.random.default_rng(seed)
    at = np.empty_like(ts)
    phases: dict[str, float] = {}
    for code, name in sorted(enumerate(systems), key=lambda s: s[1]):
        mine = system == code
        feed = FEEDS.get(name, ON_LINE)
        if feed.period:
            # An extract holds everything since the one before: (previous, this].
            phase = phases[name] = float(rng.integers(0, int(feed.period)))
            at[mine] = phase + np.ceil((ts[mine] - phase) / feed.period) * feed.period
        else:
            at[mine] = ts[mine] + rng.uniform(0.0, feed.jitter, int(mine.sum()))
    outage = _outage(rng, ts, system, systems, at)
    k = round(len(ts) * REPEAT_SHARE)
    repeat_of = np.sort(rng.choice(len(ts), size=k, replace=False)) if k else np.zeros(0, int)
    low, high = np.log(REPEAT_DELAY[0]), np.log(REPEAT_DELAY[1])
    repeat_at = at[repeat_of] + np.exp(rng.uniform(low, high, k))
    if outage is not None:  # a source that is down sends no repeats either
        down = system[repeat_of] == systems.index(outage.system)
        repeat_at[down & (repeat_at >= outage.start) & (repeat_at < outage.end)] = outage.end
    # Stable: what lands at one instant (an extract, a backlog) keeps file order.
    order = np.argsort(np.concatenate([at, repeat_at]), kind="stable")
    return Schedule(
        starts, ends, ts, user, system, systems, at, repeat_of, repeat_at, order, phases, outage
    )


def _read(
    src: Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    starts, ends, ts, user = array("q"), array("q"), array("d"), array("i")
    system = array("H")
    users: dict[str, int] = {}
    systems: dict[str, int] = {}
    pos, last = 0, math.nan
    with src.open("rb") as f:
        for line in f:
            begin, pos = pos, pos + len(line)
            if not line.strip():
                continue
            t, uid, sys_name = _fields(line)
            if t is None:
                t, uid = last, None  # delivered with its neighbour; the consumer refuses it
            last = t
            starts.append(begin)
            ends.append(pos)
            ts.append(t)
            user.append(-1 if uid is None else users.setdefault(uid, len(users)))
            system.append(systems.setdefault(sys_name or "", len(systems)))
    out_ts = np.frombuffer(ts, dtype=np.float64).copy()
    if np.isnan(out_ts).any():  # lines before the first readable ts: at that time
        first = out_ts[~np.isnan(out_ts)]
        out_ts[np.isnan(out_ts)] = first[0] if len(first) else 0.0
    return (
        np.frombuffer(starts, dtype=np.int64),
        np.frombuffer(ends, dtype=np.int64),
        out_ts,
        np.frombuffer(user, dtype=np.int32),
        np.frombuffer(system, dtype=np.uint16),
        list(systems),
    )


def _fields(line: bytes) -> tuple[float | None, str | None, str | None]:
    try:
        head = _head.decode(line)
        return (None if head.ts is None else parse_ts(head.ts)), head.user_id, head.system
    except (msgspec.DecodeError, InvalidRecord, UnicodeDecodeError):
        return None, None, None


def _outage(
    rng: np.random.Generator, ts: np.ndarray, system: np.ndarray, systems: list[str], at: np.ndarray
) -> Outage | None:
    """The busiest source down for three hours on a day inside the span (not the first
    nor the last when there are three or more); what it would have sent lands at the end."""
    if not len(ts):
        return None
    counts = np.bincount(system, minlength=len(systems))
    busiest = min(range(len(systems)), key=lambda c: (-counts[c], systems[c]))
    day0 = math.floor(ts.min() / DAY) * DAY
    days = int((ts.max() - day0) // DAY) + 1
    day = int(rng.integers(1, days - 1)) if days >= 3 else 0
    start = day0 + day * DAY + 60.0 * int(rng.integers(OUTAGE_STARTS[0], OUTAGE_STARTS[1] + 1))
    end = start + OUTAGE
    held = (system == busiest) & (at >= start) & (at < end)
    at[held] = end
    return Outage(systems[busiest], start, end, int(held.sum()))


def check(s: Schedule) -> DeliveryStats:
    """Walk the delivery order as a consumer would, per member; raise ``DeliveryError``
    if any event arrives more than ``HORIZON`` behind its member's newest."""
    newest: dict[int, float] = {}
    late, worst = 0, 0.0
    ts, user, n = s.ts.tolist(), s.user.tolist(), s.lines
    repeat_of = s.repeat_of.tolist()
    for i in s.order.tolist():
        j = i if i < n else repeat_of[i - n]
        u = user[j]
        if u < 0:
            continue
        t, top = ts[j], newest.get(u, -math.inf)
        if t < top:
            late += i < n
            worst = max(worst, top - t)
        else:
            newest[u] = t
    if worst > HORIZON:
        raise DeliveryError(
            f"an event arrives {worst / HOUR:.1f} h behind its member's newest "
            f"(the contract allows {HORIZON / HOUR:.0f} h)"
        )
    delay = float((s.at - s.ts).max()) if n else 0.0
    return DeliveryStats(n, len(s.repeat_of), late, worst, delay, s.outage)


def write(s: Schedule, src: Path, dst: Path) -> None:
    """The lines of ``src`` to ``dst`` in delivery order, bytes as they are."""
    with dst.open("wb") as out:
        if not s.lines:
            return
        starts, ends = s.starts.tolist(), s.ends.tolist()
        with src.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            for i in s.order.tolist():
                j = s.line_of(i)
                line = mm[starts[j] : ends[j]]
                out.write(line if line.endswith(b"\n") else line + b"\n")


def deliver(src: Path, dst: Path, *, seed: int = 1) -> DeliveryStats:
    """Write ``src`` to ``dst`` as the feeds would deliver it; what that did."""
    started = time.perf_counter()
    s = schedule(src, seed=seed)
    stats = check(s)
    write(s, src, dst)
    return replace(stats, seconds=time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.delivery", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("events", type=Path, help="time-ordered events JSONL")
    parser.add_argument("out", type=Path, help="the same lines in delivery order")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(deliver(args.events, args.out, seed=args.seed).summary())


if __name__ == "__main__":
    main()
