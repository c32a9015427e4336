"""One small generated force, shared by the benchmark tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from accesswatch.generate import generate_force
from tests.streams.conftest import KAFKA_IMPORT_NOISE


def pytest_configure(config: pytest.Config) -> None:
    # benchmarks.run imports the live benchmark, which imports kafka-python.
    config.addinivalue_line("filterwarnings", KAFKA_IMPORT_NOISE)
    # ... and the small force trains a forest on fewer rows than its 256 a tree.
    config.addinivalue_line("filterwarnings", "ignore:max_samples:UserWarning")


@pytest.fixture(scope="session", autouse=True)
def _train_on_a_small_force() -> Iterator[None]:
    """A 3-day, 60-member force has ~160 member-hours of doubtful work, under the
    200 a real model needs; these tests time the pipeline, not the model's quality."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("models.train.MIN_ROWS", 100)
        yield


@pytest.fixture(scope="session")
def small_force(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 members, 3 days (the generator's least), a few invalid lines mixed in."""
    force = tmp_path_factory.mktemp("bench-force")
    generate_force(force, staff=60, days=3, seed=3, invalid_lines=5)
    return force
