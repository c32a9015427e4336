"""A benchmark's ``accesswatch`` processes: the CLI, workers, their metrics and memory.

Every process goes through ``Processes`` (``benchmarks/broker.py``), so it is
stopped by pid when the run ends, on failure too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from benchmarks.broker import LiveBenchError, Processes, free_port, wait

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "access.events"
PARTITIONS = 4


def env(address: str, app_id: str, **topics: str) -> dict[str, str]:
    """The environment of one pipeline: its broker, app id and topic names.

    Nothing from the caller's ACCESSWATCH_* (no model, no other broker); cwd is
    the work dir, so no stray .env is read either.  ``topics``: ``events``,
    ``alerts``, ``dlq``, ``ref_staff``… → ``ACCESSWATCH_TOPIC_<NAME>``.
    """
    out = {k: v for k, v in os.environ.items() if not k.startswith("ACCESSWATCH_")}
    out.update({"ACCESSWATCH_BOOTSTRAP_SERVERS": address, "ACCESSWATCH_APP_ID": app_id,
                "ACCESSWATCH_TOPIC_EVENTS": TOPIC, "ACCESSWATCH_PARTITIONS": str(PARTITIONS),
                "ACCESSWATCH_BROKER_WAIT": "30",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), out.get("PYTHONPATH")]))})
    out.update({f"ACCESSWATCH_TOPIC_{k.upper()}": v for k, v in topics.items()})
    return out


def cli(environ: dict[str, str], work: Path, *args: str, timeout: float = 900) -> str:
    """Run ``accesswatch ARGS``; its stderr, or ``LiveBenchError`` with it when it fails."""
    done = subprocess.run([sys.executable, "-m", "accesswatch.cli", *args], cwd=work,
                          env=environ, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise LiveBenchError(f"accesswatch {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stderr


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return 0, ""


def scrape(port: int) -> dict[str, float]:
    """``/metrics``: each sample name → its value, summed over labels."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = get(port, "/metrics")
    out: dict[str, float] = {}
    if status == 200:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def histogram(port: int, name: str) -> list[tuple[float, float]]:
    """The cumulative buckets of histogram ``name``: [(upper bound, count)], +Inf last."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = get(port, "/metrics")
    if status != 200:
        return []
    return sorted((float(s.labels["le"]), s.value)
                  for family in text_string_to_metric_families(text)
                  for s in family.samples if s.name == f"{name}_bucket")


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of ``pid`` in MB, from ``/proc/PID/status``."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    kb = {k: int(v.split()[0]) for k, v in (ln.split(":", 1) for ln in lines)
          if k in ("VmRSS", "VmHWM")}
    return {"rss_mb": round(kb.get("VmRSS", 0) / 1024, 1),
            "peak_rss_mb": round(kb.get("VmHWM", 0) / 1024, 1)}


class TreePeak:
    """The highest VmRSS of ``pid`` and its children together, sampled every ``every``
    seconds from start to ``stop`` (a child's peak only counts while it runs beside its
    parent's figure of that moment; VmHWM alone cannot say that)."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid, self.every, self.peak_mb = pid, every, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(self.every):
            pids = [self.pid, *_children(self.pid)]
            total = sum(memory_mb(p).get("rss_mb", 0.0) for p in pids)
            self.peak_mb = max(self.peak_mb, round(total, 1))

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.peak_mb


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds (user + system) used so far by ``pid``, or by the whole machine
    (every core, busy time only) when ``pid`` is None; from ``/proc``."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        if pid is None:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
            return (user + nice + system + irq + softirq + steal) / tick
        # Fields after the command name (which may hold spaces): utime is the 12th.
        after = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(after[11]) + int(after[12])) / tick
    except (OSError, IndexError, ValueError):
        return 0.0


def drain_deadline(total: int) -> float:
    return max(300.0, total / 500)  # a worker slower than 500 events/s is broken, not slow


class Worker:
    """One ``accesswatch worker`` process with its own metrics port."""

    def __init__(self, procs: Processes, name: str, environ: dict[str, str],
                 work: Path, data_dir: Path | None = None) -> None:
        self.procs, self.name = procs, name
        self.port = free_port()
        # Its own data dir (work/NAME) unless given one: a restart reuses the last one's.
        environ = {**environ, "ACCESSWATCH_DATA_DIR": str(data_dir or work / name)}
        self.proc = procs.start(name, [sys.executable, "-m", "accesswatch.cli", "worker",
                                       "--web-host", "127.0.0.1", "--web-port",
                                       str(free_port()), "--metrics-port", str(self.port)],
                                environ)

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise LiveBenchError(f"{self.name} exited with {self.proc.returncode}:\n"
                                 f"{self.procs.tail(self.name)}")

    def metrics(self) -> dict[str, float]:
        self.check()
        return scrape(self.port)

    def memory(self) -> dict[str, float]:
        return memory_mb(self.proc.pid)

    def wait_healthy(self, timeout: float = 180) -> float:
        """Until ``/healthz`` says ok (the broker answers, reference data caught up); when.

        A worker loads reference data once it has partitions and holds events until
        then, so from this moment (``perf_counter``) it is processing.
        """
        def healthy() -> bool:
            self.check()
            return get(self.port, "/healthz")[0] == 200

        wait(healthy, timeout, f"{self.name}'s /healthz", every=0.05)
        return time.perf_counter()

    def wait_owning(self, partitions: int, timeout: float = 120) -> None:
        wait(lambda: self.metrics().get("accesswatch_partitions_assigned", 0) >= partitions,
             timeout, f"{self.name} to own {partitions} partitions", every=0.2)

    def wait_consumed(self, total: int, every: float = 0.2) -> tuple[dict[str, float], float]:
        """Until it has read ``total`` events: its last metrics, and when (``perf_counter``)."""
        last: dict[str, float] = {}

        def drained() -> bool:
            nonlocal last
            last = self.metrics()
            return last.get("accesswatch_events_consumed_total", 0) >= total

        wait(drained, drain_deadline(total), f"{self.name} to read {total:,} events", every=every)
        return last, time.perf_counter()

    def wait_for(self, proc: subprocess.Popen[bytes], timeout: float, what: str) -> int:
        """Until ``proc`` (a replay feeding this worker) exits; its exit code.

        A worker that dies meanwhile fails the wait at once, not at the deadline.
        """
        def exited() -> bool:
            self.check()
            return proc.poll() is not None

        try:
            wait(exited, timeout, what, every=0.2)
        finally:
            self.procs.stop(proc)
        return proc.returncode

    def stop(self) -> None:
        self.procs.stop(self.proc)
