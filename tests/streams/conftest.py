"""A real Kafka-protocol broker for the live-pipeline tests: noida-db on a free port.

One broker for the session, in a fresh data dir, stopped at the end.  Each
test gets its own topic names and app id, so tests never see each other's data.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.settings import Settings

NOIDA = Path(sys.executable).parent / "noida-db"


# kafka-python 3 loads its protocol schemas with a deprecated importlib call, once, at
# import: during collection, so the filter must be in force before the test modules load.
KAFKA_IMPORT_NOISE = ("ignore:(read_text|open_text) is deprecated:DeprecationWarning")
warnings.filterwarnings("ignore", r"(read_text|open_text) is deprecated", DeprecationWarning)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("filterwarnings", KAFKA_IMPORT_NOISE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition, timeout: float, what: str, every: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running broker (``ACCESSWATCH_TEST_BROKER`` reuses one)."""
    given = os.environ.get("ACCESSWATCH_TEST_BROKER")
    if given:
        yield given
        return
    data = tmp_path_factory.mktemp("noida")
    port = free_port()
    # noida-db rewrites its whole data file after writes: a fresh dir every run.
    up = subprocess.run([str(NOIDA), "up", "--only", "kafka", "--kafka-port", str(port),
                         "--data-dir", str(data)], capture_output=True, text=True, timeout=60)
    if up.returncode != 0:
        pytest.fail(f"noida-db up failed: {up.stdout}\n{up.stderr}")
    address = f"127.0.0.1:{port}"
    try:
        wait_until(lambda: _accepts(port), 30, f"noida-db kafka on {address}")
        yield address
    finally:
        subprocess.run([str(NOIDA), "down", "--data-dir", str(data)], capture_output=True,
                       timeout=60)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def live_env(broker: str) -> dict[str, str]:
    """``ACCESSWATCH_*`` variables for this test: its own app id and topic names."""
    return unique_env(broker)


def unique_env(broker: str) -> dict[str, str]:
    """``ACCESSWATCH_*`` variables naming an app id and topics no other test uses."""
    p = f"t{uuid.uuid4().hex[:8]}"
    return {
        "ACCESSWATCH_BOOTSTRAP_SERVERS": broker,
        "ACCESSWATCH_APP_ID": f"{p}-aw",
        "ACCESSWATCH_TOPIC_EVENTS": f"{p}.access.events",
        "ACCESSWATCH_TOPIC_ALERTS": f"{p}.access.alerts",
        "ACCESSWATCH_TOPIC_DLQ": f"{p}.access.events.dlq",
        "ACCESSWATCH_TOPIC_REF_STAFF": f"{p}.ref.staff",
        "ACCESSWATCH_TOPIC_REF_SUBJECTS": f"{p}.ref.subjects",
        "ACCESSWATCH_TOPIC_REF_CASES": f"{p}.ref.cases",
        "ACCESSWATCH_TOPIC_REF_DUTIES": f"{p}.ref.duties",
        "ACCESSWATCH_PARTITIONS": "4",
    }


@pytest.fixture
def live_settings(live_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in live_env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]
