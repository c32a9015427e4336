"""Three guards around aiokafka 0.12, so a broker restart cannot stall a worker for good.

Seen here about one broker restart in five with the machine busy: the worker
came back to a restarted broker, rejoined its group, and then consumed
nothing, for as long as anyone waited.  The chain:

1. Under uvloop, a write on a connection the broker has just reset raises
   ``RuntimeError`` ("the handler is closed"), not the ``OSError`` aiokafka
   turns into a connection error.  Here it is turned into one, as aiokafka
   does for ``OSError``: the connection is closed and the caller retries.
2. The exception escaped the client's metadata task and ended it, so no
   metadata request was sent again.  The task now survives any error in one
   update (logged, counted as a failed update, retried).
3. A rebalance waits for a metadata update before it assigns partitions.
   aiokafka wakes its metadata task only when no update is pending, and a
   wait for the pending one never wakes it; after a failure it can sleep
   ``metadata_max_age_ms`` (5 minutes) with an update pending
   (aio-libs/aiokafka#712).  Asking for metadata, or waiting for it, now
   always wakes the task: at worst one more metadata request.

``install()`` applies all three to every aiokafka client in the process.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from aiokafka import errors
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import AIOKafkaConnection, CloseReason

log = logging.getLogger("accesswatch.kafka")
_send = AIOKafkaConnection.send
_update = AIOKafkaClient._metadata_update
_force = AIOKafkaClient.force_metadata_update
_wait = AIOKafkaClient._maybe_wait_metadata


def install() -> None:
    if AIOKafkaConnection.send is _send:
        AIOKafkaConnection.send = _guarded_send  # type: ignore[method-assign]
        AIOKafkaClient._metadata_update = _metadata_update  # type: ignore[method-assign]
        AIOKafkaClient.force_metadata_update = _force_metadata_update  # type: ignore[method-assign]
        AIOKafkaClient._maybe_wait_metadata = _maybe_wait_metadata  # type: ignore[method-assign]


@functools.wraps(_send)
def _guarded_send(self: AIOKafkaConnection, request: Any, expect_response: bool = True) -> Any:
    try:
        return _send(self, request, expect_response)
    except RuntimeError as err:  # uvloop's write on a transport that has closed
        self.close(reason=CloseReason.CONNECTION_BROKEN)
        raise errors.KafkaConnectionError(
            f"Connection at {self._host}:{self._port} broken: {err}") from err


@functools.wraps(_update)
async def _metadata_update(self: AIOKafkaClient, cluster: Any, topics: Any) -> bool:
    try:
        return bool(await _update(self, cluster, topics))
    except asyncio.CancelledError:
        raise
    except Exception as e:  # it would end the metadata task for good, and every wait on it
        log.error("metadata update failed, will retry: %s: %s", type(e).__name__, e)
        return False


def _wake(client: Any) -> None:
    waiter = client._md_update_waiter
    if not waiter.done():
        waiter.set_result(None)


@functools.wraps(_force)
def _force_metadata_update(self: AIOKafkaClient) -> Any:
    _wake(self)
    return _force(self)


@functools.wraps(_wait)
async def _maybe_wait_metadata(self: AIOKafkaClient) -> None:
    if self._md_update_fut is not None:
        _wake(self)
        await asyncio.shield(self._md_update_fut)
