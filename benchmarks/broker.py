"""A throwaway noida-db broker and the processes of one benchmark run, all stopped by pid."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

NOIDA = Path(sys.executable).parent / "noida-db"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def noida_version() -> str:
    done = subprocess.run([str(NOIDA), "version"], capture_output=True, text=True, timeout=30)
    return done.stdout.strip() or "noida-db (version unknown)"


class LiveBenchError(RuntimeError):
    """A step of the live benchmark failed; the message says which and shows the log."""


class Processes:
    """Every process started here, stopped by pid (SIGTERM, then SIGKILL) when the run ends."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.running: list[tuple[subprocess.Popen[bytes], Any]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("wb")
        proc = subprocess.Popen(args, cwd=self.work, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.running.append((proc, log))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        for p, log in self.running:
            if p is proc:
                log.close()

    def stop_all(self) -> None:
        for proc, _ in self.running:
            self.stop(proc)

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.work / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def session(cache: Path, name: str) -> Iterator[tuple[Path, Processes, str]]:
    """A scratch dir under ``cache``, a broker of its own and the processes started
    there: (dir, processes, broker address).  The processes stop first, while the
    broker is still there to say goodbye to; a good run leaves nothing behind, a failed
    one keeps its logs and says where."""
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=cache))
    procs = Processes(work)
    ok = False
    try:
        with broker(work) as address:
            try:
                yield work, procs, address
            finally:
                procs.stop_all()
        ok = True
    finally:
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"{name} benchmark logs kept in {work}", file=sys.stderr)


@contextlib.contextmanager
def broker(work: Path) -> Iterator[str]:
    """A noida-db Kafka broker in a fresh data dir; ``noida-db down`` and its pid gone after."""
    data, port = work / "noida", free_port()
    try:
        up = subprocess.run([str(NOIDA), "up", "--only", "kafka", "--kafka-port", str(port),
                             "--data-dir", str(data)], capture_output=True, text=True,
                            timeout=60)
        if up.returncode != 0:
            raise LiveBenchError(f"noida-db up failed:\n{up.stdout}{up.stderr}")
        wait(lambda: _accepts(port), 30, f"noida-db on port {port}")
        yield f"127.0.0.1:{port}"
    finally:
        pid = _noida_pid(data)
        subprocess.run([str(NOIDA), "down", "--data-dir", str(data)], capture_output=True,
                       timeout=120)
        if pid is not None:
            with contextlib.suppress(LiveBenchError):
                wait(lambda: not _alive(pid), 30, "noida-db to exit")
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _noida_pid(data: Path) -> int | None:
    try:
        return int(json.loads((data / "noida.control.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5):
            return True
    except OSError:
        return False


def wait(condition: Callable[[], object], timeout: float, what: str,
         every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise LiveBenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
