"""The events topic a fetch at a time: Faust's consumer without its per-event machinery.

Faust 0.15 hands a consumer's records on one at a time.  For each event it
builds a ``Message``, races the delivery against a flow-control event in
``Service.wait_first`` (four futures), looks up the topic's channels, builds
an ``Event``, puts it on the agent's queue and takes it off again, and at the
end acknowledges it under a lock.  Profiled on the worker that is about 60 µs
an event, several times what detection itself costs, and it capped the worker
near 12k events/s however little the agent did.

For the one topic this worker exists to read, this module takes the records
of each fetch as they come from aiokafka and queues them in runs (a
partition's records, at most a batch's worth) for the batch handler
(``streams/app.py``), which acknowledges a run once it is handled.
Everything Faust does around delivery stays as it was, because the patch
feeds the same bookkeeping:

- the read offset moves as Faust's own loop moves it, and gaps in the offsets
  (compaction, transaction markers) are recorded the same way;
- an acknowledged run goes into ``_acked`` / ``_acked_index`` / ``_n_acked``
  exactly as ``Consumer.ack`` puts each message, so commits are an unbroken
  run of handled offsets, as before, and ``broker_commit_every`` still counts;
- each queued run is in ``_unacked_messages`` until handled, so a rebalance
  or a shutdown waits for it (``Consumer.wait_empty``) before Faust commits
  and lets the partitions go;
- the queue is bounded: when it is full the fetcher waits, and a rebalance
  that suspends the flow abandons the wait (the run is fetched again).

Every other topic (table changelogs during recovery) takes Faust's own path.
Under ``exactly_once`` the worker does not install this: Faust ties its
transactions to the event being handled, which needs its own delivery.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Sequence
from typing import Any

from faust.transport.consumer import CONSUMER_FETCHING, Consumer, ack_lock
from faust.types import TP
from mode.utils.futures import notify

_original = Consumer._drain_messages


def install() -> None:
    """Patch Faust's consumer class; only apps given a ``FastPath`` use the new loop."""
    if Consumer._drain_messages is _original:
        Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]


class Run:
    """A partition's records from one fetch, in flight until handled.

    Sits in the consumer's ``_unacked_messages`` (a weak set) meanwhile, which
    is what Faust waits on before committing at a rebalance or shutdown.
    """

    __slots__ = ("__weakref__", "acked", "records", "refcount", "tp")

    def __init__(self, tp: TP, records: list[Any]) -> None:
        self.tp = tp
        self.records = records
        self.acked = False
        self.refcount = 1  # what Faust's wait_empty prints for a pending message

    def __repr__(self) -> str:
        first, last = self.records[0].offset, self.records[-1].offset
        return f"<Run {self.tp.topic}[{self.tp.partition}] {first}..{last}>"


class FastPath:
    """The queue between the fetcher and the batch handler, for one topic."""

    def __init__(self, topic: str, max_runs: int = 8, max_run: int = 1000) -> None:
        self.topic = topic
        self.max_run = max_run  # records in one run, at most: a fetch can bring many more
        self.queue: asyncio.Queue[Run] = asyncio.Queue(max_runs)

    async def batches(self, size: int) -> AsyncIterator[list[Run]]:
        """Runs as they come: at least one, then whatever else is queued, up to ``size``
        records.  No waiting for a fuller batch: under load the queue fills by itself."""
        queue = self.queue
        while True:
            runs = [await queue.get()]
            n = len(runs[0].records)
            while n < size and not queue.empty():
                run = queue.get_nowait()
                runs.append(run)
                n += len(run.records)
            yield runs

    @staticmethod
    def ack(consumer: Any, runs: Sequence[Run]) -> None:
        """What ``Consumer.ack`` does for each message, once per run."""
        with ack_lock:
            for run in runs:
                if run.acked:
                    continue
                run.acked = True
                tp = run.tp
                committed = consumer._committed_offset[tp]
                index, acked = consumer._acked_index[tp], consumer._acked[tp]
                new = [r.offset for r in run.records
                       if (committed is None or r.offset >= committed)
                       and r.offset not in index]
                index.update(new)
                acked.extend(new)
                consumer._n_acked += len(new)
                consumer._unacked_messages.discard(run)
            notify(consumer._waiting_for_ack)

    @staticmethod
    def drop(consumer: Any, runs: Sequence[Run]) -> None:
        """Let runs go unacknowledged: nothing from them on commits (they are read again)."""
        for run in runs:
            run.acked = True  # so Faust's wait_empty stops waiting for them
            consumer._unacked_messages.discard(run)
        notify(consumer._waiting_for_ack)


@functools.wraps(_original)
async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - as Faust's
    fast: FastPath | None = getattr(self.app, "accesswatch_fast_path", None)
    if fast is None:
        return await _original(self, fetcher)
    callback = self.callback
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    read_offset = self._read_offset
    acks_enabled_for = self.app.topics.acks_enabled_for
    commit_every = self._commit_every
    to_message = self._to_message
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            self.diag.set_flag(CONSUMER_FETCHING)
            records, active = await self._wait_next_records(1.0)
            await self.sleep(0)
            if not records or self.should_stop:
                continue
            if not self.flow_active:
                await self.perform_seek()  # as Faust's getmany: back to the committed offsets
                continue
            generation = self.app.consumer_generation_id
            for tp, batch in records.items():
                if (not self.flow_active or self.should_stop
                        or self.app.consumer_generation_id != generation):
                    break
                if not (active is None or tp in active or tp in self._buffered_partitions):
                    continue
                last = read_offset[tp]
                fresh = [r for r in batch if last is None or r.offset >= last]
                if not fresh:
                    continue
                if tp.topic != fast.topic:  # Faust's own way, one message at a time
                    for r in fresh:
                        await self.wait_first(callback(to_message(tp, r)),
                                              self.suspend_flow.wait())
                        read_offset[tp] = r.offset
                    continue
                if acks_enabled_for(tp.topic):
                    await _note_gaps(self, tp, last, fresh)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                suspended = False
                for i in range(0, len(fresh), fast.max_run):
                    run = Run(tp, fresh[i:i + fast.max_run])
                    self._unacked_messages.add(run)
                    if not await _put(self, fast.queue, run):
                        self._unacked_messages.discard(run)
                        suspended = True  # a rebalance: the rest is fetched again
                        break
                    read_offset[tp] = run.records[-1].offset
                if suspended:
                    break
            self.diag.unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        self.diag.unset_flag(CONSUMER_FETCHING)


async def _note_gaps(consumer: Any, tp: TP, last: int | None, records: list[Any]) -> None:
    """Offsets skipped inside a run count as done for commits, as Faust's loop has it."""
    previous = last
    for r in records:
        if previous and r.offset - previous > 1:
            await consumer._add_gap(tp, previous + 1, r.offset)
        previous = r.offset


async def _put(consumer: Any, queue: asyncio.Queue[Run], run: Run) -> bool:
    """Queue ``run``; wait for room unless the flow is suspended meanwhile."""
    try:
        queue.put_nowait(run)
        return True
    except asyncio.QueueFull:
        pass
    put = asyncio.ensure_future(queue.put(run))
    suspended = asyncio.ensure_future(consumer.suspend_flow.wait())
    try:
        await asyncio.wait({put, suspended}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        suspended.cancel()
        if not put.done():
            put.cancel()
    return put.done() and not put.cancelled()
