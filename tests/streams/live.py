"""Helpers for tests against a running worker: the process, its metrics, the topics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families

from streams.settings import Settings
from tests.streams.conftest import free_port, wait_until


def aw(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the ``accesswatch`` CLI in a subprocess with ``env`` added."""
    return subprocess.run([sys.executable, "-m", "accesswatch.cli", *args], cwd=cwd,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


class WorkerProcess:
    """``accesswatch worker`` in a subprocess, its log in a file."""

    def __init__(self, env: dict[str, str], cwd: Path, name: str = "worker") -> None:
        self.metrics_port, self.web_port = free_port(), free_port()
        self.log = cwd / f"{name}.log"
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "accesswatch.cli", "worker", "--web-host", "127.0.0.1",
             "--web-port", str(self.web_port), "--metrics-port", str(self.metrics_port)],
            cwd=cwd, env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}",
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.tail()}")
            return self.get("/healthz")[0] == 200

        wait_until(ready, timeout, "the worker's /healthz")

    def metrics(self) -> dict[str, float]:
        """Scrape /metrics: ``name{label=value,...}`` → value."""
        status, text = self.get("/metrics")
        assert status == 200
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return out

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode

    def tail(self, n: int = 40) -> str:
        if not self._log.closed:
            self._log.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def total(metrics: dict[str, float], name: str) -> float:
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


def kcat_produce(broker: str, topic: str, lines: list[tuple[bytes | None, bytes]]) -> None:
    """Produce ``(key, value)`` lines with kcat, partitioning keys as the Java client does."""
    kcat = shutil.which("kcat")
    if kcat is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "kcat is not installed (make tools installs it)")
    body = b"".join((key + b"\t" if key is not None else b"") + value + b"\n"
                    for key, value in lines)
    done = subprocess.run([str(kcat), "-P", "-b", broker, "-t", topic, "-K", "\t",
                           "-X", "partitioner=murmur2_random"], input=body,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")


def read_topic(s: Settings, topic: str, isolation_level: str = "read_uncommitted"
               ) -> list[ConsumerRecord]:
    """Every record now on ``topic``, all partitions, from the beginning.

    ``read_committed`` skips records of aborted transactions (exactly-once
    workers leave them behind a crash) and stops at the last stable offset.
    """
    consumer = KafkaConsumer(bootstrap_servers=s.servers, group_id=None,
                             enable_auto_commit=False, isolation_level=isolation_level)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records: list[ConsumerRecord] = []

        def done() -> bool:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            return all(consumer.position(tp) >= ends[tp] for tp in tps)

        wait_until(done, 60, f"reading {topic} to its end", every=0)
        return records
    finally:
        consumer.close()


def partitions_by_key(records: list[ConsumerRecord]) -> dict[bytes, set[int]]:
    out: dict[bytes, set[int]] = defaultdict(set)
    for r in records:
        if r.key is not None:
            out[r.key].add(r.partition)
    return out


def produce(s: Settings, topic: str, key: bytes, value: bytes | None) -> None:
    producer = KafkaProducer(bootstrap_servers=s.servers, acks="all")
    try:
        producer.send(topic, key=key, value=value).get(timeout=30)
    finally:
        producer.close()


@contextlib.contextmanager
def run_prometheus(work: Path, metrics_port: int, config_text: str | None = None
                   ) -> Iterator[str]:
    """A real Prometheus scraping the worker every second (or as ``config_text`` says);
    yields its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "prometheus is not installed (make tools installs it)")
    port = free_port()
    config = work / "prometheus.yml"
    config.write_text(config_text or (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n  - job_name: accesswatch\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"))
    log = (work / "prometheus.log").open("wb")
    proc = subprocess.Popen([str(binary), f"--config.file={config}",
                             f"--storage.tsdb.path={work / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def prometheus_query(base: str, promql: str, expected: float, timeout: float = 60) -> float:
    """Query until the result equals ``expected`` (or time runs out); returns the last value."""
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    last: list[float] = [float("nan")]

    def answered() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                result = json.loads(r.read())["data"]["result"]
        except OSError:
            return False
        if result:
            last[0] = float(result[0]["value"][1])
        return last[0] == expected

    with contextlib.suppress(AssertionError):  # the caller's assert shows the last value
        wait_until(answered, timeout, f"Prometheus to answer {promql} with {expected}", every=0.5)
    return last[0]


def read_until_ready(feed: Any, timeout: float = 120) -> None:
    """Run a ``ReferenceFeed`` until it has caught up (its ``ready``), then stop it."""
    async def read() -> None:
        task = asyncio.create_task(feed.run())
        try:
            await asyncio.wait_for(feed.ready.wait(), timeout)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(read())


def live_force(broker: str, work: Path, *, staff: int, seed: int, **settings: str
               ) -> tuple[dict[str, str], Settings, Path]:
    """A pipeline of its own on ``broker``: its environment (``settings`` as
    ``ACCESSWATCH_<NAME>``), topics created, a generated force's reference data loaded.
    Returns (environment, settings, the force's directory)."""
    from accesswatch.generate import generate_force
    from streams.topics import create_topics
    from tests.streams.conftest import unique_env

    env = {**unique_env(broker), "ACCESSWATCH_DATA_DIR": str(work / "faust"),
           **{f"ACCESSWATCH_{k.upper()}": v for k, v in settings.items()}}
    s = Settings.model_validate({k.removeprefix("ACCESSWATCH_").lower(): v
                                 for k, v in env.items()})
    create_topics(s)
    force = work / "force"
    generate_force(force, staff=staff, days=3, seed=seed)
    loaded = aw(env, "load-ref", str(force), cwd=work)
    assert loaded.returncode == 0, loaded.stderr
    return env, s, force
