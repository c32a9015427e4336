"""The baseline for ``make bench``: a Faust agent that takes one event at a time and does nothing.

Faust's default settings (asyncio loop, no fetch backoff, JSON app serializers);
the topic is read as raw bytes, so the agent does no work at all, not even a
decode.  A timer writes ``<unix time> <events seen>`` to ``AW_BENCH_PROGRESS``
every 0.1 s from Faust's own monitor, which counts every event anyway::

    AW_BENCH_BROKER=127.0.0.1:9092 AW_BENCH_TOPIC=access.events AW_BENCH_APP_ID=naive \\
    AW_BENCH_DATA_DIR=/tmp/naive AW_BENCH_PROGRESS=/tmp/naive.progress \\
    python -m benchmarks.naive_agent worker --web-host 127.0.0.1 --web-port 6070
"""

from __future__ import annotations

import os
import time
from typing import Any

import faust

app = faust.App(os.environ["AW_BENCH_APP_ID"], broker=f"kafka://{os.environ['AW_BENCH_BROKER']}",
                datadir=os.environ["AW_BENCH_DATA_DIR"])
events = app.topic(os.environ["AW_BENCH_TOPIC"], key_serializer="raw", value_serializer="raw")
progress = open(os.environ["AW_BENCH_PROGRESS"], "a", buffering=1)  # noqa: SIM115 (lives as long as the app)


@app.agent(events)
async def naive(stream: Any) -> None:
    async for _event in stream:
        pass


@app.timer(0.1)
async def report_progress() -> None:
    seen = app.monitor.events_total
    if seen:
        progress.write(f"{time.time():.3f} {seen}\n")


if __name__ == "__main__":
    app.main()
