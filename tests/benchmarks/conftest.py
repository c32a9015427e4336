"""One small generated force, shared by the benchmark tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from accesswatch.generate import generate_force
from tests.streams.conftest import KAFKA_IMPORT_NOISE


def pytest_configure(config: pytest.Config) -> None:
    # benchmarks.run imports the live benchmark, which imports kafka-python.
    config.addinivalue_line("filterwarnings", KAFKA_IMPORT_NOISE)


@pytest.fixture(scope="session")
def small_force(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 members, 3 days (the generator's least), a few invalid lines mixed in."""
    force = tmp_path_factory.mktemp("bench-force")
    generate_force(force, staff=60, days=3, seed=3, invalid_lines=5)
    return force
